//! The conversion of hand-built whatsapp-rust messages into the log's
//! `InboundMessage`, and the hook committing a batch to a real event log once.

use std::sync::Arc;

use whatsapp_rust::{
    chrono::{TimeZone, Utc},
    types::message::MessageSource,
    waproto::{buffa::MessageField, whatsapp as wa},
};

use super::*;
use crate::events::{EventLog, Filter};

fn info(id: &str) -> MessageInfo {
    MessageInfo {
        id: id.to_owned(),
        source: MessageSource {
            chat: "15551234567@s.whatsapp.net".parse().unwrap(),
            sender: "15551234567:3@s.whatsapp.net".parse().unwrap(),
            ..Default::default()
        },
        push_name: "Ana".to_owned(),
        timestamp: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        ..Default::default()
    }
}

fn convert(message: wa::Message) -> InboundMessage {
    inbound_message(&message, &info("M1")).expect("logged")
}

fn text(text: &str) -> wa::Message {
    wa::Message {
        conversation: Some(text.to_owned()),
        ..Default::default()
    }
}

fn key(id: &str) -> MessageField<wa::MessageKey> {
    MessageField::some(wa::MessageKey {
        id: Some(id.to_owned()),
        ..Default::default()
    })
}

fn quoting(id: &str) -> MessageField<wa::ContextInfo> {
    MessageField::some(wa::ContextInfo {
        stanza_id: Some(id.to_owned()),
        ..Default::default()
    })
}

fn protocol(kind: wa::message::protocol_message::Type, target: &str) -> wa::message::ProtocolMessage {
    wa::message::ProtocolMessage {
        key: key(target),
        r#type: Some(kind),
        ..Default::default()
    }
}

#[test]
fn a_text_keeps_its_id_chat_sender_time_and_push_name() {
    let message = convert(text("hello"));
    assert_eq!(message.id, "M1");
    assert_eq!(message.chat, "15551234567@s.whatsapp.net");
    assert_eq!(
        message.sender, "15551234567@s.whatsapp.net",
        "the account, not its device"
    );
    assert_eq!(message.sent_at.unwrap().seconds, 1_700_000_000);
    assert_eq!(message.push_name, "Ana");
    assert_eq!(message.text, "hello");
    assert_eq!(message.kind, MessageKind::Text as i32);
    assert!(message.media.is_none());
    assert!(!message.from_me && !message.offline);
}

#[test]
fn a_group_message_names_the_group_and_the_member() {
    let mut info = info("G1");
    info.source.chat = "120363000000000001@g.us".parse().unwrap();
    info.source.is_group = true;
    info.is_offline = true;
    let message = inbound_message(&text("hi all"), &info).unwrap();
    assert_eq!(message.chat, "120363000000000001@g.us");
    assert_eq!(message.sender, "15551234567@s.whatsapp.net");
    assert!(message.offline, "came from the offline queue");
}

#[test]
fn a_message_the_account_sent_from_another_device_is_from_me() {
    let mut info = info("S1");
    info.source.is_from_me = true;
    let wrapped = wa::Message {
        device_sent_message: MessageField::some(wa::message::DeviceSentMessage {
            destination_jid: Some("15559876543@s.whatsapp.net".to_owned()),
            message: MessageField::some(text("sent from my phone")),
            ..Default::default()
        }),
        ..Default::default()
    };
    let message = inbound_message(&wrapped, &info).unwrap();
    assert!(message.from_me);
    assert_eq!(message.text, "sent from my phone");
}

