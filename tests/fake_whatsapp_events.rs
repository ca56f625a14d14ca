//! The event log fed by the daemon's real backend (the unmodified whatsapp-rust
//! client) against the protocol-level fake WhatsApp, over real gRPC: a phone's
//! message arrives in StreamEvents with its text, sender and chat and is acked to
//! WhatsApp; what phones sent while the daemon was stopped arrives after a restart,
//! once each, marked offline, and the fake holds nothing more; a phone's receipt for
//! a text the session sent names its id; the session's status changes are logged.
//! Loopback only; every wait is bounded.

mod common;

use common::{fake::*, Daemon};
use fake_whatsapp::proto::{DropConnectionsRequest, SendReceiptRequest};
use tonic::transport::Channel;
use wa_sessiond::proto::{
    self, event::Body, event_service_client::EventServiceClient, EventKind, MessageKind, ReceiptKind, SessionStatus,
    StreamEventsRequest,
};

/// The linked account's phone.
const OWNER: &str = "15550001111";

/// A phone that writes to it.
const FRIEND: &str = "15550002222";

/// Another one.
const OTHER: &str = "15550003333";

fn jid(phone: &str) -> String {
    format!("{phone}@s.whatsapp.net")
}

async fn events(daemon: &Daemon) -> EventServiceClient<Channel> {
    EventServiceClient::new(daemon.channel().await)
}

/// The whole log of `kind` events, then live.
async fn stream(daemon: &Daemon, kind: EventKind) -> tonic::Streaming<proto::Event> {
    let request = StreamEventsRequest {
        from_beginning: true,
        kinds: vec![kind as i32],
        ..Default::default()
    };
    events(daemon).await.stream_events(request).await.unwrap().into_inner()
}

/// Reads events until `pick` returns Some, each within `STEP_BOUND`.
async fn until<T>(stream: &mut tonic::Streaming<proto::Event>, mut pick: impl FnMut(&proto::Event) -> Option<T>) -> T {
    loop {
        let event = tokio::time::timeout(STEP_BOUND, stream.message())
            .await
            .expect("an event within the bound")
            .expect("a healthy stream")
            .expect("the stream goes on");
        if let Some(found) = pick(&event) {
            return found;
        }
    }
}

fn message(event: &proto::Event) -> Option<proto::InboundMessage> {
    match &event.body {
        Some(Body::Message(m)) => Some(m.clone()),
        _ => None,
    }
}

