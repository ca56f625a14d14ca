//! Paced connects: never more than `--max-concurrent-connects` handshakes of linked
//! sessions, nor `--max-concurrent-pairings` pairing connections, in flight across
//! all sessions; the rest wait their turn and all get through. A width of 0 is
//! refused at start.

mod common;

use std::time::Duration;

use common::{create, paired, status, wait_session, Daemon};
use wa_sessiond::proto::SessionStatus;

const WIDTH: u32 = 2;

#[tokio::test]
async fn a_burst_of_creates_opens_at_most_the_bound_of_handshakes_at_once_and_all_get_a_code() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |c| {
        c.max_concurrent_pairings = WIDTH;
        c.emulator_qr_delay = Duration::from_millis(150);
    })
    .await;
    let sessions = daemon.sessions().await;
    let creates: Vec<_> = (0..8)
        .map(|n| {
            let mut sessions = sessions.clone();
            tokio::spawn(async move { sessions.create_session(create(&format!("s{n}"))).await })
        })
        .collect();
    for create in creates {
        let answer = create.await.unwrap();
        let session = answer.expect("every create gets its code in the end").into_inner();
        assert_eq!(status(&session), SessionStatus::QrWaiting);
        assert!(session.qr.is_some());
    }
    assert_eq!(daemon.metrics.pairing_connects.in_flight_peak(), i64::from(WIDTH));
    let scrape = daemon.scrape().await;
    assert_eq!(scrape.value("wa_sessiond_pairing_connects_waiting", &[]), 0.0);
    assert_eq!(scrape.value("wa_sessiond_pairing_connects_in_flight", &[]), 0.0);
    assert_eq!(scrape.value("wa_sessiond_connects_waiting", &[]), 0.0);
    assert_eq!(scrape.value("wa_sessiond_connects_in_flight", &[]), 0.0);
    assert_eq!(
        daemon.metrics.connects_in_flight_peak(),
        0,
        "pairings never take a reconnect's place"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_restore_of_linked_sessions_reconnects_them_all_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    for n in 0..10 {
        paired(&daemon, &format!("s{n}")).await;
    }
    daemon.stop().await;

    let daemon = Daemon::start(dir.path(), |c| {
        c.max_concurrent_connects = WIDTH;
        c.emulator_qr_delay = Duration::from_millis(100);
    })
    .await;
    let mut sessions = daemon.sessions().await;
    for n in 0..10 {
        let id = format!("s{n}");
        wait_session(&mut sessions, &id, "CONNECTED again", |s| {
            status(s) == SessionStatus::Connected
        })
        .await;
    }
    assert_eq!(daemon.metrics.connects_in_flight_peak(), i64::from(WIDTH));
    daemon.stop().await;
}

#[test]
fn a_pairing_width_of_0_exits_64_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wa-sessiond"))
        .args([
            "--backend",
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("WA_SESSIOND_MAX_CONCURRENT_PAIRINGS", "0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--max-concurrent-pairings") && stderr.contains("1..=10000"),
        "{stderr}"
    );
}
