//! A session actor that crashes (an error from its handler, or a panic) on the real
//! backend: its WhatsApp connection closes with it, however it died, so the session
//! the registry restarts is CONNECTED again on one connection and never meets its
//! own orphan ("replaced", the 440 loop).

use wa_sessiond::proto::{CrashSessionRequest, DisconnectReason, SessionStatus};

use super::{
    common::{status, wait_for, Daemon},
    pair, wait_until, Fake, STEP_BOUND,
};

/// The linked account's phone.
const PHONE: &str = "15550004444";

async fn a_crash_closes_the_connection_and_the_restart_reconnects_once(panic: bool) {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    let linked = pair(&daemon, &fake, "alice", PHONE).await;
    let (started_before, open_before) = fake.connections().await;
    assert_eq!(open_before, 1, "one connection, online");

    let crash = CrashSessionRequest {
        session_id: "alice".into(),
        panic,
    };
    daemon.phone().await.crash_session(crash).await.unwrap();
    wait_for(STEP_BOUND, "the registry to restart the crashed session", || async {
        let restarts = daemon.scrape().await.value("wa_sessiond_session_restarts_total", &[]);
        (restarts >= 1.0).then_some(())
    })
    .await;
    // CONNECTED by the restarted actor: until it publishes, reads show the crashed
    // one's last state (CONNECTED, with the first connection's time).
    let back = wait_until(&daemon, "alice", "CONNECTED after the restart", |s| {
        assert_ne!(
            s.disconnect_reason,
            DisconnectReason::Replaced as i32,
            "the restarted session met its own orphan: {s:?}"
        );
        status(s) == SessionStatus::Connected && s.connected_at != linked.connected_at
    })
    .await;
    assert_eq!(back.phone_number, PHONE);
    wait_for(STEP_BOUND, "the crashed session's connection to close", || async {
        (fake.connections().await.1 == 1).then_some(())
    })
    .await;
    let (started, open) = fake.connections().await;
    assert_eq!(started, started_before + 1, "the restart opened exactly one connection");
    assert_eq!(open, 1, "only the restarted session's connection is open");
    let still = wait_until(&daemon, "alice", "still CONNECTED", |_| true).await;
    assert_eq!(status(&still), SessionStatus::Connected, "{still:?}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_session_actor_that_fails_closes_its_connection_and_reconnects_on_one() {
    a_crash_closes_the_connection_and_the_restart_reconnects_once(false).await;
}

#[tokio::test]
async fn a_session_actor_that_panics_closes_its_connection_and_reconnects_on_one() {
    a_crash_closes_the_connection_and_the_restart_reconnects_once(true).await;
}
