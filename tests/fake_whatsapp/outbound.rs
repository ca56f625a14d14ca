//! Sending through `SessionService.SendMessage`, one body per behaviour run on
//! both backends as `alike` does (`outbound::emulator::NAME`, `outbound::real::NAME`):
//! every kind of message reaches the server under the id the daemon answered,
//! with its quote or target, and reaches SERVER_ACK from the server's ack, then
//! DELIVERED and READ from the phone's receipts, each once in the event stream; a
//! nacked send is FAILED with WhatsApp's code and kept nowhere; a held ack keeps
//! a message SENT until the server releases it. And on the real backend alone, the
//! binary killed with -9 three times while the server holds acks: every accepted
//! message is at the server once, under the id the daemon answered (what the
//! restarts resend carries the same ids), and is acked once released.

use std::time::Duration;

use wa_sessiond::proto::{
    event::Body, event_service_client::EventServiceClient, send_message_request::Content, Edit, EventKind,
    GetMessageStatusRequest, MessageStatus, MessageStatusInfo, OutboundUpdate, Reaction, ReceiptKind, Revoke,
    SendMessageRequest, SessionStatus, StreamEventsRequest,
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

/// The daemon binary on the real backend, killed with -9 while the fake holds
/// its acks.
mod killed {
    use fake_whatsapp::proto::{HoldServerAcksRequest, ListReceivedMessagesRequest, ReceivedMessage, ScanQrRequest};

    use super::*;
    use crate::{common::process::Process, Fake};

    /// Messages accepted before each kill.
    const PER_ROUND: usize = 20;

    /// Kills.
    const ROUNDS: usize = 3;

    async fn connected(daemon: &Process) {
        let mut sessions = daemon.sessions().await;
        let is_connected = |s: &wa_sessiond::proto::Session| status(s) == SessionStatus::Connected;
        wait_session(&mut sessions, "vic", "vic CONNECTED", is_connected).await;
    }

    async fn hold(fake: &Fake, hold: bool) {
        let request = HoldServerAcksRequest {
            phone_number: OWNER.into(),
            hold,
        };
        fake.control.clone().hold_server_acks(request).await.unwrap();
    }

    async fn received(fake: &Fake) -> Vec<ReceivedMessage> {
        let listed = fake
            .control
            .clone()
            .list_received_messages(ListReceivedMessagesRequest {})
            .await;
        listed.unwrap().into_inner().messages
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn messages_accepted_before_each_of_three_kills_are_at_the_server_once_under_their_ids_and_acked() {
        let fake = Fake::start().await;
        let dir = tempfile::tempdir().unwrap();
        let url = fake.running.url();
        hold(&fake, true).await;
        let mut accepted = Vec::new();
        for round in 0..ROUNDS {
            let daemon = Process::start_real(dir.path(), &url, &[]).await;
            let mut sessions = daemon.sessions().await;
            if round == 0 {
                let created = sessions.create_session(create("vic")).await.unwrap();
                let code = created.into_inner().qr.expect("a first qr code").code;
                let scan = ScanQrRequest {
                    code,
                    phone_number: OWNER.into(),
                };
                fake.control.clone().scan_qr(scan).await.unwrap();
            }
            connected(&daemon).await;
            for n in 0..PER_ROUND {
                let request = SendMessageRequest {
                    session_id: "vic".into(),
                    to: FRIEND.into(),
                    content: Some(text(&format!("round {round} message {n}"))),
                    ..Default::default()
                };
                let sent = sessions.send_message(request).await.unwrap().into_inner();
                accepted.push((sent.message_id, format!("round {round} message {n}")));
            }
            // At once: some of the round's messages may not have left yet.
            daemon.kill9();
        }

        let daemon = Process::start_real(dir.path(), &url, &[]).await;
        connected(&daemon).await;
        let every = wait_for(STEP_BOUND, "every accepted message at the server", || async {
            let received = received(&fake).await;
            let all = accepted.iter().all(|(id, _)| received.iter().any(|m| m.id == *id));
            all.then_some(received)
        })
        .await;
        for (id, body) in &accepted {
            let copies: Vec<_> = every.iter().filter(|m| m.id == *id).collect();
            assert_eq!(copies.len(), 1, "{id} once at the server");
            assert_eq!(copies[0].text, *body, "{id} under its own id");
        }
        assert_eq!(every.len(), accepted.len(), "nothing else at the server");

        hold(&fake, false).await;
        let sessions = daemon.sessions().await;
        for (id, _) in &accepted {
            wait_for(STEP_BOUND, &format!("{id} SERVER_ACK"), || {
                let mut sessions = sessions.clone();
                async move {
                    let request = GetMessageStatusRequest {
                        session_id: "vic".into(),
                        message_id: id.clone(),
                        ..Default::default()
                    };
                    let info = sessions.get_message_status(request).await.ok()?.into_inner();
                    (info.status() == MessageStatus::ServerAck).then_some(())
                }
            })
            .await;
        }
        let after = received(&fake).await;
        assert_eq!(after.len(), accepted.len(), "the resends added nothing: {after:?}");
    }
}
