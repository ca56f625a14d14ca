//! The QR lifecycle over real gRPC: first code in the create response, rotation on
//! WhatsApp's schedule, lazy regeneration shared by concurrent callers, refresh.

mod common;

use std::time::Duration;

use common::*;
use tonic::Code;
use wa_sessiond::proto::{RefreshQrRequest, SessionStatus};

#[tokio::test]
async fn create_returns_the_first_qr_code_in_the_response() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;

    let session = client.create_session(create("alice")).await.unwrap().into_inner();

    assert_eq!(status(&session), SessionStatus::QrWaiting);
    let qr = session.qr.as_ref().expect("the first code is in the create response");
    assert_eq!(qr.code.split(',').count(), 5, "ref,noise,identity,adv,client type");
    assert!(qr.code.starts_with("2@"));
    assert_eq!((qr.index, qr.count, qr.generation), (1, QR_COUNT, 1));
    assert_eq!(qr_ttl(&session), FIRST_TTL);
    assert!(qr.image.is_empty(), "no image unless asked");
    assert!(session.revision > 0);
    daemon.stop().await;
}

#[tokio::test]
async fn get_before_expiry_returns_the_same_code_and_after_rotation_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    let created = client.create_session(create("bob")).await.unwrap().into_inner();

    let again = client.get_session(get("bob")).await.unwrap().into_inner();
    assert_eq!(again.qr.as_ref().unwrap().code, created.qr.as_ref().unwrap().code);

    let rotated = wait_session(&mut client, "bob", "the second code", |s| {
        s.qr.as_ref().is_some_and(|q| q.index == 2)
    })
    .await;
    let qr = rotated.qr.as_ref().unwrap();
    assert_ne!(qr.code, created.qr.as_ref().unwrap().code);
    assert_eq!(qr.generation, 1);
    assert_eq!(
        qr_ttl(&rotated),
        NEXT_TTL,
        "later codes carry their own, shorter expiry"
    );
    assert!(rotated.revision > created.revision);
    daemon.stop().await;
}

/// Lets the batch of `id` run out and returns the lazy, expired state.
async fn exhausted(
    client: &mut wa_sessiond::proto::session_service_client::SessionServiceClient<tonic::transport::Channel>,
    id: &str,
) -> wa_sessiond::proto::Session {
    client.create_session(create(id)).await.unwrap();
    wait_session(client, id, "the batch to run out", |s| {
        s.disconnect_reason == wa_sessiond::proto::DisconnectReason::QrExhausted as i32
    })
    .await
}

#[tokio::test]
async fn concurrent_gets_on_an_exhausted_session_share_one_regeneration() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    exhausted(&mut client, "dave").await;

    let gets = (0..100).map(|_| {
        let mut client = client.clone();
        tokio::spawn(async move { client.get_session(get("dave")).await.unwrap().into_inner() })
    });
    let answers: Vec<_> = futures_join_all(gets).await;

    let first = answers[0].qr.as_ref().unwrap().clone();
    assert_eq!(first.generation, 2);
    assert!(
        answers.iter().all(|s| s.qr.as_ref() == Some(&first)),
        "all 100 callers get the same code"
    );
    assert_eq!(daemon.connections("dave").await, 2, "exactly one new connection");
    daemon.stop().await;
}

async fn futures_join_all<T: Send + 'static>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test]
async fn creating_an_existing_id_returns_it_unchanged_without_a_second_connection() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    let first = client.create_session(create("erin")).await.unwrap().into_inner();
    let second = client.create_session(create("erin")).await.unwrap().into_inner();
    assert_eq!(
        second.qr.as_ref().unwrap().generation,
        first.qr.as_ref().unwrap().generation
    );
    assert_eq!(second.qr.as_ref().unwrap().code, first.qr.as_ref().unwrap().code);
    assert_eq!(daemon.connections("erin").await, 1);
    daemon.stop().await;
}

#[tokio::test]
async fn min_qr_validity_gets_a_code_that_lasts_long_enough() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    client.create_session(create("gina")).await.unwrap();
    wait_session(&mut client, "gina", "the second code", |s| {
        s.qr.as_ref().is_some_and(|q| q.index == 2)
    })
    .await;

    let mut request = get("gina");
    request.min_qr_validity = Some(prost_types::Duration { seconds: 1, nanos: 0 });
    // The daemon answers after it was asked: the code lives at least 1 s past the
    // asking, whatever time the answer took (no slack to eat on a loaded machine).
    let asked = std::time::SystemTime::now();
    let session = client.get_session(request).await.unwrap().into_inner();

    let expires = std::time::SystemTime::try_from(session.qr.as_ref().unwrap().expires_at.unwrap()).unwrap();
    let left = expires.duration_since(asked).unwrap_or_default();
    assert!(left >= Duration::from_millis(900), "only {left:?} left");
    assert!(
        left >= Duration::from_secs(1),
        "valid 1 s past the asking, only {left:?}"
    );
    assert_eq!(
        session.qr.as_ref().unwrap().generation,
        2,
        "later codes are too short: a new batch"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn refresh_closes_the_old_connection_and_returns_a_new_generation() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    let mut phone = daemon.phone().await;
    let old = client.create_session(create("frank")).await.unwrap().into_inner();

    let refresh = RefreshQrRequest {
        session_id: "frank".into(),
        ..Default::default()
    };
    let fresh = client.refresh_qr(refresh).await.unwrap().into_inner();

    assert_eq!(fresh.qr.as_ref().unwrap().generation, 2);
    assert_eq!(fresh.qr.as_ref().unwrap().index, 1);
    assert_eq!(daemon.connections("frank").await, 2);
    let count = wa_sessiond::proto::CountConnectionsRequest {
        session_id: "frank".into(),
    };
    let counted = phone.count_connections(count).await.unwrap().into_inner();
    assert_eq!((counted.started, counted.open), (2, 1), "the old connection is closed");
    let scan_old = wa_sessiond::proto::ScanQrRequest {
        session_id: "frank".into(),
        code: old.qr.unwrap().code,
        phone_number: String::new(),
    };
    let refused = phone.scan_qr(scan_old).await.unwrap_err();
    assert_eq!(
        refused.code(),
        Code::FailedPrecondition,
        "the old connection's code is gone"
    );

    let unknown = RefreshQrRequest {
        session_id: "nobody".into(),
        ..Default::default()
    };
    assert_eq!(client.refresh_qr(unknown).await.unwrap_err().code(), Code::NotFound);
    daemon.stop().await;
}

#[tokio::test]
async fn count_connections_tells_started_and_open_per_session_and_for_all() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    let mut phone = daemon.phone().await;
    let count = |id: &str| wa_sessiond::proto::CountConnectionsRequest { session_id: id.into() };
    exhausted(&mut client, "gina").await;
    exhausted(&mut client, "hugo").await;

    let gina = phone.count_connections(count("gina")).await.unwrap().into_inner();
    assert_eq!(
        (gina.started, gina.open),
        (1, 0),
        "the batch ran out: its connection closed"
    );
    let all = phone.count_connections(count("")).await.unwrap().into_inner();
    assert_eq!((all.started, all.open), (2, 0));
    let unknown = phone.count_connections(count("nobody")).await.unwrap().into_inner();
    assert_eq!((unknown.started, unknown.open), (0, 0));
    let bad = phone.count_connections(count("../etc")).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    daemon.stop().await;
}
