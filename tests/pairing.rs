//! The refusals a phone meets scanning through the emulator. (Scanning through to
//! CONNECTED and back after a restart is in `tests/fake_whatsapp/alike.rs`, run on
//! both backends.)

mod common;

use common::*;
use tonic::Code;
use wa_sessiond::proto::{ScanQrRequest, SessionStatus};

fn scan(id: &str, code: &str) -> ScanQrRequest {
    ScanQrRequest {
        session_id: id.into(),
        code: code.into(),
        phone_number: "15551234567".into(),
    }
}

#[tokio::test]
async fn scanning_a_superseded_or_unknown_code_is_refused() {
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
