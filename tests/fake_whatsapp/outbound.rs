//! Sending through `SessionService.SendMessage`, one body per behaviour run on
//! both backends as `alike` does (`outbound::emulator::NAME`, `outbound::real::NAME`):
//! every kind of message reaches the server under the id the daemon answered,
//! with its quote or target, and reaches SERVER_ACK from the server's ack, then
//! DELIVERED and READ from the phone's receipts, each once in the event stream; a
//! nacked send is FAILED with WhatsApp's code and kept nowhere; a held ack keeps
//! a message SENT until the server releases it; typing and read marks reach the
//! server as sent; the account's health (`health`). And on the real backend alone, the
//! binary killed with -9 three times while the server holds acks: every accepted
//! message is at the server once, under the id the daemon answered (what the
//! restarts resend carries the same ids), and is acked once released.

use std::time::Duration;

use wa_sessiond::proto::{
    event::Body, event_service_client::EventServiceClient, send_message_request::Content, ChatState, Edit, EventKind,
    GetMessageStatusRequest, MarkReadRequest, MessageStatus, MessageStatusInfo, OutboundUpdate, Reaction, ReceiptKind,
    Revoke, SendChatStateRequest, SendMessageRequest, SessionStatus, StreamEventsRequest,
};

use super::{
    common::*,
    phone::{EmulatorPhone, FakePhone, Phone},
    received::{Kind, Received},
    wait_until, STEP_BOUND,
};

/// How long a status is watched for not moving.
const STILL_SPAN: Duration = Duration::from_secs(1);

/// The account every body links.
const OWNER: &str = "15550007777";

/// The chat every body writes to, and its phone.
const FRIEND: &str = "15559990000@s.whatsapp.net";
const FRIEND_PHONE: &str = "15559990000";

macro_rules! alike {
    ($($name:ident => $body:ident;)*) => {
        mod emulator {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    $body(&EmulatorPhone::start(None).await).await;
                }
            )*
        }
        mod real {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    $body(&FakePhone::start(None).await).await;
                }
            )*
        }
    };
}

alike! {
    texts_replies_reactions_edits_and_revokes_reach_the_server_under_their_ids_and_are_server_acked => every_kind;
    a_send_the_server_nacks_is_failed_with_its_code_and_kept_nowhere => nacked;
    a_held_ack_keeps_a_message_sent_until_the_server_releases_it => held;
    a_text_is_sent_then_server_acked_then_delivered_then_read_each_once_in_the_stream => receipts;
    typing_and_read_marks_reach_the_server_as_they_were_sent => typing_and_reads;
}

/// A daemon with session `id` linked to `OWNER`'s phone and CONNECTED.
async fn linked(phone: &impl Phone, id: &str) -> Daemon {
    let daemon = phone.daemon().await;
    let created = daemon.sessions().await.create_session(create(id)).await.unwrap();
    let code = created.into_inner().qr.expect("a first qr code").code;
    phone.scan(&daemon, id, &code, OWNER).await;
    wait_until(&daemon, id, "CONNECTED", |s| status(s) == SessionStatus::Connected).await;
    daemon
}

/// Sends `content` (replying to `reply_to`, if not empty) from session `id` to
/// `FRIEND`: the id the daemon answered, once it is SENT.
async fn send(daemon: &Daemon, id: &str, content: Content, reply_to: &str) -> String {
    let request = SendMessageRequest {
        session_id: id.into(),
        to: FRIEND.into(),
        reply_to_message_id: reply_to.into(),
        content: Some(content),
        ..Default::default()
    };
    let sent = tokio::time::timeout(STEP_BOUND, daemon.sessions().await.send_message(request))
        .await
        .expect("the send answers within the bound")
        .unwrap()
        .into_inner();
    assert_eq!(sent.status(), MessageStatus::Sent, "{sent:?}");
    sent.message_id
}

fn text(text: &str) -> Content {
    Content::Text(text.into())
}

async fn message_status(daemon: &Daemon, id: &str, message_id: &str) -> MessageStatusInfo {
    let request = GetMessageStatusRequest {
        session_id: id.into(),
        message_id: message_id.into(),
        ..Default::default()
    };
    daemon
        .sessions()
        .await
        .get_message_status(request)
        .await
        .unwrap()
        .into_inner()
}

