//! Watch streams: the current state first, then every change in order; fresh QRs
//! while someone looks; streams that end on delete; watchers released when clients go.

mod common;

use std::time::Duration;

use common::*;
use tonic::Code;
use wa_sessiond::proto::{
    DeleteSessionRequest, ScanQrRequest, SessionStatus, WatchSessionRequest, WatchSessionsRequest,
};

fn watch(id: &str, keep_qr_fresh: bool) -> WatchSessionRequest {
    WatchSessionRequest {
        session_id: id.into(),
        keep_qr_fresh,
        ..Default::default()
    }
}

#[tokio::test]
async fn watch_sees_the_first_state_each_rotation_and_pairing_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    client.create_session(create("alice")).await.unwrap();
    let mut stream = client.watch_session(watch("alice", false)).await.unwrap().into_inner();

    let first = next(&mut stream).await.unwrap();
    assert_eq!(status(&first), SessionStatus::QrWaiting);
    assert_eq!(first.qr.as_ref().unwrap().index, 1);
    let mut seen = vec![first];
    while seen.last().unwrap().qr.as_ref().map(|q| q.index) != Some(2) {
        seen.push(next(&mut stream).await.unwrap());
    }
    assert_eq!(
        qr_ttl(seen.last().unwrap()),
        NEXT_TTL,
        "the rotation carries its own expiry"
    );

    let scan = ScanQrRequest {
        session_id: "alice".into(),
        ..Default::default()
    };
    daemon.phone().await.scan_qr(scan).await.unwrap();
    while status(seen.last().unwrap()) != SessionStatus::Connected {
        seen.push(next(&mut stream).await.unwrap());
    }
    let statuses: Vec<_> = seen.iter().map(status).collect();
    let tail: Vec<_> = statuses.iter().rev().take(3).rev().collect();
    assert_eq!(
        tail,
        [
            &SessionStatus::Pairing,
            &SessionStatus::Restarting,
            &SessionStatus::Connected
        ],
        "{statuses:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0].revision < w[1].revision),
        "revisions strictly grow"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn keep_qr_fresh_regenerates_without_any_get() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    client.create_session(create("bob")).await.unwrap();
    let mut stream = client.watch_session(watch("bob", true)).await.unwrap().into_inner();

    let fresh = loop {
        let session = next(&mut stream).await.unwrap();
        if session.qr.as_ref().is_some_and(|q| q.generation == 2) {
            break session;
        }
    };
    assert!(qr_is_valid_now(&fresh));
    assert_eq!(daemon.connections("bob").await, 2);
    daemon.stop().await;
}

#[tokio::test]
async fn deleting_a_watched_session_ends_its_stream_and_unknown_ids_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    client.create_session(create("carol")).await.unwrap();
    let mut stream = client.watch_session(watch("carol", false)).await.unwrap().into_inner();
    next(&mut stream).await.unwrap();

    let delete = DeleteSessionRequest {
        session_id: "carol".into(),
    };
    client.delete_session(delete).await.unwrap();
    while next(&mut stream).await.is_some() {}

    let unknown = client.watch_session(watch("nobody", false)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    daemon.stop().await;
}

#[tokio::test]
async fn fifty_watchers_that_go_away_leave_no_subscriber_behind() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    client.create_session(create("dave")).await.unwrap();
    let mut streams = Vec::new();
    for _ in 0..50 {
        let mut stream = client.watch_session(watch("dave", true)).await.unwrap().into_inner();
        next(&mut stream).await.unwrap();
        streams.push(stream);
    }
    assert_eq!(daemon.metrics.watchers(), 50);

    drop(streams);

    let metrics = daemon.metrics.clone();
    wait_for(Duration::from_secs(5), "every watcher released", || {
        let metrics = metrics.clone();
        async move { (metrics.watchers() == 0).then_some(()) }
    })
    .await;
    daemon.stop().await;
}

#[tokio::test]
async fn watch_sessions_sees_every_session_and_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    client.create_session(create("erin")).await.unwrap();
    let mut events = client
        .watch_sessions(WatchSessionsRequest {})
        .await
        .unwrap()
        .into_inner();
    let current = next(&mut events).await.unwrap();
    assert_eq!(current.session.unwrap().id, "erin");

    client.create_session(create("frank")).await.unwrap();
    let delete = DeleteSessionRequest {
        session_id: "erin".into(),
    };
    client.delete_session(delete).await.unwrap();

    let (mut saw_frank, mut saw_erin_deleted) = (false, false);
    while !(saw_frank && saw_erin_deleted) {
        let event = next(&mut events).await.unwrap();
        let id = event.session.as_ref().unwrap().id.clone();
        saw_frank |= id == "frank";
        saw_erin_deleted |= id == "erin" && event.deleted;
    }
    daemon.stop().await;
}
