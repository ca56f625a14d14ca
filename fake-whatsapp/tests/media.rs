//! Media against the unmodified whatsapp-rust client and the fake's CDN (HTTPS
//! on loopback, the fake's own CA): a document a device uploads once (streamed)
//! and sends to three chats is opened by each recipient with
//! the right sha256, and a voice note arrives as one; media a phone sends
//! downloads with the same bytes; once the CDN's copy expired the download
//! fails, a re-upload request to an online phone yields a new path that works,
//! and an offline phone leaves it unanswered; an upload that broke off resumes
//! where the CDN says it stopped. Every wait is bounded.

mod common;

use std::time::Duration;

use base64::{prelude::BASE64_URL_SAFE_NO_PAD, Engine as _};
use common::*;
use fake_whatsapp::proto::{
    CountMediaRequestsRequest, CountMediaRequestsResponse, ExpireMediaRequest, ListReceivedMessagesRequest, MediaKind,
    MessageKind, ReceivedMessage, SendMediaRequest,
};
use sha2::{Digest as _, Sha256};
use whatsapp_rust::{
    bytes::Bytes,
    download::MediaType,
    http::{HttpClient as _, HttpRequest},
    media::{self, AudioOptions, DocumentOptions},
    types::durability_hook::InboundMessage,
    wacore::upload::{encrypt_media_streaming, encrypted_len, EncryptedMediaInfo},
    waproto::whatsapp as wa,
    MediaRetryResult, MediaReuploadRequest,
};

/// Other phones the owner's device sends to.
const FRIENDS: [&str; 3] = [FRIEND, "15550003333", "15550004444"];

/// Deterministic bytes that do not compress (a pseudo-random sequence).
fn file(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// A document's ciphertext (streamed through the library's encryption) and
/// what the upload needs to know of it.
fn encrypt(data: &[u8]) -> (Bytes, EncryptedMediaInfo) {
    let mut ciphertext = Vec::with_capacity(encrypted_len(data.len()));
    let info = encrypt_media_streaming(data, &mut ciphertext, MediaType::Document).expect("the library encrypts");
    (Bytes::from(ciphertext), info)
}

/// A request body that fails after `at` bytes (a connection that broke).
struct BreaksOff {
    data: Bytes,
    at: usize,
    sent: usize,
}

impl std::io::Read for BreaksOff {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.sent >= self.at {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "broke off (test)",
            ));
        }
        let n = buf.len().min(self.at - self.sent);
        buf[..n].copy_from_slice(&self.data[self.sent..self.sent + n]);
        self.sent += n;
        Ok(n)
    }
}

async fn counts(fake: &Fake) -> CountMediaRequestsResponse {
    let counted = fake
        .control
        .clone()
        .count_media_requests(CountMediaRequestsRequest {})
        .await;
    counted.unwrap().into_inner()
}