/// Waits (bounded) until `message_id` reaches `wanted`.
async fn reaches(daemon: &Daemon, id: &str, message_id: &str, wanted: MessageStatus) -> MessageStatusInfo {
    wait_for(STEP_BOUND, &format!("{message_id} {wanted:?}"), || async {
        let info = message_status(daemon, id, message_id).await;
        (info.status() == wanted).then_some(info)
    })
    .await
}

/// Waits (bounded) until the server took `message_id` from session `id`.
async fn at_server(phone: &impl Phone, daemon: &Daemon, id: &str, message_id: &str) -> Received {
    wait_for(STEP_BOUND, &format!("{message_id} at the server"), || async {
        let received = phone.received(daemon, id, OWNER).await;
        received.into_iter().find(|m| m.id == message_id)
    })
    .await
}

async fn every_kind(phone: &impl Phone) {
    let daemon = linked(phone, "sam").await;
    let original = send(&daemon, "sam", text("the original"), "").await;
    assert!(
        original.starts_with("3EB0") && original.len() == 22,
        "the daemon's own id: {original}"
    );
    let reply = send(&daemon, "sam", text("a reply"), &original).await;
    let reaction = Content::Reaction(Reaction {
        message_id: original.clone(),
        emoji: "👍".into(),
    });
    let reaction = send(&daemon, "sam", reaction, "").await;
    let edit = Content::Edit(Edit {
        message_id: original.clone(),
        text: "the edited original".into(),
    });
    let edit = send(&daemon, "sam", edit, "").await;
    let revoke = send(
        &daemon,
        "sam",
        Content::Revoke(Revoke {
            message_id: original.clone(),
        }),
        "",
    )
    .await;

    let shown = |m: &Received| (m.kind, m.text.clone(), m.quoted_id.clone(), m.target_id.clone());
    let of = |kind, text: &str, quoted: &str, target: &str| (kind, text.into(), quoted.into(), target.into());
    let wanted = [
        (&original, of(Kind::Text, "the original", "", "")),
        (&reply, of(Kind::Text, "a reply", &original, "")),
        (&reaction, of(Kind::Reaction, "👍", "", &original)),
        (&edit, of(Kind::Edit, "the edited original", "", &original)),
        (&revoke, of(Kind::Revoke, "", "", &original)),
    ];
    for (message_id, expected) in wanted {
        let received = at_server(phone, &daemon, "sam", message_id).await;
        assert_eq!(shown(&received), expected, "{message_id}");
        assert_eq!(received.to, FRIEND);
        let info = reaches(&daemon, "sam", message_id, MessageStatus::ServerAck).await;
        assert_eq!((info.chat.as_str(), info.error_code), (FRIEND, 0));
    }
    let ids: Vec<String> = phone
        .received(&daemon, "sam", OWNER)
        .await
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, [original, reply, reaction, edit, revoke], "each once, in order");
    daemon.stop().await;
}

async fn nacked(phone: &impl Phone) {
    let daemon = linked(phone, "tess").await;
    phone.reject_sends(&daemon, "tess", OWNER, 463, 1).await;
    let refused = send(&daemon, "tess", text("to a chat the account may not start"), "").await;
    let info = reaches(&daemon, "tess", &refused, MessageStatus::Failed).await;
    assert_eq!(info.error_code, 463);

    let accepted = send(&daemon, "tess", text("once the refusal ran out"), "").await;
    reaches(&daemon, "tess", &accepted, MessageStatus::ServerAck).await;
    at_server(phone, &daemon, "tess", &accepted).await;
    let received = phone.received(&daemon, "tess", OWNER).await;
    assert!(
        received.iter().all(|m| m.id != refused),
        "a nacked send is kept nowhere"
    );
    daemon.stop().await;
}

async fn held(phone: &impl Phone) {
    let daemon = linked(phone, "ugo").await;
    phone.hold_acks(&daemon, "ugo", OWNER, true).await;
    let message_id = send(&daemon, "ugo", text("waiting for its ack"), "").await;
    at_server(phone, &daemon, "ugo", &message_id).await;
    stays_false(STILL_SPAN, "no ack, no SERVER_ACK", || async {
        message_status(&daemon, "ugo", &message_id).await.status() != MessageStatus::Sent
    })
    .await;

    phone.hold_acks(&daemon, "ugo", OWNER, false).await;
    reaches(&daemon, "ugo", &message_id, MessageStatus::ServerAck).await;
    daemon.stop().await;
}