#[test]
fn a_reply_quotes_the_message_it_answers() {
    let message = convert(wa::Message {
        extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
            text: Some("yes".to_owned()),
            context_info: quoting("Q1"),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(message.kind, MessageKind::Text as i32);
    assert_eq!(message.text, "yes");
    assert_eq!(message.quoted_id, "Q1");
}

#[test]
fn a_disappearing_text_is_unwrapped() {
    let message = convert(wa::Message {
        ephemeral_message: MessageField::some(wa::message::FutureProofMessage {
            message: MessageField::some(text("gone soon")),
        }),
        ..Default::default()
    });
    assert_eq!(message.text, "gone soon");
    assert_eq!(message.kind, MessageKind::Text as i32);
}

#[test]
fn an_image_is_logged_as_metadata_only() {
    let message = convert(wa::Message {
        image_message: MessageField::some(wa::message::ImageMessage {
            mimetype: Some("image/jpeg".to_owned()),
            file_length: Some(12_345),
            caption: Some("look".to_owned()),
            file_sha256: Some(vec![0x00, 0xab, 0xff]),
            url: Some("https://mmg.whatsapp.net/x".to_owned()),
            context_info: quoting("Q2"),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(message.kind, MessageKind::Media as i32);
    let media = message.media.expect("media metadata");
    assert_eq!(media.kind, "image");
    assert_eq!(media.mime, "image/jpeg");
    assert_eq!(media.size, 12_345);
    assert_eq!(media.caption, "look");
    assert_eq!(media.sha256, "00abff");
    assert_eq!(message.quoted_id, "Q2");
    assert_eq!(message.text, "", "the caption is in media");
}

#[test]
fn each_media_kind_is_named() {
    let video = wa::Message {
        video_message: MessageField::some(wa::message::VideoMessage {
            mimetype: Some("video/mp4".to_owned()),
            caption: Some("clip".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let audio = wa::Message {
        audio_message: MessageField::some(wa::message::AudioMessage {
            mimetype: Some("audio/ogg; codecs=opus".to_owned()),
            ptt: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let document = wa::Message {
        document_with_caption_message: MessageField::some(wa::message::FutureProofMessage {
            message: MessageField::some(wa::Message {
                document_message: MessageField::some(wa::message::DocumentMessage {
                    mimetype: Some("application/pdf".to_owned()),
                    file_length: Some(9),
                    caption: Some("the contract".to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    let sticker = wa::Message {
        sticker_message: MessageField::some(wa::message::StickerMessage {
            mimetype: Some("image/webp".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let kinds: Vec<(String, String, String)> = [video, audio, document, sticker]
        .into_iter()
        .map(|m| convert(m).media.unwrap())
        .map(|m| (m.kind, m.mime, m.caption))
        .collect();
    assert_eq!(
        kinds,
        [
            ("video".into(), "video/mp4".into(), "clip".into()),
            ("audio".into(), "audio/ogg; codecs=opus".into(), String::new()),
            ("document".into(), "application/pdf".into(), "the contract".into()),
            ("sticker".into(), "image/webp".into(), String::new()),
        ]
    );
}

#[test]
fn an_edit_carries_the_new_text_and_the_edited_message() {
    let mut edit = protocol(wa::message::protocol_message::Type::MESSAGE_EDIT, "E0");
    edit.edited_message = MessageField::some(text("fixed typo"));
    let message = convert(wa::Message {
        edited_message: MessageField::some(wa::message::FutureProofMessage {
            message: MessageField::some(wa::Message {
                protocol_message: MessageField::some(edit),
                ..Default::default()
            }),
        }),
        ..Default::default()
    });
    assert_eq!(message.kind, MessageKind::Edit as i32);
    assert_eq!(message.text, "fixed typo");
    assert_eq!(message.quoted_id, "E0");
}

#[test]
fn a_revoke_names_the_revoked_message() {
    let message = convert(wa::Message {
        protocol_message: MessageField::some(protocol(wa::message::protocol_message::Type::REVOKE, "R0")),
        ..Default::default()
    });
    assert_eq!(message.kind, MessageKind::Revoke as i32);
    assert_eq!(message.quoted_id, "R0");
    assert_eq!(message.text, "");
}

#[test]
fn a_reaction_carries_the_emoji_and_its_target() {
    let reaction = |emoji: &str| wa::Message {
        reaction_message: MessageField::some(wa::message::ReactionMessage {
            key: key("T0"),
            text: Some(emoji.to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let added = convert(reaction("👍"));
    assert_eq!(added.kind, MessageKind::Reaction as i32);
    assert_eq!(added.text, "👍");
    assert_eq!(added.quoted_id, "T0");
    let removed = convert(reaction(""));
    assert_eq!(removed.text, "", "an empty emoji removes the reaction");
}

#[test]
fn a_location_is_other_with_the_message_it_quotes() {
    let message = convert(wa::Message {
        location_message: MessageField::some(wa::message::LocationMessage {
            degrees_latitude: Some(38.7),
            degrees_longitude: Some(-9.1),
            context_info: quoting("Q3"),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(message.kind, MessageKind::Other as i32);
    assert_eq!(message.quoted_id, "Q3");
    assert!(message.media.is_none());
}

#[test]
fn protocol_housekeeping_is_not_logged() {
    let key_share = wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::APP_STATE_SYNC_KEY_SHARE),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(inbound_message(&key_share, &info("P1")).is_none());
}

#[test]
fn a_message_of_keys_only_is_not_logged() {
    let keys_only = wa::Message {
        sender_key_distribution_message: MessageField::some(wa::message::SenderKeyDistributionMessage {
            group_id: Some("120363000000000001@g.us".to_owned()),
            axolotl_sender_key_distribution_message: Some(vec![1, 2, 3]),
        }),
        message_context_info: MessageField::some(wa::MessageContextInfo::default()),
        ..Default::default()
    };
    assert!(inbound_message(&keys_only, &info("K1")).is_none());
    assert!(inbound_message(&wa::Message::default(), &info("K2")).is_none());
}

fn item(id: &str, message: wa::Message) -> whatsapp_rust::types::events::InboundMessage {
    whatsapp_rust::types::events::InboundMessage::builder()
        .message(Arc::new(message))
        .info(Arc::new(info(id)))
        .build()
}

#[tokio::test]
async fn the_hook_commits_a_batch_once_however_often_it_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), Arc::default()).unwrap();
    let hook = InboxHook::new(Inbox::new(log.clone(), "alice"), Arc::default());
    let batch = [
        item("A1", text("one")),
        item("A2", wa::Message::default()),
        item("A3", text("two")),
    ];
    hook.commit(&batch, || true).await.expect("committed");
    let committed_head = log.head();
    assert!(committed_head > 0, "on disk when the hook answers");
    hook.commit(&batch, || true).await.expect("a redelivery is fine");
    let events = log.page(0, &Filter::default(), 100).await.unwrap();
    let texts: Vec<_> = events
        .iter()
        .map(|e| match &e.body {
            Some(Body::Message(m)) => (e.session_id.as_str(), m.id.as_str(), m.text.as_str()),
            other => panic!("not a message: {other:?}"),
        })
        .collect();
    assert_eq!(texts, [("alice", "A1", "one"), ("alice", "A3", "two")]);
    assert_eq!(log.head(), committed_head, "the redelivery added nothing");
}

fn receipt_of(
    kind: whatsapp_rust::types::presence::ReceiptType,
    chat: &str,
    sender: &str,
) -> whatsapp_rust::types::events::Receipt {
    whatsapp_rust::types::events::Receipt::builder()
        .message_ids(vec!["OUT1".to_owned(), "OUT2".to_owned()])
        .source(MessageSource {
            chat: chat.parse().unwrap(),
            sender: sender.parse().unwrap(),
            ..Default::default()
        })
        .timestamp(Utc.timestamp_opt(1_700_000_100, 0).unwrap())
        .r#type(kind)
        .offline(false)
        .build()
}

fn own() -> Vec<whatsapp_rust::Jid> {
    vec![
        "15550000001:7@s.whatsapp.net".parse().unwrap(),
        "99990000001:7@lid".parse().unwrap(),
    ]
}

#[test]
fn a_read_receipt_names_the_messages_the_reader_and_the_time() {
    use whatsapp_rust::types::presence::ReceiptType;
    let logged = receipt(
        &receipt_of(
            ReceiptType::Read,
            "15551234567@s.whatsapp.net",
            "15551234567:2@s.whatsapp.net",
        ),
        &own(),
    )
    .expect("logged");
    assert_eq!(logged.chat, "15551234567@s.whatsapp.net");
    assert_eq!(logged.from, "15551234567@s.whatsapp.net");
    assert_eq!(logged.message_ids, ["OUT1", "OUT2"]);
    assert_eq!(logged.kind, ReceiptKind::Read as i32);
    assert_eq!(logged.at.unwrap().seconds, 1_700_000_100);
}

#[test]
fn delivered_read_and_played_are_logged_and_nothing_else() {
    use whatsapp_rust::types::presence::ReceiptType;
    let kind = |t: ReceiptType| {
        receipt(
            &receipt_of(t, "120363000000000001@g.us", "15551234567@s.whatsapp.net"),
            &own(),
        )
        .map(|r| r.kind)
    };
    assert_eq!(kind(ReceiptType::Delivered), Some(ReceiptKind::Delivered as i32));
    assert_eq!(kind(ReceiptType::Read), Some(ReceiptKind::Read as i32));
    assert_eq!(kind(ReceiptType::Played), Some(ReceiptKind::Played as i32));
    for other in [
        ReceiptType::ReadSelf,
        ReceiptType::PlayedSelf,
        ReceiptType::Retry,
        ReceiptType::Sender,
        ReceiptType::Sent,
        ReceiptType::Inactive,
        ReceiptType::PeerMsg,
    ] {
        assert_eq!(kind(other.clone()), None, "{other:?}");
    }
}

#[test]
fn receipts_from_the_accounts_own_devices_are_not_logged() {
    use whatsapp_rust::types::presence::ReceiptType;
    for me in ["15550000001:2@s.whatsapp.net", "99990000001:4@lid"] {
        let delivered = receipt_of(ReceiptType::Delivered, "15551234567@s.whatsapp.net", me);
        assert!(receipt(&delivered, &own()).is_none(), "{me}");
    }
}