/// Waits (bounded) until the fake lists `count` media messages.
async fn media_listed(fake: &Fake, count: usize) -> Vec<ReceivedMessage> {
    bounded("the media at the fake", async {
        loop {
            let listed = fake
                .control
                .clone()
                .list_received_messages(ListReceivedMessagesRequest {})
                .await
                .unwrap()
                .into_inner()
                .messages;
            let media: Vec<ReceivedMessage> = listed
                .into_iter()
                .filter(|m| m.kind == i32::from(MessageKind::Media))
                .collect();
            if media.len() >= count {
                return media;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// FRIEND sends the owner an image through the fake's CDN: the message id.
async fn phone_sends_image(fake: &Fake, data: &[u8]) -> String {
    let request = SendMediaRequest {
        to_phone_number: OWNER.into(),
        from_phone_number: FRIEND.into(),
        kind: MediaKind::Image.into(),
        mime: "image/jpeg".into(),
        data: data.to_vec(),
        caption: "look".into(),
        ..Default::default()
    };
    let sent = fake
        .control
        .clone()
        .send_media(request)
        .await
        .expect("the fake sends media");
    sent.into_inner().message_id
}

/// The image message the device received.
async fn received_image(device: &mut Device) -> (InboundMessage, wa::message::ImageMessage) {
    let message = device.messages(1).await.remove(0);
    let image = message
        .message
        .image_message
        .as_option()
        .cloned()
        .expect("an image message");
    (message, image)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_uploaded_once_and_sent_to_three_chats_is_opened_by_each_with_its_sha256() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let device = Device::pair(&fake, dir.path(), None).await;
    let client = device.client();

    let data = file(1024 * 1024 + 123, 1);
    let (ciphertext, info) = encrypt(&data);
    let uploaded = bounded(
        "the upload",
        client.upload_stream(ciphertext, info, MediaType::Document),
    )
    .await
    .expect("the fake's cdn takes the upload");

    for (n, friend) in FRIENDS.iter().enumerate() {
        let options = DocumentOptions {
            mimetype: Some("application/pdf".into()),
            file_name: Some("report.pdf".into()),
            caption: Some(format!("copy {n}")),
            ..Default::default()
        };
        let message = media::document_message(uploaded.clone(), options);
        client
            .send_message(user(friend), message)
            .await
            .expect("the send goes out");
    }
    let listed = media_listed(&fake, 3).await;
    let want = hex_sha256(&data);
    for (n, friend) in FRIENDS.iter().enumerate() {
        let to = format!("{friend}@s.whatsapp.net");
        let message = listed.iter().find(|m| m.to == to).expect("each chat got it");
        let media = message.media.as_ref().expect("the media is listed");
        assert_eq!(media.error, "", "the fake opened the file");
        assert_eq!(media.sha256, want, "the same bytes, decrypted");
        assert_eq!(media.size, data.len() as u64);
        assert_eq!(media.kind, i32::from(MediaKind::Document));
        assert_eq!(media.mime, "application/pdf");
        assert_eq!(media.file_name, "report.pdf");
        assert_eq!(media.caption, format!("copy {n}"));
        assert_eq!(message.text, format!("copy {n}"), "the caption is the text");
    }
    let seen = counts(&fake).await;
    assert_eq!(seen.uploads, 1, "uploaded once, sent three times");
    assert_eq!(seen.resume_checks, 0, "no resume check below 5 MiB");
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_note_arrives_as_a_voice_note_with_its_duration() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let device = Device::pair(&fake, dir.path(), None).await;
    let client = device.client();
    let data = file(40 * 1024, 2);
    let uploaded = bounded(
        "the upload",
        client.upload(data.clone(), MediaType::Audio, Default::default()),
    )
    .await
    .expect("the fake's cdn takes the upload");
    let options = AudioOptions {
        ptt: Some(true),
        duration_seconds: Some(7),
        ..Default::default()
    };
    client
        .send_message(user(FRIEND), media::audio_message(uploaded, options))
        .await
        .expect("the send goes out");
    let listed = media_listed(&fake, 1).await;
    let media = listed[0].media.as_ref().expect("the media is listed");
    assert_eq!(media.kind, i32::from(MediaKind::Audio));
    assert!(media.voice_note, "sent as a voice note (ptt)");
    assert_eq!(media.duration_seconds, 7);
    assert_eq!(media.mime, "audio/ogg; codecs=opus");
    assert_eq!(media.sha256, hex_sha256(&data));
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_a_phone_sends_downloads_with_the_same_bytes_until_it_expires_then_an_online_phone_reuploads_it() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::pair(&fake, dir.path(), None).await;
    let client = device.client();
    let data = file(300 * 1024, 3);
    let id = phone_sends_image(&fake, &data).await;
    let (message, mut image) = received_image(&mut device).await;
    assert_eq!(message.info.id, id);
    assert_eq!(image.caption.as_deref(), Some("look"));
    let downloaded = bounded("the download", client.download(&image))
        .await
        .expect("the download works");
    assert_eq!(downloaded, data, "the same bytes");

    let expire = ExpireMediaRequest {
        message_id: id.clone(),
        phone_online: true,
        ..Default::default()
    };
    fake.control
        .clone()
        .expire_media(expire)
        .await
        .expect("the file expires");
    let failed = bounded("the download", client.download(&image)).await;
    assert!(failed.is_err(), "an expired file does not download");
    // As the CDN answers: 410 for the expired file, 404 for a token not the file's.
    let token = BASE64_URL_SAFE_NO_PAD.encode(image.file_enc_sha256.clone().unwrap());
    let path = image.direct_path.clone().unwrap();
    let url = |token: &str| format!("https://{}{path}?token={token}", fake.running.cdn_addr);
    let gone = cdn_client().execute(HttpRequest::get(url(&token))).await.unwrap();
    assert_eq!(gone.status_code, 410, "expired");
    let unknown = cdn_client()
        .execute(HttpRequest::get(url("not-its-token")))
        .await
        .unwrap();
    assert_eq!(unknown.status_code, 404, "not the file's token");

    let (chat, key) = (user(FRIEND), image.media_key.clone().expect("a media key"));
    let request = MediaReuploadRequest {
        msg_id: &id,
        chat_jid: &chat,
        media_key: &key,
        is_from_me: false,
        participant: None,
    };
    let answered = bounded("the re-upload", client.media_reupload().request(&request)).await;
    let MediaRetryResult::Success { direct_path } = answered.expect("the phone answers") else {
        panic!("the phone re-uploads it");
    };
    assert_ne!(Some(&direct_path), image.direct_path.as_ref(), "a new path");
    image.direct_path = Some(direct_path);
    let downloaded = bounded("the download", client.download(&image))
        .await
        .expect("the new path works");
    assert_eq!(downloaded, data, "the same bytes again");
    let seen = counts(&fake).await;
    assert_eq!(seen.reupload_requests, 1);
    assert_eq!(seen.phone_uploads, 2, "sent once, re-uploaded once");
    assert!(seen.downloads >= 5);
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reupload_request_to_an_offline_phone_goes_unanswered() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::pair(&fake, dir.path(), None).await;
    let client = device.client();
    let id = phone_sends_image(&fake, &file(10 * 1024, 4)).await;
    let (_, image) = received_image(&mut device).await;
    let expire = ExpireMediaRequest {
        message_id: id.clone(),
        phone_online: false,
        ..Default::default()
    };
    fake.control
        .clone()
        .expire_media(expire)
        .await
        .expect("the file expires");
    let (chat, key) = (user(FRIEND), image.media_key.clone().expect("a media key"));
    let request = MediaReuploadRequest {
        msg_id: &id,
        chat_jid: &chat,
        media_key: &key,
        is_from_me: false,
        participant: None,
    };
    // The library waits 30 s for the phone; nothing comes within 3.
    let answered = tokio::time::timeout(Duration::from_secs(3), client.media_reupload().request(&request)).await;
    assert!(answered.is_err(), "no answer from an offline phone");
    bounded("the request counted", async {
        while counts(&fake).await.reupload_requests != 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        bounded("the download", client.download(&image)).await.is_err(),
        "still expired"
    );
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_broke_off_resumes_where_the_cdn_says_it_stopped() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let device = Device::pair(&fake, dir.path(), None).await;
    let client = device.client();
    let data = file(6 * 1024 * 1024 + 5, 5);
    let (ciphertext, info) = encrypt(&data);
    let token = BASE64_URL_SAFE_NO_PAD.encode(info.file_enc_sha256);
    let media_conn = client
        .refresh_media_conn(false)
        .await
        .expect("the fake answers media_conn");
    let host = media_conn.hosts[0].hostname.clone();
    let url = format!(
        "https://{host}/mms/document/{token}?auth={}&token={token}",
        media_conn.auth
    );

    // Without the media_conn auth token: 401 (the library refreshes it and retries).
    let wrong = format!("https://{host}/mms/document/{token}?auth=wrong&token={token}");
    let refused = cdn_client().execute(HttpRequest::post(wrong)).await.unwrap();
    assert_eq!(refused.status_code, 401);

    // A first attempt breaks off after 2 MiB.
    let (first, len) = (url.clone(), ciphertext.len() as u64);
    let body = BreaksOff {
        data: ciphertext.clone(),
        at: 2 * 1024 * 1024,
        sent: 0,
    };
    let broke =
        tokio::task::spawn_blocking(move || cdn_client().execute_upload(HttpRequest::post(first), Box::new(body), len));
    let broke = bounded("the broken upload", broke).await.unwrap();
    assert!(broke.map_or(true, |r| r.status_code >= 400), "the first attempt fails");
    bounded("the cdn to hold the first part", async {
        loop {
            let check = cdn_client()
                .execute(HttpRequest::post(format!("{url}&resume=1")))
                .await
                .unwrap();
            let progress: serde_json::Value = serde_json::from_slice(&check.body).unwrap_or_default();
            let held = progress["resume"].as_str().and_then(|n| n.parse::<u64>().ok());
            if held.is_some_and(|n| n > 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    let uploaded = bounded(
        "the upload",
        client.upload_stream(ciphertext, info, MediaType::Document),
    )
    .await
    .expect("the upload resumes");
    let message = media::document_message(uploaded, DocumentOptions::default());
    client
        .send_message(user(FRIEND), message)
        .await
        .expect("the send goes out");
    let listed = media_listed(&fake, 1).await;
    let media = listed[0].media.as_ref().expect("the media is listed");
    assert_eq!(media.sha256, hex_sha256(&data), "both parts, in order");
    let seen = counts(&fake).await;
    assert_eq!(
        (seen.uploads, seen.resumed_uploads),
        (1, 1),
        "completed once, from an offset"
    );
    device.stop().await;
}
