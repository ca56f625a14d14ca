//! The test bodies, one per behaviour, each on any backend's [`World`]. `run_on!`
//! makes them tests of a world.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use wa_sessiond::proto::{
    send_message_request::Content, upload_media_request::Part, MediaContent, MediaKind, SendMessageRequest,
    UploadMediaRequest,
};

use super::{common::wait_for, world::*};

/// Makes each body a test on the world `$start` builds.
macro_rules! run_on {
    ($start:expr) => {
        #[tokio::test]
        async fn a_20_mib_document_uploaded_once_reaches_three_chats_with_their_captions() {
            let world = $start.await;
            super::bodies::one_upload_three_chats(&world).await;
        }

        #[tokio::test]
        async fn a_voice_note_arrives_as_one_with_its_duration_and_other_audio_is_refused() {
            let world = $start.await;
            super::bodies::voice_note(&world).await;
        }

        #[tokio::test]
        async fn a_phones_image_downloads_again_after_expiry_once_reuploaded_and_is_media_expired_offline() {
            let world = $start.await;
            super::bodies::download_and_expiry(&world).await;
        }

        #[tokio::test]
        async fn caps_size_mismatch_and_early_end_are_refused_and_leave_nothing() {
            let world = $start.await;
            super::bodies::refusals(&world).await;
        }

        #[tokio::test]
        async fn a_cancelled_upload_leaves_no_temp_file_and_no_handle() {
            let world = $start.await;
            super::bodies::cancelled(&world).await;
        }
    };
}
pub(crate) use run_on;

fn media_to(session: &str, to: &str, media: MediaContent) -> SendMessageRequest {
    SendMessageRequest {
        session_id: session.into(),
        to: to.into(),
        content: Some(Content::Media(media)),
        ..Default::default()
    }
}

/// Waits (bounded) until the server holds `count` media messages.
async fn received(world: &dyn World, count: usize) -> (Vec<Received>, u64, u64) {
    wait_for(
        Duration::from_secs(20),
        &format!("{count} media messages at the server"),
        || async {
            let seen = world.at_server().await;
            (seen.0.len() >= count).then_some(seen)
        },
    )
    .await
}

pub async fn one_upload_three_chats(world: &dyn World) {
    let file = noise(20 << 20, 7);
    let handle = upload(world, MediaKind::Document, "application/pdf", &file).await;
    assert_eq!(handle.size, 20 << 20);
    assert_eq!(handle.sha256, sha(&file));
    assert_eq!(handle.mime, "application/pdf");
    assert!(handle.expires_at.is_some());
    let chats = ["+15550000001", "+15550000002", "+15550000003"];
    let mut client = world.sessions().await;
    for (n, chat) in chats.iter().enumerate() {
        let media = MediaContent {
            media_id: handle.media_id.clone(),
            caption: format!("caption {n}"),
            file_name: "report.pdf".into(),
            ..Default::default()
        };
        client
            .send_message(media_to(world.session(), chat, media))
            .await
            .expect("sent");
    }
    let (seen, uploads, _) = received(world, 3).await;
    assert_eq!(uploads, 1, "uploaded once, sent three times");
    for (n, chat) in chats.iter().enumerate() {
        let digits = chat.trim_start_matches('+');
        let got = seen
            .iter()
            .find(|r| r.to.starts_with(digits))
            .expect("each chat got it");
        assert_eq!(got.media.caption, format!("caption {n}"));
        assert_eq!(got.media.size, 20 << 20);
        assert_eq!(got.media.sha256, sha(&file), "the server decrypted the same bytes");
        assert_eq!(got.media.kind, MediaKind::Document as i32);
        assert_eq!(got.media.file_name, "report.pdf");
    }
    assert_eq!(temp_files(world), 0, "the temp file went with the upload");
}

/// An OGG/Opus file's first page (enough to be sniffed as OGG), then noise.
fn ogg_opus() -> Vec<u8> {
    let mut file = b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x13OpusHead\x01\x01".to_vec();
    file.extend(noise(40_000, 3));
    file
}

