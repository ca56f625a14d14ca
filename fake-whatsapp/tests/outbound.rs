//! What a linked device sends, against the unmodified whatsapp-rust client: the
//! fake lists texts, replies, reactions, edits and revokes as the recipient's
//! phone shows them, each id once however many times it was sent, and chat
//! states and read receipts as they come; `RejectSends`
//! nacks the next sends with a code (the client's `ServerAck` carries it) and
//! lists nothing; `HoldServerAcks` lists the sends but owes their acks until the
//! release, on the open connection or at the next one. Loopback only; every
//! wait is bounded.

mod common;

use std::time::Duration;

use common::*;
use fake_whatsapp::proto::{
    HoldServerAcksRequest, ListReceivedMessagesRequest, MessageKind, ReceivedMessage, RejectSendsRequest,
};
use whatsapp_rust::{
    send::{EditOptions, RevokeType, SendOptions},
    types::events::Event,
    wacore::proto_helpers::{build_quote_context_with_info, MessageBuilderExt},
    waproto::whatsapp as wa,
};

/// How long "no ack" is watched for.
const NO_ACK_SPAN: Duration = Duration::from_secs(1);

/// The next ack or nack of one of `ids` the client reports: the id and the nack's
/// code.
async fn ack_among(device: &mut Device, ids: &[String]) -> (String, Option<String>) {
    device
        .next(|event| match event {
            Event::ServerAck(ack) if ack.class.as_deref() == Some("message") && ids.contains(&ack.id) => {
                Some((ack.id.clone(), ack.error.clone()))
            }
            _ => None,
        })
        .await
}

/// The nack code of the next ack of `id` (`None`: a plain ack).
async fn ack_of(device: &mut Device, id: &str) -> Option<String> {
    ack_among(device, &[id.to_owned()]).await.1
}

async fn received(fake: &Fake) -> Vec<ReceivedMessage> {
    let listed = fake
        .control
        .clone()
        .list_received_messages(ListReceivedMessagesRequest {})
        .await;
    listed.unwrap().into_inner().messages
}

