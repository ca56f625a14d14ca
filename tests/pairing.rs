//! Scanning through the emulator: pair-success, the routine 515 restart, CONNECTED;
//! and the refusals a phone would meet.

mod common;

use std::time::Duration;

use common::*;
use tonic::Code;
use wa_sessiond::proto::{RefreshQrRequest, ScanQrRequest, SessionStatus};

fn scan(id: &str, code: &str) -> ScanQrRequest {
    ScanQrRequest {
        session_id: id.into(),
        code: code.into(),
        phone_number: "15551234567".into(),
    }
}

#[tokio::test]
async fn scanning_the_current_code_goes_through_pairing_and_restart_to_connected() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |c| c.emulator_qr_delay = Duration::from_millis(150)).await;
    let mut client = daemon.sessions().await;
    let mut phone = daemon.phone().await;
    let created = client.create_session(create("alice")).await.unwrap().into_inner();

    let scanned = phone
        .scan_qr(scan("alice", &created.qr.unwrap().code))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(scanned.phone_number, "15551234567");

    let mut seen = Vec::new();
    let start = tokio::time::Instant::now();
    let connected = loop {
        let session = client.get_session(peek("alice")).await.unwrap().into_inner();
        if seen.last() != Some(&status(&session)) {
            seen.push(status(&session));
        }
        if status(&session) == SessionStatus::Connected {
            break session;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never CONNECTED: saw {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };

    let order: Vec<_> = seen
        .iter()
        .filter(|s| {
            matches!(
                s,
                SessionStatus::Pairing | SessionStatus::Restarting | SessionStatus::Connected
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            &SessionStatus::Pairing,
            &SessionStatus::Restarting,
            &SessionStatus::Connected
        ],
        "saw {seen:?}"
    );
    assert_eq!(connected.phone_number, "15551234567");
    assert!(connected.jid.starts_with("15551234567:") && connected.jid.ends_with("@s.whatsapp.net"));
    assert!(connected.qr.is_none());
    assert_eq!(connected.restart_count, 1, "the 515 restart is counted");
    assert!(connected.connected_at.is_some());

    let refresh = RefreshQrRequest {
        session_id: "alice".into(),
        ..Default::default()
    };
    let refused = client.refresh_qr(refresh).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    daemon.stop().await;
}

#[tokio::test]
async fn scanning_an_expired_or_unknown_code_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    let mut phone = daemon.phone().await;
    let created = client.create_session(create("bob")).await.unwrap().into_inner();
    let first_code = created.qr.unwrap().code;
    wait_session(&mut client, "bob", "the second code", |s| {
        s.qr.as_ref().is_some_and(|q| q.index == 2)
    })
    .await;

    let expired = phone.scan_qr(scan("bob", &first_code)).await.unwrap_err();
    assert_eq!(expired.code(), Code::FailedPrecondition);
    let made_up = phone.scan_qr(scan("bob", "2@nope,a,b,c,1")).await.unwrap_err();
    assert_eq!(made_up.code(), Code::FailedPrecondition);
    let mut bad_phone = scan("bob", "");
    bad_phone.phone_number = "+1 555".into();
    assert_eq!(
        phone.scan_qr(bad_phone).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let still = client.get_session(peek("bob")).await.unwrap().into_inner();
    assert_eq!(
        status(&still),
        SessionStatus::QrWaiting,
        "a refused scan changes nothing"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_paired_session_comes_back_connected_after_a_daemon_restart() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    let mut phone = daemon.phone().await;
    client.create_session(create("carol")).await.unwrap();
    phone.scan_qr(scan("carol", "")).await.unwrap();
    let before = wait_session(&mut client, "carol", "CONNECTED", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;
    client.create_session(create("dan")).await.unwrap();
    daemon.stop().await;

    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    let after = wait_session(&mut client, "carol", "CONNECTED again", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;
    assert_eq!(after.jid, before.jid, "the same linked device, no new QR");
    assert!(
        after.revision > before.revision,
        "revisions keep growing across restarts"
    );
    let unpaired = client.get_session(get("dan")).await.unwrap().into_inner();
    assert_eq!(status(&unpaired), SessionStatus::QrWaiting);
    assert!(unpaired.qr.is_some(), "an unpaired session pairs again on request");
    daemon.stop().await;
}