pub async fn voice_note(world: &dyn World) {
    let handle = upload(world, MediaKind::Audio, "", &ogg_opus()).await;
    assert_eq!(
        handle.mime, "audio/ogg; codecs=opus",
        "sniffed, and OGG named as WhatsApp names it"
    );
    let mut client = world.sessions().await;
    let voice = MediaContent {
        media_id: handle.media_id.clone(),
        voice_note: true,
        duration_seconds: 7,
        waveform: vec![0, 50, 100, 50],
        ..Default::default()
    };
    client
        .send_message(media_to(world.session(), "+15550000009", voice))
        .await
        .expect("sent");
    let (seen, _, _) = received(world, 1).await;
    assert!(seen[0].media.voice_note, "a voice note (ptt)");
    assert_eq!(seen[0].media.duration_seconds, 7);
    assert_eq!(seen[0].media.sha256, handle.sha256);

    let mp3 = upload(world, MediaKind::Audio, "audio/mpeg", &noise(5_000, 4)).await;
    let not_voice = MediaContent {
        media_id: mp3.media_id,
        voice_note: true,
        ..Default::default()
    };
    let sent = client
        .send_message(media_to(world.session(), "+15550000009", not_voice))
        .await;
    refused(sent, Code::InvalidArgument, "OGG/Opus");
    let unknown = MediaContent {
        media_id: "m000000000000000000000000".into(),
        ..Default::default()
    };
    let sent = client
        .send_message(media_to(world.session(), "+15550000009", unknown))
        .await;
    refused(sent, Code::NotFound, "m000000000000000000000000");
}

pub async fn download_and_expiry(world: &dyn World) {
    let image = noise(100_000, 11);
    let id = world
        .deliver_media("15550002222", MediaKind::Image, image.clone(), "look")
        .await;
    let chat = "15550002222@s.whatsapp.net";
    let (info, bytes) = wait_for(Duration::from_secs(20), "the phone's image in the log", || async {
        download(world, chat, &id).await.ok()
    })
    .await;
    assert_eq!(sha(&bytes), sha(&image), "the same bytes");
    assert_eq!(info.sha256, sha(&image));
    assert_eq!(info.size, image.len() as u64);
    assert_eq!(info.kind, MediaKind::Image as i32);

    world.expire_media(&id, true).await;
    let (_, again) = download(world, chat, &id).await.expect("re-uploaded by the phone");
    assert_eq!(sha(&again), sha(&image));
    assert_eq!(world.at_server().await.2, 1, "one re-upload request");

    world.expire_media(&id, false).await;
    let status = download(world, chat, &id).await.expect_err("the phone is offline");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "MEDIA_EXPIRED");

    let missing = download(world, chat, "3EB0000000000000000000").await;
    refused(missing, Code::NotFound, "3EB0000000000000000000");
}

pub async fn refusals(world: &dyn World) {
    let over = upload_as(world, MediaKind::Sticker, "image/webp", &[], 2 << 20, 1).await;
    refused(over, Code::OutOfRange, "sticker=1MiB");
    let fewer = upload_as(world, MediaKind::Document, "", &noise(50, 1), 100, 64).await;
    refused(fewer, Code::InvalidArgument, "ended after 50");
    let more = upload_as(world, MediaKind::Document, "", &noise(150, 1), 100, 64).await;
    refused(more, Code::InvalidArgument, "more than the declared");
    let offline = world.offline_session().await;
    let mut client = world.sessions().await;
    let stream = tokio_stream::iter(vec![info(&offline, MediaKind::Image, "image/png", 10)]);
    let status = refused(client.upload_media(stream).await, Code::FailedPrecondition, "");
    assert_eq!(reason(&status), "SESSION_NOT_CONNECTED");
    assert_eq!(temp_files(world), 0);
    assert_eq!(handles(world), 0, "no handle for any refused upload");
}

pub async fn cancelled(world: &dyn World) {
    let (tx, rx) = mpsc::channel(4);
    tx.send(info(world.session(), MediaKind::Document, "", 1 << 20))
        .await
        .unwrap();
    tx.send(UploadMediaRequest {
        part: Some(Part::Chunk(noise(64 * 1024, 5))),
    })
    .await
    .unwrap();
    let mut client = world.sessions().await;
    let call = tokio::spawn(async move { client.upload_media(ReceiverStream::new(rx)).await });
    wait_for(Duration::from_secs(10), "the upload's temp file", || async {
        (temp_files(world) == 1).then_some(())
    })
    .await;
    call.abort();
    drop(tx);
    wait_for(Duration::from_secs(10), "the temp file gone", || async {
        (temp_files(world) == 0).then_some(())
    })
    .await;
    assert_eq!(handles(world), 0);
}
