//! Each status once, in order, in the stream and by asking; WhatsApp's nack; expiry.

use wa_sessiond::proto::{HoldServerAcksRequest, ReceiptKind, RejectSendsRequest, SendReceiptRequest};

use super::*;

async fn receipt(daemon: &Daemon, id: &str, message_id: &str, kind: ReceiptKind) {
    let request = SendReceiptRequest {
        session_id: id.into(),
        message_id: message_id.into(),
        kind: kind as i32,
    };
    daemon.phone().await.send_receipt(request).await.unwrap();
}

#[tokio::test]
async fn a_text_is_sent_then_server_acked_then_delivered_then_read_each_once_and_never_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    paired(&daemon, "alice").await;
    let mut stream = outbound_stream(&daemon, "alice").await;

    let sent = send(
        &mut client,
        text("alice", "+15550001111", "order-1", "your order shipped"),
    )
    .await;
    assert_eq!(sent.status, MessageStatus::Sent as i32, "answered once handed over");
    assert!(
        sent.message_id.starts_with("3EB0") && sent.message_id.len() == 22,
        "{}",
        sent.message_id
    );
    let first = next_update(&mut stream).await;
    assert_eq!(
        (status_is(&first), first.message_id.as_str()),
        (MessageStatus::Sent, sent.message_id.as_str())
    );
    assert_eq!(first.client_message_id, "order-1");
    assert_eq!(first.chat, "15550001111@s.whatsapp.net");
    assert_eq!(status_is(&next_update(&mut stream).await), MessageStatus::ServerAck);
    wait_status(&daemon, "alice", &sent.message_id, MessageStatus::ServerAck).await;

    receipt(&daemon, "alice", &sent.message_id, ReceiptKind::Delivered).await;
    assert_eq!(status_is(&next_update(&mut stream).await), MessageStatus::Delivered);
    receipt(&daemon, "alice", &sent.message_id, ReceiptKind::Read).await;
    assert_eq!(status_is(&next_update(&mut stream).await), MessageStatus::Read);
    // A late DELIVERED after READ changes nothing: the next update is the marker's.
    receipt(&daemon, "alice", &sent.message_id, ReceiptKind::Delivered).await;
    let marker = send(&mut client, text("alice", "+15550001111", "", "marker")).await;
    let after = next_update(&mut stream).await;
    assert_eq!(
        after.message_id, marker.message_id,
        "no DELIVERED after READ: {after:?}"
    );

    let by_key = GetMessageStatusRequest {
        session_id: "alice".into(),
        client_message_id: "order-1".into(),
        ..Default::default()
    };
    let info = client.get_message_status(by_key).await.unwrap().into_inner();
    assert_eq!(info.status, MessageStatus::Read as i32);
    assert_eq!(info.message_id, sent.message_id);
    assert_eq!(at_server(&daemon, "alice").await.len(), 2);
    daemon.stop().await;
}

#[tokio::test]
async fn a_send_whatsapp_nacks_is_failed_with_its_code_and_the_next_one_goes_through() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    paired(&daemon, "alice").await;
    let reject = RejectSendsRequest {
        session_id: "alice".into(),
        code: 463,
        count: 1,
    };
    daemon.phone().await.reject_sends(reject).await.unwrap();

    let refused = send(&mut client, text("alice", "+15550002222", "", "hello stranger")).await;
    let failed = wait_status(&daemon, "alice", &refused.message_id, MessageStatus::Failed).await;
    assert_eq!(failed.error_code, 463);
    assert!(failed.error.contains("463"), "{}", failed.error);
    let mut stream = outbound_stream(&daemon, "alice").await;
    let statuses = [next_update(&mut stream).await, next_update(&mut stream).await];
    assert_eq!(
        statuses.map(|u| (status_is(&u), u.error_code)),
        [(MessageStatus::Sent, 0), (MessageStatus::Failed, 463)]
    );

    let next_one = send(&mut client, text("alice", "+15550002222", "", "second try")).await;
    wait_status(&daemon, "alice", &next_one.message_id, MessageStatus::ServerAck).await;
    let ids: Vec<_> = at_server(&daemon, "alice")
        .await
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(ids, [next_one.message_id], "the nacked message never reached a phone");
    daemon.stop().await;
}

#[tokio::test]
async fn held_acks_leave_messages_sent_until_released_then_server_acked() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    paired(&daemon, "alice").await;
    let hold = |hold| HoldServerAcksRequest {
        session_id: "alice".into(),
        hold,
    };
    daemon.phone().await.hold_server_acks(hold(true)).await.unwrap();
    let held = send(&mut client, text("alice", "+15550003333", "", "held")).await;
    // The server has it, and still no ack.
    assert_eq!(at_server(&daemon, "alice").await.len(), 1);
    assert_eq!(
        status_of(&mut client, "alice", &held.message_id).await.status,
        MessageStatus::Sent as i32
    );
    daemon.phone().await.hold_server_acks(hold(false)).await.unwrap();
    wait_status(&daemon, "alice", &held.message_id, MessageStatus::ServerAck).await;
    daemon.stop().await;
}

#[tokio::test]
async fn an_unknown_message_or_session_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    paired(&daemon, "alice").await;
    let ask = |session: &str, message: &str| GetMessageStatusRequest {
        session_id: session.into(),
        message_id: message.into(),
        ..Default::default()
    };
    let missing = client.get_message_status(ask("alice", "3EB0NOPE")).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert!(missing.message().contains("3EB0NOPE"), "{}", missing.message());
    let no_session = client.get_message_status(ask("nobody", "3EB0NOPE")).await.unwrap_err();
    assert_eq!(no_session.code(), tonic::Code::NotFound);
    let neither = client.get_message_status(ask("alice", "")).await.unwrap_err();
    assert_eq!(neither.code(), tonic::Code::InvalidArgument);
    daemon.stop().await;
}
