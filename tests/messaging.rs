//! Sending texts and linking by pairing code.

mod common;

use common::*;
use tonic::Code;
use tonic_types::StatusExt;
use wa_sessiond::proto::{
    EnterPairingCodeRequest, ListSentMessagesRequest, RequestPairingCodeRequest, SendTextMessageRequest, SessionStatus,
};

fn send(id: &str, to: &str, text: &str) -> SendTextMessageRequest {
    SendTextMessageRequest {
        session_id: id.into(),
        to: to.into(),
        text: text.into(),
    }
}

#[tokio::test]
async fn a_text_sent_on_a_connected_session_reaches_whatsapp() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    paired(&daemon, "alice").await;

    let sent = client
        .send_text_message(send("alice", "+15550001111", "hello"))
        .await
        .unwrap()
        .into_inner();

    assert!(!sent.message_id.is_empty());
    assert!(sent.sent_at.is_some());
    let request = ListSentMessagesRequest {
        session_id: "alice".into(),
    };
    let list = daemon
        .phone()
        .await
        .list_sent_messages(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.messages.len(), 1);
    assert_eq!(list.messages[0].to, "15550001111@s.whatsapp.net");
    assert_eq!(list.messages[0].text, "hello");
    assert_eq!(list.messages[0].message_id, sent.message_id);
    daemon.stop().await;
}

#[tokio::test]
async fn sending_before_linking_says_not_connected_with_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    client.create_session(create("bob")).await.unwrap();

    let refused = client
        .send_text_message(send("bob", "15550001111", "hi"))
        .await
        .unwrap_err();

    assert_eq!(refused.code(), Code::FailedPrecondition);
    let details = refused.get_error_details();
    let info = details.error_info().expect("an ErrorInfo");
    assert_eq!(info.reason, "SESSION_NOT_CONNECTED");
    assert_eq!(
        info.metadata.get("status").map(String::as_str),
        Some("SESSION_STATUS_QR_WAITING")
    );
    assert!(!refused.message().contains("hi"), "no message body in errors");
    daemon.stop().await;
}

#[tokio::test]
async fn bad_recipients_and_texts_are_invalid_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    paired(&daemon, "carol").await;
    for (to, text) in [
        ("alice", "hi"),
        ("123@g.us", "hi"),
        ("+1 555", "hi"),
        ("15550001111", ""),
    ] {
        let error = client.send_text_message(send("carol", to, text)).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{to:?} {text:?}");
    }
    let huge = "x".repeat(70_000);
    let error = client
        .send_text_message(send("carol", "15550001111", &huge))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    daemon.stop().await;
}

#[tokio::test]
async fn a_pairing_code_links_the_phone_and_a_wrong_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    let mut phone = daemon.phone().await;
    client.create_session(create("dave")).await.unwrap();
    let request = RequestPairingCodeRequest {
        session_id: "dave".into(),
        phone_number: "+15557654321".into(),
    };
    let code = client.request_pairing_code(request.clone()).await.unwrap().into_inner();
    assert_eq!(code.code.len(), 9);
    assert_eq!(&code.code[4..5], "-");
    assert!(code.expires_at.is_some());

    let wrong = EnterPairingCodeRequest {
        session_id: "dave".into(),
        code: "AAAA-AAAA".into(),
    };
    assert_eq!(
        phone.enter_pairing_code(wrong).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    let right = EnterPairingCodeRequest {
        session_id: "dave".into(),
        code: code.code.clone(),
    };
    phone.enter_pairing_code(right).await.unwrap();

    let linked = wait_session(&mut client, "dave", "CONNECTED", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;
    assert_eq!(linked.phone_number, "15557654321");
    let again = client.request_pairing_code(request).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "already linked");
    let bad = RequestPairingCodeRequest {
        session_id: "dave".into(),
        phone_number: "call me".into(),
    };
    assert_eq!(
        client.request_pairing_code(bad).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    daemon.stop().await;
}

#[tokio::test]
async fn the_qr_keeps_working_while_a_pairing_code_is_out() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    client.create_session(create("erin")).await.unwrap();
    let request = RequestPairingCodeRequest {
        session_id: "erin".into(),
        phone_number: "15557654321".into(),
    };
    client.request_pairing_code(request).await.unwrap();

    let scan = wa_sessiond::proto::ScanQrRequest {
        session_id: "erin".into(),
        phone_number: "15550009999".into(),
        ..Default::default()
    };
    daemon.phone().await.scan_qr(scan).await.unwrap();
    let linked = wait_session(&mut client, "erin", "CONNECTED", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;
    assert_eq!(linked.phone_number, "15550009999", "the phone used the QR first");
    daemon.stop().await;
}

#[tokio::test]
async fn a_pairing_code_used_first_wins_and_the_qr_is_refused_after() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    let mut phone = daemon.phone().await;
    let created = client.create_session(create("fay")).await.unwrap().into_inner();
    let qr = created.qr.expect("a code while pairing").code;
    let request = RequestPairingCodeRequest {
        session_id: "fay".into(),
        phone_number: "15557654321".into(),
    };
    let code = client.request_pairing_code(request).await.unwrap().into_inner().code;

    let enter = EnterPairingCodeRequest {
        session_id: "fay".into(),
        code,
    };
    phone.enter_pairing_code(enter).await.unwrap();
    let linked = wait_session(&mut client, "fay", "CONNECTED", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;
    assert_eq!(
        linked.phone_number, "15557654321",
        "the phone used the pairing code first"
    );
    let late_scan = wa_sessiond::proto::ScanQrRequest {
        session_id: "fay".into(),
        phone_number: "15550009999".into(),
        code: qr,
    };
    let refused = phone.scan_qr(late_scan).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "the QR lost: {refused:?}");
    let still = client.get_session(get("fay")).await.unwrap().into_inner();
    assert_eq!(still.phone_number, "15557654321", "the link the code made stands");
    daemon.stop().await;
}

#[tokio::test]
async fn a_qr_used_first_wins_and_the_pairing_code_is_refused_after() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    let mut phone = daemon.phone().await;
    client.create_session(create("gus")).await.unwrap();
    let request = RequestPairingCodeRequest {
        session_id: "gus".into(),
        phone_number: "15557654321".into(),
    };
    let code = client.request_pairing_code(request).await.unwrap().into_inner().code;
    let scan = wa_sessiond::proto::ScanQrRequest {
        session_id: "gus".into(),
        phone_number: "15550009999".into(),
        ..Default::default()
    };
    phone.scan_qr(scan).await.unwrap();
    wait_session(&mut client, "gus", "CONNECTED", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;

    let late_code = EnterPairingCodeRequest {
        session_id: "gus".into(),
        code,
    };
    let refused = phone.enter_pairing_code(late_code).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "the code lost: {refused:?}");
    let still = client.get_session(get("gus")).await.unwrap().into_inner();
    assert_eq!(still.phone_number, "15550009999", "the link the QR made stands");
    daemon.stop().await;
}
