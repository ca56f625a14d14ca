//! The daemon's core: a registry or gRPC server that ends by itself ends the
//! daemon with the reason (so Kubernetes restarts it); a delete of a session that is
//! restarting after a crash finishes once; a record that cannot be written (a full
//! disk) is the caller's error and leaves nothing half made; a QR validity no code
//! can meet is OUT_OF_RANGE.

mod common;

use std::{sync::Arc, time::Duration};

use common::{create, get, http_get, paired, status, stays_false, wait_for, Daemon};
use tokio::net::TcpListener;
use tonic::Code;
use wa_sessiond::{
    admin::Admin,
    app,
    proto::{CrashSessionRequest, DeleteSessionRequest, ListSessionsRequest, SessionStatus},
};

const BOUND: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_registry_that_dies_ends_the_daemon_with_the_reason_and_livez_fails() {
    let dir = tempfile::tempdir().unwrap();
    let wiring = app::Wiring::default();
    // An admin port of the test's own on the same readiness: it outlives the daemon.
    let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let probe_addr = probe.local_addr().unwrap();
    let admin = Admin {
        metrics: wiring.metrics.clone(),
        readiness: Arc::clone(&wiring.readiness),
    };
    let probe_task = tokio::spawn(admin.serve(probe));
    let daemon = Daemon::start_wired(dir.path(), |_| {}, wiring).await;
    daemon.sessions().await.create_session(create("alice")).await.unwrap();
    assert_eq!(http_get(probe_addr, "/livez").await.0, 200);

    daemon.registry.get().expect("the registry runs").kill();
    let ended = daemon
        .exited()
        .await
        .expect_err("a dead registry ends the daemon with an error");
    let line = ended.to_string();
    assert!(line.contains("the session registry ended unexpectedly"), "{line}");
    assert_eq!(
        http_get(probe_addr, "/livez").await,
        (503, "not live: the session registry ended\n".to_owned())
    );
    assert_eq!(http_get(probe_addr, "/readyz").await.0, 503);
    probe_task.abort();
}

#[tokio::test]
async fn deleting_a_session_restarting_after_a_crash_finishes_once_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    paired(&daemon, "alice").await;
    let folder = dir.path().join("sessions/alice");
    assert!(folder.exists());
    let mut sessions = daemon.sessions().await;
    let crash = CrashSessionRequest {
        session_id: "alice".into(),
        panic: false,
    };
    daemon.phone().await.crash_session(crash).await.unwrap();
    // The restart waits out its backoff (250 ms): the delete lands in between.
    let restarting = wait_for(BOUND, "the crash to be noticed", || {
        let mut sessions = sessions.clone();
        async move {
            let answer = sessions.get_session(get("alice")).await;
            answer.err().filter(|e| e.code() == Code::Unavailable)
        }
    })
    .await;
    assert!(restarting.message().contains("restarting"), "{}", restarting.message());
    let delete = || DeleteSessionRequest {
        session_id: "alice".into(),
    };
    sessions.delete_session(delete()).await.unwrap();

    assert_eq!(
        sessions.get_session(get("alice")).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        sessions.delete_session(delete()).await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(!folder.exists(), "its files are gone");
    // Past the backoff nothing brings it back, not even a restart of the daemon.
    stays_false(Duration::from_millis(600), "the deleted session coming back", || {
        let mut sessions = sessions.clone();
        async move {
            let listed = sessions.list_sessions(ListSessionsRequest::default()).await.unwrap();
            !listed.into_inner().sessions.is_empty()
        }
    })
    .await;
    daemon.stop().await;
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut sessions = daemon.sessions().await;
    assert_eq!(
        sessions.get_session(get("alice")).await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(!folder.exists());
    daemon.stop().await;
}

#[tokio::test]
async fn a_full_disk_refuses_the_create_with_the_data_dir_and_works_again_once_space_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let wiring = app::Wiring::default();
    let quota = wiring.db_quota.clone();
    let daemon = Daemon::start_wired(dir.path(), |_| {}, wiring).await;
    let mut sessions = daemon.sessions().await;
    sessions.create_session(create("alice")).await.unwrap();
    // No room to grow past the pages the list holds now.
    quota.set(1);
    let mut refused = None;
    for n in 0..2000 {
        let id = format!("s{n:04}");
        match sessions.create_session(create(&id)).await {
            Ok(_) => continue,
            Err(e) => {
                refused = Some((id, e));
                break;
            }
        }
    }
    let (id, refused) = refused.expect("a create that does not fit is refused");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{}", refused.message());
    let data_dir = dir.path().display().to_string();
    assert!(refused.message().contains(&data_dir), "{}", refused.message());
    assert!(refused.message().contains("full"), "{}", refused.message());
    // Nothing half made: the id is unknown, no folder, no actor restarting it.
    wait_for(BOUND, "the refused session to be forgotten", || {
        let mut sessions = sessions.clone();
        let id = id.clone();
        async move {
            let answer = sessions.get_session(get(&id)).await;
            answer.err().filter(|e| e.code() == Code::NotFound)
        }
    })
    .await;
    assert!(!dir.path().join("sessions").join(&id).exists());
    let crashes = daemon.scrape().await.value("wa_sessiond_session_crashes_total", &[]);
    assert_eq!(crashes, 0.0, "no crash, no restart loop");
    quota.set(0);
    let created = sessions.create_session(create(&id)).await.unwrap().into_inner();
    assert_eq!(status(&created), SessionStatus::QrWaiting);
    daemon.stop().await;
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut sessions = daemon.sessions().await;
    sessions
        .get_session(get(&id))
        .await
        .expect("stored once space was back");
    daemon.stop().await;
}

#[tokio::test]
async fn a_qr_validity_longer_than_any_code_lives_is_out_of_range_naming_the_longest() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut sessions = daemon.sessions().await;
    sessions.create_session(create("alice")).await.unwrap();
    let wish = |secs| wa_sessiond::proto::GetSessionRequest {
        session_id: "alice".into(),
        min_qr_validity: Some(prost_types::Duration {
            seconds: secs,
            nanos: 0,
        }),
        ..Default::default()
    };
    let refused = sessions.get_session(wish(600)).await.unwrap_err();
    assert_eq!(refused.code(), Code::OutOfRange, "{}", refused.message());
    // The test emulator's first code lives 1.5 s: the longest there is.
    assert!(refused.message().contains("1s 500ms"), "{}", refused.message());
    let served = sessions.get_session(wish(1)).await.unwrap().into_inner();
    let qr = served.qr.expect("a code");
    let expires = std::time::SystemTime::try_from(qr.expires_at.unwrap()).unwrap();
    let left = expires.duration_since(std::time::SystemTime::now()).unwrap_or_default();
    assert!(
        left >= Duration::from_millis(900),
        "a code valid about 1 s more: {left:?}"
    );
    daemon.stop().await;
}
