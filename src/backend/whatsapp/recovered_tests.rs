//! The phone's answer to a resend request read on hand-built messages (trusted
//! only from the account's phone), the placeholder's fields, and the hook logging
//! a recovered message once, after its placeholder, under the message's own key.

use std::sync::Arc;

use whatsapp_rust::{
    chrono::{TimeZone, Utc},
    types::message::MessageSource,
    waproto::buffa::{Message as _, MessageField},
};

use super::*;
use crate::{
    backend::whatsapp::inbound::InboxHook,
    events::{EventLog, Filter},
};

const OWN: &str = "15550001111@s.whatsapp.net";
const FRIEND: &str = "15550002222@s.whatsapp.net";

/// The info of a message from `sender` (the account's own when it is `OWN`).
fn info(id: &str, sender: &str) -> MessageInfo {
    let sender: Jid = sender.parse().unwrap();
    MessageInfo {
        id: id.to_owned(),
        source: MessageSource {
            chat: sender.to_non_ad(),
            is_from_me: sender.user == "15550001111",
            sender,
            ..Default::default()
        },
        timestamp: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        ..Default::default()
    }
}

/// The phone's answer carrying `FRIEND`'s message `id` (`text`; none: the phone
/// could not decrypt it either).
fn answer(id: &str, text: Option<&str>) -> wa::Message {
    let web = wa::WebMessageInfo {
        key: MessageField::some(wa::MessageKey {
            remote_jid: Some(FRIEND.to_owned()),
            from_me: Some(false),
            id: Some(id.to_owned()),
            participant: None,
        }),
        message: text
            .map(|text| {
                MessageField::some(wa::Message {
                    conversation: Some(text.to_owned()),
                    ..Default::default()
                })
            })
            .unwrap_or_default(),
        message_timestamp: Some(1_700_000_100),
        push_name: Some("Friend".to_owned()),
        ..Default::default()
    };
    use wa::message::peer_data_operation_request_response_message::{
        peer_data_operation_result::PlaceholderMessageResendResponse, PeerDataOperationResult,
    };
    let result = PeerDataOperationResult {
        placeholder_message_resend_response: MessageField::some(PlaceholderMessageResendResponse {
            web_message_info_bytes: Some(web.encode_to_vec()),
        }),
        ..Default::default()
    };
    wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::PEER_DATA_OPERATION_REQUEST_RESPONSE_MESSAGE),
            peer_data_operation_request_response_message: MessageField::some(
                wa::message::PeerDataOperationRequestResponseMessage {
                    stanza_id: Some("REQ1".to_owned()),
                    peer_data_operation_result: vec![result],
                    ..Default::default()
                },
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn the_phones_answer_gives_the_original_message_under_its_own_chat_sender_and_id() {
    let got = recovered(&answer("ORIG1", Some("hello again")), &info("PDO1", OWN));
    assert_eq!(got.len(), 1);
    let (message, original) = &got[0];
    assert_eq!(message.conversation.as_deref(), Some("hello again"));
    assert_eq!(original.id, "ORIG1");
    assert_eq!(original.source.chat.to_string(), FRIEND);
    assert_eq!(original.source.sender.to_string(), FRIEND);
    assert!(!original.source.is_from_me);
    assert_eq!(original.timestamp.timestamp(), 1_700_000_100);
    assert_eq!(original.push_name, "Friend");
}

#[test]
fn an_answer_from_anyone_but_the_accounts_phone_or_without_content_gives_nothing() {
    let from_friend = recovered(&answer("ORIG1", Some("forged")), &info("PDO1", FRIEND));
    assert!(from_friend.is_empty(), "only the account may answer");
    let from_companion = recovered(
        &answer("ORIG1", Some("x")),
        &info("PDO1", "15550001111:4@s.whatsapp.net"),
    );
    assert!(from_companion.is_empty(), "only the phone, device 0");
    assert!(recovered(&answer("ORIG1", None), &info("PDO1", OWN)).is_empty());
    let plain = wa::Message {
        conversation: Some("hi".to_owned()),
        ..Default::default()
    };
    assert!(recovered(&plain, &info("M1", OWN)).is_empty());
}

#[test]
fn a_placeholder_names_the_message_and_carries_no_body() {
    let mut undecryptable = info("ORIG1", "15550002222:2@s.whatsapp.net");
    undecryptable.push_name = "Friend".to_owned();
    let placeholder = placeholder(&undecryptable);
    assert_eq!(placeholder.kind, MessageKind::Undecryptable as i32);
    assert_eq!(
        (
            placeholder.id.as_str(),
            placeholder.chat.as_str(),
            placeholder.sender.as_str()
        ),
        ("ORIG1", FRIEND, FRIEND)
    );
    assert!(placeholder.sent_at.is_some());
    assert_eq!((placeholder.text.as_str(), placeholder.media.is_none()), ("", true));
}

fn item(message: wa::Message, info: MessageInfo) -> whatsapp_rust::types::events::InboundMessage {
    whatsapp_rust::types::events::InboundMessage::builder()
        .message(Arc::new(message))
        .info(Arc::new(info))
        .build()
}

#[tokio::test]
async fn the_hook_logs_a_recovered_message_after_its_placeholder_and_a_later_delivery_of_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), Arc::default()).unwrap();
    let inbox = Inbox::new(log.clone(), "alice");
    let hook = InboxHook::new(inbox.clone(), Arc::default());
    let original = info("ORIG1", "15550002222:2@s.whatsapp.net");
    inbox.commit(vec![Body::Message(placeholder(&original))]).await.unwrap();

    let answered = [item(answer("ORIG1", Some("hello again")), info("PDO1", OWN))];
    hook.commit(&answered, || true).await.expect("committed");
    hook.commit(&answered, || true)
        .await
        .expect("the answer delivered again");
    let normal = wa::Message {
        conversation: Some("hello again".to_owned()),
        ..Default::default()
    };
    hook.commit(&[item(normal, original)], || true)
        .await
        .expect("the original, delivered normally");

    let events = log.page(0, &Filter::default(), 100).await.unwrap();
    let seen: Vec<_> = events
        .iter()
        .map(|e| match &e.body {
            Some(Body::Message(m)) => (m.id.as_str(), m.kind, m.text.as_str(), m.recovered),
            other => panic!("not a message: {other:?}"),
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("ORIG1", MessageKind::Undecryptable as i32, "", false),
            ("ORIG1", MessageKind::Text as i32, "hello again", true),
        ]
    );
}