#[tokio::test]
async fn a_phones_message_arrives_in_the_stream_with_its_text_sender_and_chat_and_whatsapp_hears_it_was_kept() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    pair(&daemon, &fake, "alice", OWNER).await;
    let mut messages = stream(&daemon, EventKind::Message).await;

    let text = "hello from a phone: ünïcödé ✓";
    let id = fake.send(OWNER, FRIEND, text).await;
    let got = until(&mut messages, message).await;
    assert_eq!(got.id, id);
    assert_eq!(got.text, text);
    assert_eq!(got.sender, jid(FRIEND));
    assert_eq!(got.chat, jid(FRIEND));
    assert_eq!(got.push_name, PUSH_NAME);
    assert_eq!(got.kind, MessageKind::Text as i32);
    assert!(got.sent_at.is_some());
    assert!(!got.from_me);
    assert!(!got.offline, "it came while the session was online");
    fake.wait_pending(OWNER, 0).await;
    daemon.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn messages_sent_while_the_daemon_is_stopped_arrive_after_a_restart_once_each_in_order_and_marked_offline() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    pair(&daemon, &fake, "bob", OWNER).await;
    daemon.stop().await;

    let texts = ["one", "two", "three"];
    let mut ids = Vec::new();
    for text in texts {
        ids.push(fake.send(OWNER, FRIEND, text).await);
    }
    ids.push(fake.send(OWNER, OTHER, "from another phone").await);
    assert_eq!(
        fake.pending(OWNER).await,
        4,
        "the fake holds them while the daemon is away"
    );

    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    let mut messages = stream(&daemon, EventKind::Message).await;
    let mut got = Vec::new();
    while got.len() < 4 {
        got.push(until(&mut messages, message).await);
    }
    let from_friend: Vec<_> = got
        .iter()
        .filter(|m| m.chat == jid(FRIEND))
        .map(|m| m.text.as_str())
        .collect();
    assert_eq!(from_friend, texts, "one chat's messages in the order they were sent");
    let mut got_ids: Vec<_> = got.iter().map(|m| m.id.clone()).collect();
    got_ids.sort();
    ids.sort();
    assert_eq!(got_ids, ids, "each message once");
    assert!(
        got.iter().all(|m| m.offline),
        "each came from the offline queue: {got:?}"
    );
    fake.wait_pending(OWNER, 0).await;

    // Nothing else is logged before the next live message: no redelivery twice.
    let live = fake.send(OWNER, FRIEND, "and now live").await;
    let next = until(&mut messages, message).await;
    assert_eq!((next.id.as_str(), next.offline), (live.as_str(), false));
    daemon.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn a_phones_read_receipt_for_a_text_the_session_sent_names_its_id() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    pair(&daemon, &fake, "carol", OWNER).await;
    let mut receipts = stream(&daemon, EventKind::Receipt).await;

    let send = proto::SendTextMessageRequest {
        session_id: "carol".into(),
        to: format!("+{FRIEND}"),
        text: "did you get this?".into(),
    };
    let sent = tokio::time::timeout(STEP_BOUND, daemon.sessions().await.send_text_message(send))
        .await
        .expect("the send answers within the bound")
        .unwrap()
        .into_inner();
    let read = SendReceiptRequest {
        to_phone_number: OWNER.into(),
        from_phone_number: FRIEND.into(),
        message_ids: vec![sent.message_id.clone()],
        kind: fake_whatsapp::proto::ReceiptKind::Read as i32,
    };
    fake.control.clone().send_receipt(read).await.unwrap();

    let receipt = until(&mut receipts, |e| match &e.body {
        Some(Body::Receipt(r)) => Some((e.session_id.clone(), r.clone())),
        _ => None,
    })
    .await;
    let (session_id, receipt) = receipt;
    assert_eq!(session_id, "carol");
    assert_eq!(receipt.message_ids, [sent.message_id]);
    assert_eq!(receipt.kind, ReceiptKind::Read as i32);
    assert_eq!(receipt.from, jid(FRIEND));
    assert_eq!(receipt.chat, jid(FRIEND));
    assert!(receipt.at.is_some());
    daemon.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn the_real_backends_status_changes_are_logged_through_pairing_and_a_dropped_socket() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    let mut statuses = stream(&daemon, EventKind::Status).await;
    pair(&daemon, &fake, "dave", OWNER).await;
    let drop = DropConnectionsRequest {
        phone_number: OWNER.into(),
    };
    fake.control.clone().drop_connections(drop).await.unwrap();

    let wanted = [
        SessionStatus::QrWaiting,
        SessionStatus::Pairing,
        SessionStatus::Connected,
        SessionStatus::Reconnecting,
        SessionStatus::Connected,
    ];
    let mut seen = Vec::new();
    let mut matched = 0;
    while matched < wanted.len() {
        let (session_id, status) = until(&mut statuses, |e| match &e.body {
            Some(Body::Status(s)) => Some((e.session_id.clone(), s.status)),
            _ => None,
        })
        .await;
        assert_eq!(session_id, "dave");
        let status = SessionStatus::try_from(status).unwrap();
        seen.push(status);
        if status == wanted[matched] {
            matched += 1;
        }
    }
    assert!(
        !seen.contains(&SessionStatus::Failed),
        "no failure on the way: {seen:?}"
    );
    daemon.stop().await;
    fake.running.stop().await;
}