/// The session's outbound updates, from the beginning of its log.
async fn outbound_stream(daemon: &Daemon, id: &str) -> tonic::Streaming<wa_sessiond::proto::Event> {
    let request = StreamEventsRequest {
        session_ids: vec![id.into()],
        from_beginning: true,
        kinds: vec![EventKind::Outbound as i32],
        ..Default::default()
    };
    let mut events = EventServiceClient::new(daemon.channel().await);
    events.stream_events(request).await.unwrap().into_inner()
}

/// The next update's message id and status.
async fn next_update(stream: &mut tonic::Streaming<wa_sessiond::proto::Event>) -> (String, MessageStatus) {
    match next(stream).await.expect("the stream goes on").body {
        Some(Body::Outbound(OutboundUpdate { message_id, status, .. })) => {
            (message_id, MessageStatus::try_from(status).unwrap())
        }
        other => panic!("expected an outbound update, got {other:?}"),
    }
}

async fn receipts(phone: &impl Phone) {
    let daemon = linked(phone, "wes").await;
    let mut stream = outbound_stream(&daemon, "wes").await;
    let message_id = send(&daemon, "wes", text("your order shipped"), "").await;
    let update = |status| (message_id.clone(), status);
    assert_eq!(next_update(&mut stream).await, update(MessageStatus::Sent));
    assert_eq!(next_update(&mut stream).await, update(MessageStatus::ServerAck));
    let receipt = |kind| phone.receipt(&daemon, "wes", OWNER, FRIEND_PHONE, &message_id, kind);
    receipt(ReceiptKind::Delivered).await;
    assert_eq!(next_update(&mut stream).await, update(MessageStatus::Delivered));
    receipt(ReceiptKind::Read).await;
    assert_eq!(next_update(&mut stream).await, update(MessageStatus::Read));

    // A late DELIVERED changes nothing: the next update is the marker's.
    receipt(ReceiptKind::Delivered).await;
    let marker = send(&daemon, "wes", text("marker"), "").await;
    assert_eq!(next_update(&mut stream).await, (marker, MessageStatus::Sent));
    let info = message_status(&daemon, "wes", &message_id).await;
    assert_eq!(info.status(), MessageStatus::Read);
    daemon.stop().await;
}

async fn typing_and_reads(phone: &impl Phone) {
    let daemon = linked(phone, "xia").await;
    let mut client = daemon.sessions().await;
    for state in [ChatState::Composing, ChatState::Recording, ChatState::Paused] {
        let typing = SendChatStateRequest {
            session_id: "xia".into(),
            to: FRIEND.into(),
            state: state as i32,
        };
        client.send_chat_state(typing).await.unwrap();
    }
    let read = MarkReadRequest {
        session_id: "xia".into(),
        chat: FRIEND.into(),
        message_ids: vec!["AAA1".into(), "AAA2".into()],
        ..Default::default()
    };
    client.mark_read(read).await.unwrap();

    let signals = wait_for(STEP_BOUND, "the read marks at the server", || async {
        let received = phone.received(&daemon, "xia", OWNER).await;
        let signals: Vec<_> = received
            .into_iter()
            .filter(|m| matches!(m.kind, Kind::ChatState | Kind::Read))
            .map(|m| (m.kind, m.state, m.target_id, m.to))
            .collect();
        signals.iter().any(|(kind, ..)| *kind == Kind::Read).then_some(signals)
    })
    .await;
    let of = |kind, state: &str, target: &str| (kind, state.to_owned(), target.to_owned(), FRIEND.to_owned());
    let wanted = [
        of(Kind::ChatState, "composing", ""),
        of(Kind::ChatState, "recording", ""),
        of(Kind::ChatState, "paused", ""),
        of(Kind::Read, "", "AAA1,AAA2"),
    ];
    assert_eq!(signals, wanted);
    daemon.stop().await;
}

/// Campaigns end to end and their protective pauses, on both backends.
mod campaign;
/// The account's health (new chats barred, a temporary ban) on both backends.
mod health;

/// The daemon binary on the real backend, killed with -9 while the fake holds
/// its acks.
mod killed;
