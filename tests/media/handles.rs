//! What the daemon keeps of an upload, apart from any backend: the handle outlives
//! a restart, stops working after `--media-handle-ttl`, and goes with its session;
//! so do the emulated CDN's copies of the session's files.

use std::path::Path;

use std::time::Duration;

use tonic::Code;
use wa_sessiond::proto::{
    send_message_request::Content, DeleteSessionRequest, MediaContent, MediaKind, SendMessageRequest,
};

use super::{
    common::*,
    emulator::Emulated,
    world::{handles, noise, refused, upload, World},
};

fn send(media_id: &str) -> SendMessageRequest {
    SendMessageRequest {
        session_id: "alice".into(),
        to: "+15550000001".into(),
        content: Some(Content::Media(MediaContent {
            media_id: media_id.into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_handle_outlives_a_restart_then_expires_after_its_ttl() {
    let world = Emulated::start_with(|config| config.media.media_handle_ttl = Duration::from_secs(8)).await;
    let handle = upload(&world, MediaKind::Image, "image/png", &noise(10_000, 2)).await;
    let world = world.restart().await;
    let mut client = world.sessions().await;
    client
        .send_message(send(&handle.media_id))
        .await
        .expect("the handle works after a restart");
    wait_for(Duration::from_secs(20), "the handle to expire", || {
        let mut client = client.clone();
        let id = handle.media_id.clone();
        async move { client.send_message(send(&id)).await.err() }
    })
    .await;
    let expired = client.send_message(send(&handle.media_id)).await;
    refused(expired, Code::NotFound, &handle.media_id);
}

#[tokio::test]
async fn deleting_the_session_forgets_its_handles() {
    let world = Emulated::start().await;
    upload(&world, MediaKind::Image, "image/png", &noise(10_000, 3)).await;
    assert_eq!(handles(&world), 1);
    let mut client = world.sessions().await;
    let delete = DeleteSessionRequest {
        session_id: "alice".into(),
    };
    client.delete_session(delete).await.unwrap();
    wait_for(Duration::from_secs(10), "the handles gone", || async {
        (handles(&world) == 0).then_some(())
    })
    .await;
}

/// Files anywhere under `dir` holding `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                files_holding(&path, needle)
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                usize::from(bytes.windows(needle.len()).any(|w| w == needle))
            }
        })
        .sum()
}

#[tokio::test]
async fn deleting_the_session_removes_its_files_from_the_emulated_cdn() {
    let world = Emulated::start().await;
    let (sent, received) = (noise(100_000, 4), noise(50_000, 5));
    upload(&world, MediaKind::Document, "application/pdf", &sent).await;
    world
        .deliver_media("15550000009", MediaKind::Image, received.clone(), "")
        .await;
    let (sent_tail, received_tail) = (&sent[sent.len() - 64..], &received[received.len() - 64..]);
    assert!(
        files_holding(world.data_dir(), sent_tail) > 0,
        "the upload is on the emulated cdn"
    );
    assert!(
        files_holding(world.data_dir(), received_tail) > 0,
        "the phone's file is on the emulated cdn"
    );
    let mut client = world.sessions().await;
    let delete = DeleteSessionRequest {
        session_id: "alice".into(),
    };
    client.delete_session(delete).await.unwrap();
    wait_for(
        Duration::from_secs(10),
        "the session's files gone from the data dir",
        || async {
            (files_holding(world.data_dir(), sent_tail) + files_holding(world.data_dir(), received_tail) == 0)
                .then_some(())
        },
    )
    .await;
}