/// Waits (bounded) until the fake lists a message that `pick` takes.
async fn listed(fake: &Fake, pick: impl Fn(&ReceivedMessage) -> bool) -> ReceivedMessage {
    bounded("the message at the fake", async {
        loop {
            if let Some(found) = received(fake).await.into_iter().find(&pick) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

async fn reject(fake: &Fake, code: u32, count: u32) {
    let request = RejectSendsRequest {
        phone_number: OWNER.into(),
        code,
        count,
    };
    fake.control.clone().reject_sends(request).await.unwrap();
}

/// Holds or releases the owner's acks: how many were released.
async fn hold(fake: &Fake, hold: bool) -> u32 {
    let request = HoldServerAcksRequest {
        phone_number: OWNER.into(),
        hold,
    };
    fake.control
        .clone()
        .hold_server_acks(request)
        .await
        .unwrap()
        .into_inner()
        .released
}

async fn send(device: &Device, text: &str) -> String {
    let sent = bounded("a send", device.client().send_text(user(FRIEND), text)).await;
    sent.expect("the device sends").message_id
}

#[tokio::test]
async fn a_refused_send_is_nacked_with_its_code_and_not_listed_and_the_refusals_run_out() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::pair(&fake, dir.path(), None).await;
    reject(&fake, 463, 1).await;

    let refused = send(&device, "to a new chat").await;
    assert_eq!(ack_of(&mut device, &refused).await.as_deref(), Some("463"));
    let accepted = send(&device, "once allowed").await;
    assert_eq!(ack_of(&mut device, &accepted).await, None, "one refusal was ordered");
    let message = listed(&fake, |m| m.id == accepted).await;
    assert_eq!(
        (message.text.as_str(), message.kind()),
        ("once allowed", MessageKind::Text)
    );
    assert!(
        received(&fake).await.iter().all(|m| m.id != refused),
        "a refused send is not listed"
    );
    device.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn held_acks_are_owed_while_the_sends_are_listed_and_all_go_out_in_order_on_release() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::pair(&fake, dir.path(), None).await;
    assert_eq!(hold(&fake, true).await, 0);

    let ids = vec![send(&device, "one").await, send(&device, "two").await];
    for id in &ids {
        listed(&fake, |m| m.id == *id).await;
    }
    let early = tokio::time::timeout(NO_ACK_SPAN, ack_among(&mut device, &ids)).await;
    assert!(early.is_err(), "no ack while held: {early:?}");

    assert_eq!(hold(&fake, false).await, 2);
    let mut acked = Vec::new();
    for _ in &ids {
        acked.push(ack_among(&mut device, &ids).await);
    }
    let expected: Vec<_> = ids.iter().map(|id| (id.clone(), None)).collect();
    assert_eq!(acked, expected);
    let after = send(&device, "three").await;
    assert_eq!(ack_of(&mut device, &after).await, None, "released: acked at once");
    device.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn acks_released_while_the_device_is_away_go_out_at_its_next_connection() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let device = Device::pair(&fake, dir.path(), None).await;
    hold(&fake, true).await;
    let id = send(&device, "held").await;
    listed(&fake, |m| m.id == id).await;
    device.stop().await;

    assert_eq!(hold(&fake, false).await, 1, "owed to the device, for later");
    let mut device = Device::start(&fake, dir.path(), None).await;
    assert_eq!(ack_of(&mut device, &id).await, None);
    device.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn a_message_sent_twice_under_one_id_is_listed_once_as_first_sent() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::pair(&fake, dir.path(), None).await;
    let client = device.client();
    let id = "3EB0A1B2C3D4E5F6A7B8C9";
    for text in ["first copy", "second copy"] {
        let options = SendOptions::default().with_message_id(id);
        let send = client.send_message_with_options(user(FRIEND), wa::Message::text(text), options);
        let sent = bounded("a send", send).await.expect("the device sends");
        assert_eq!(sent.message_id, id);
        assert_eq!(ack_of(&mut device, id).await, None, "each copy is acked");
    }
    let copies: Vec<_> = received(&fake).await.into_iter().filter(|m| m.id == id).collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(copies[0].text, "first copy");
    device.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn replies_reactions_edits_and_revokes_are_listed_with_their_kind_text_and_target() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let device = Device::pair(&fake, dir.path(), None).await;
    let client = device.client();
    let chat = user(FRIEND);
    let original = send(&device, "original").await;

    let own = client.pn().expect("linked");
    let quote = build_quote_context_with_info(&original, &own, &chat, &chat, &wa::Message::text("original"));
    let reply = client.send_message(chat.clone(), wa::Message::text_with_context("a reply", quote));
    let reply = bounded("a reply", reply).await.unwrap().message_id;
    let key = wa::MessageKey {
        remote_jid: Some(chat.to_string()),
        from_me: Some(true),
        id: Some(original.clone()),
        participant: None,
    };
    let reaction = bounded("a reaction", client.send_reaction(chat.clone(), key, "👍")).await;
    let reaction = reaction.unwrap().message_id;
    let edit = "3EB0000000000000000ED1";
    let options = EditOptions::default().with_stanza_id(edit);
    let edited = client.edit_message_with_options(chat.clone(), original.clone(), wa::Message::text("edited"), options);
    bounded("an edit", edited).await.unwrap();
    let revoke = client.revoke_message(chat.clone(), original.clone(), RevokeType::Sender);
    bounded("a revoke", revoke).await.unwrap();

    // Sent one after another on one connection: the revoke is taken last.
    let revoke = listed(&fake, |m| m.kind() == MessageKind::Revoke).await;
    let all = received(&fake).await;
    let view = |m: &ReceivedMessage| (m.kind(), m.text.clone(), m.quoted_id.clone(), m.target_id.clone());
    let shown = |id: &str| view(all.iter().find(|m| m.id == id).expect("listed"));
    let of = |kind, text: &str, quoted: &str, target: &str| (kind, text.into(), quoted.into(), target.into());
    assert_eq!(shown(&original), of(MessageKind::Text, "original", "", ""));
    assert_eq!(shown(&reply), of(MessageKind::Text, "a reply", &original, ""));
    assert_eq!(shown(&reaction), of(MessageKind::Reaction, "👍", "", &original));
    assert_eq!(shown(edit), of(MessageKind::Edit, "edited", "", &original));
    assert_eq!(view(&revoke), of(MessageKind::Revoke, "", "", &original));
    assert!(all.iter().all(|m| m.to == chat.to_string()), "all in the friend's chat");
    device.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn refusals_and_holds_need_a_phone_number_and_a_refusal_a_code() {
    let fake = Fake::start().await;
    let mut control = fake.control.clone();
    let no_phone = RejectSendsRequest {
        phone_number: String::new(),
        code: 463,
        count: 1,
    };
    let refused = control.reject_sends(no_phone).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let no_code = RejectSendsRequest {
        phone_number: OWNER.into(),
        code: 0,
        count: 1,
    };
    let refused = control.reject_sends(no_code).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let hold = HoldServerAcksRequest {
        phone_number: "not digits".into(),
        hold: true,
    };
    let refused = control.hold_server_acks(hold).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    fake.running.stop().await;
}

#[tokio::test]
async fn chat_states_and_read_receipts_are_listed_as_they_come() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let device = Device::pair(&fake, dir.path(), None).await;
    let client = device.client();
    let chat = user(FRIEND);
    let chatstate = client.chatstate();
    bounded("typing", chatstate.send_composing(&chat)).await.unwrap();
    bounded("recording", chatstate.send_recording(&chat)).await.unwrap();
    bounded("paused", chatstate.send_paused(&chat)).await.unwrap();
    bounded("read marks", client.mark_as_read(&chat, None, &["AAA1", "AAA2"]))
        .await
        .unwrap();

    listed(&fake, |m| m.kind() == MessageKind::Read).await;
    let seen: Vec<_> = received(&fake)
        .await
        .into_iter()
        .map(|m| (m.kind(), m.state, m.target_id, m.to))
        .collect();
    let to = chat.to_string();
    let of = |kind, state: &str, target: &str| (kind, state.to_owned(), target.to_owned(), to.clone());
    assert_eq!(
        seen,
        [
            of(MessageKind::ChatState, "composing", ""),
            of(MessageKind::ChatState, "recording", ""),
            of(MessageKind::ChatState, "paused", ""),
            of(MessageKind::Read, "", "AAA1,AAA2"),
        ]
    );
    device.stop().await;
    fake.running.stop().await;
}
