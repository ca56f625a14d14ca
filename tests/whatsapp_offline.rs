//! The real WhatsApp backend when WhatsApp cannot be reached (it dials a closed local
//! port: tests never touch the network): creating a session answers within the
//! bound with the cause, the session keeps it in `last_error`, and the daemon keeps
//! serving.

mod common;

use std::time::Duration;

use common::*;
use tonic::Code;
use wa_sessiond::{config::BackendKind, proto::SessionStatus};

/// The QR timeout of this test.
const QR_TIMEOUT: Duration = Duration::from_secs(4);

/// The bound on an answer: the QR timeout, plus the time to build a client.
const ANSWER_BOUND: Duration = Duration::from_secs(20);

#[tokio::test]
async fn creating_a_session_offline_names_the_cause_and_the_daemon_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |c| {
        c.backend = BackendKind::Whatsapp;
        c.whatsapp_url = closed_local_url();
        c.qr_timeout = QR_TIMEOUT;
    })
    .await;
    let mut client = daemon.sessions().await;

    for id in ["offline-a", "offline-b"] {
        let answer = tokio::time::timeout(ANSWER_BOUND, client.create_session(create(id)))
            .await
            .expect("CreateSession answers within the bound");
        match answer {
            Ok(session) => panic!("nothing listens there, yet {:?}", session.into_inner()),
            Err(error) => {
                assert!(
                    matches!(error.code(), Code::Unavailable | Code::DeadlineExceeded),
                    "{error:?}"
                );
                assert!(
                    error.message().contains("whatsapp") || error.message().contains("qr code"),
                    "{}",
                    error.message()
                );
                if error.code() == Code::Unavailable {
                    let cause = error.message();
                    assert!(
                        ["dns", "tcp", "tls", "handshake", "timed out"]
                            .iter()
                            .any(|w| cause.contains(w)),
                        "{cause}"
                    );
                }
                let failed =
                    wait_session(&mut client, id, "the cause in last_error", |s| !s.last_error.is_empty()).await;
                assert_eq!(status(&failed), SessionStatus::Failed);
                assert!(failed.qr.is_none());
            }
        }
        assert_store_is_private(&dir.path().join("sessions").join(id));
    }

    assert_serving(&daemon).await;
    daemon.stop().await;
}

#[tokio::test]
async fn offline_a_create_is_unavailable_with_the_cause_long_before_the_qr_timeout() {
    // A QR timeout far past the bound: only the reachability probe can answer in time.
    const LONG_QR_TIMEOUT: Duration = Duration::from_secs(300);
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |c| {
        c.backend = BackendKind::Whatsapp;
        c.whatsapp_url = closed_local_url();
        c.qr_timeout = LONG_QR_TIMEOUT;
        c.refresh_timeout = LONG_QR_TIMEOUT;
    })
    .await;
    let mut client = daemon.sessions().await;
    let answer = tokio::time::timeout(ANSWER_BOUND, client.create_session(create("offline")))
        .await
        .expect("CreateSession answers within seconds, not after --qr-timeout");
    let error = answer.expect_err("nothing listens there");
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    let cause = error.message();
    assert!(
        cause.contains("tcp") || cause.contains("refused"),
        "names the cause: {cause}"
    );
    let failed = wait_session(&mut client, "offline", "the cause in last_error", |s| {
        !s.last_error.is_empty()
    })
    .await;
    assert_eq!(status(&failed), SessionStatus::Failed);
    assert_serving(&daemon).await;
    daemon.stop().await;
}

/// The session's folder is the owner's only, and so is the store if it exists.
fn assert_store_is_private(session_dir: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(session_dir), 0o700);
        let db = session_dir.join("whatsapp.db");
        if db.exists() {
            assert_eq!(mode(&db), 0o600);
        }
    }
}

async fn assert_serving(daemon: &Daemon) {
    use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};
    let mut health = HealthClient::new(daemon.channel().await);
    let request = HealthCheckRequest {
        service: "wasessiond.v1.SessionService".into(),
    };
    let answer = health.check(request).await.unwrap().into_inner();
    assert_eq!(answer.status, ServingStatus::Serving as i32);
}
