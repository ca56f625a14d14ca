//! What each kind of content goes out as (which `wa::Message`, with the stanza
//! `edit` attribute the library derives from it; a chat state; read marks), and
//! how server acks are read.

use whatsapp_rust::wacore::types::message::EditAttribute;

use super::*;

const NOW: i64 = 1_700_000_000_000;

fn chat() -> Jid {
    "15550002222@s.whatsapp.net".parse().unwrap()
}

fn group() -> Jid {
    "120363000000000001@g.us".parse().unwrap()
}

fn own() -> Jid {
    "15550001111@s.whatsapp.net".parse().unwrap()
}

fn theirs(id: &str, sender: &str) -> MessageRef {
    MessageRef {
        id: id.into(),
        from_me: false,
        sender: sender.into(),
        text: "the quoted words".into(),
    }
}

fn mine(id: &str) -> MessageRef {
    MessageRef {
        id: id.into(),
        from_me: true,
        sender: String::new(),
        text: "my words".into(),
    }
}

fn build(chat: &Jid, content: Content) -> wa::Message {
    match wire(chat, &content, &own(), NOW).expect("buildable") {
        Wire::Message(message) => *message,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn refused(chat: &Jid, content: Content) -> String {
    match wire(chat, &content, &own(), NOW) {
        Err(BackendError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_plain_text_is_a_conversation_and_no_edit() {
    let sent = build(
        &chat(),
        Content::Text {
            text: "hello".into(),
            reply_to: None,
        },
    );
    assert_eq!(sent.conversation.as_deref(), Some("hello"));
    assert!(sent.extended_text_message.as_option().is_none());
    assert_eq!(EditAttribute::infer_from_message(&sent), None);
}

#[test]
fn a_reply_quotes_the_message_by_id_and_author_without_device_with_its_text() {
    let quoted = theirs("QUOTED1", "15550002222:3@s.whatsapp.net");
    let sent = build(
        &chat(),
        Content::Text {
            text: "my answer".into(),
            reply_to: Some(quoted),
        },
    );
    let extended = sent.extended_text_message.as_option().expect("an extended text");
    assert_eq!(extended.text.as_deref(), Some("my answer"));
    let context = extended.context_info.as_option().expect("a quote");
    assert_eq!(context.stanza_id.as_deref(), Some("QUOTED1"));
    assert_eq!(context.participant.as_deref(), Some("15550002222@s.whatsapp.net"));
    assert_eq!(context.remote_jid, None, "a quote of the same chat names no chat");
    let quoted = context.quoted_message.as_option().expect("the quoted message");
    assert_eq!(quoted.conversation.as_deref(), Some("the quoted words"));
}

#[test]
fn a_reply_to_the_accounts_own_message_names_the_account_as_its_author() {
    let sent = build(
        &chat(),
        Content::Text {
            text: "and another thing".into(),
            reply_to: Some(mine("MINE1")),
        },
    );
    let context = sent
        .extended_text_message
        .as_option()
        .unwrap()
        .context_info
        .as_option()
        .unwrap();
    assert_eq!(context.participant.as_deref(), Some("15550001111@s.whatsapp.net"));
}

#[test]
fn a_reaction_keys_its_target_in_the_chat_and_an_empty_emoji_removes_it() {
    for (emoji, edit) in [("👍", None), ("", Some(EditAttribute::SenderRevoke))] {
        let sent = build(
            &chat(),
            Content::Reaction {
                target: theirs("T1", "15550002222@s.whatsapp.net"),
                emoji: emoji.into(),
            },
        );
        let reaction = sent.reaction_message.as_option().expect("a reaction");
        assert_eq!(reaction.text.as_deref(), Some(emoji));
        assert_eq!(reaction.sender_timestamp_ms, Some(NOW));
        let key = reaction.key.as_option().unwrap();
        assert_eq!(key.remote_jid.as_deref(), Some("15550002222@s.whatsapp.net"));
        assert_eq!((key.id.as_deref(), key.from_me), (Some("T1"), Some(false)));
        assert_eq!(key.participant, None, "a direct chat's key names no participant");
        assert_eq!(EditAttribute::infer_from_message(&sent), edit);
    }
}

#[test]
fn a_reaction_in_a_group_names_the_targets_author() {
    let sent = build(
        &group(),
        Content::Reaction {
            target: theirs("T2", "15550003333@s.whatsapp.net"),
            emoji: "🎉".into(),
        },
    );
    let key = sent.reaction_message.as_option().unwrap().key.as_option().unwrap();
    assert_eq!(key.participant.as_deref(), Some("15550003333@s.whatsapp.net"));
    assert_eq!(key.remote_jid.as_deref(), Some("120363000000000001@g.us"));
}

#[test]
fn an_edit_is_a_message_edit_of_the_accounts_own_message_carrying_the_new_text() {
    let sent = build(
        &chat(),
        Content::Edit {
            target: mine("MINE2"),
            text: "fixed typo".into(),
        },
    );
    let protocol = sent.protocol_message.as_option().expect("a protocol message");
    assert_eq!(protocol.r#type, Some(wa::message::protocol_message::Type::MESSAGE_EDIT));
    let key = protocol.key.as_option().unwrap();
    assert_eq!((key.id.as_deref(), key.from_me), (Some("MINE2"), Some(true)));
    assert_eq!(key.participant, None);
    let edited = protocol.edited_message.as_option().unwrap();
    assert_eq!(edited.conversation.as_deref(), Some("fixed typo"));
    assert_eq!(protocol.timestamp_ms, Some(NOW));
    assert_eq!(
        EditAttribute::infer_from_message(&sent),
        Some(EditAttribute::MessageEdit)
    );

    let in_group = build(
        &group(),
        Content::Edit {
            target: mine("MINE3"),
            text: "fixed".into(),
        },
    );
    let key = in_group.protocol_message.as_option().unwrap().key.as_option().unwrap();
    assert_eq!(key.participant.as_deref(), Some("15550001111@s.whatsapp.net"));
}

#[test]
fn a_revoke_is_a_sender_revoke_of_the_accounts_own_message() {
    let sent = build(&chat(), Content::Revoke { target: mine("MINE4") });
    let protocol = sent.protocol_message.as_option().expect("a protocol message");
    assert_eq!(protocol.r#type, Some(wa::message::protocol_message::Type::REVOKE));
    let key = protocol.key.as_option().unwrap();
    assert_eq!((key.id.as_deref(), key.from_me), (Some("MINE4"), Some(true)));
    assert_eq!(key.participant, None);
    assert_eq!(
        EditAttribute::infer_from_message(&sent),
        Some(EditAttribute::SenderRevoke)
    );
}

#[test]
fn editing_or_revoking_someone_elses_message_is_refused() {
    let target = theirs("THEIRS", "15550002222@s.whatsapp.net");
    let why = refused(
        &chat(),
        Content::Edit {
            target: target.clone(),
            text: "no".into(),
        },
    );
    assert!(why.contains("THEIRS") && why.contains("edited"), "{why}");
    let why = refused(&chat(), Content::Revoke { target });
    assert!(why.contains("revoked"), "{why}");
}

#[test]
fn quoting_a_group_message_without_a_known_sender_or_with_an_unreadable_one_is_refused() {
    let anonymous = Content::Text {
        text: "hm".into(),
        reply_to: Some(theirs("G1", "")),
    };
    assert!(refused(&group(), anonymous).contains("no known sender"));
    let garbled = Content::Text {
        text: "hm".into(),
        reply_to: Some(theirs("G2", "not a jid")),
    };
    assert!(refused(&group(), garbled).contains("not a whatsapp jid"));
}

#[test]
fn a_chat_state_is_the_librarys_chat_state_and_recording_is_its_own() {
    for (state, wanted) in [
        (ChatState::Composing, ChatStateType::Composing),
        (ChatState::Recording, ChatStateType::Recording),
        (ChatState::Paused, ChatStateType::Paused),
    ] {
        match wire(&chat(), &Content::ChatState { state }, &own(), NOW) {
            Ok(Wire::ChatState(sent)) => assert_eq!(sent, wanted),
            other => panic!("expected a chat state, got {other:?}"),
        }
    }
}

#[test]
fn read_marks_name_their_ids_and_in_a_group_the_sender_without_device() {
    let read = Content::Read {
        sender: Some("15550003333:2@s.whatsapp.net".into()),
        ids: vec!["A".into(), "B".into()],
    };
    match wire(&group(), &read, &own(), NOW) {
        Ok(Wire::Read { sender, ids }) => {
            assert_eq!(
                sender.map(|s| s.to_string()).as_deref(),
                Some("15550003333@s.whatsapp.net")
            );
            assert_eq!(ids, ["A", "B"]);
        }
        other => panic!("expected read marks, got {other:?}"),
    }
    let direct = Content::Read {
        sender: None,
        ids: vec!["C".into()],
    };
    assert!(matches!(
        wire(&chat(), &direct, &own(), NOW),
        Ok(Wire::Read { sender: None, .. })
    ));
}

#[test]
fn a_message_ack_is_read_with_its_nack_code_and_other_acks_are_not() {
    let ack = |class: Option<&str>, error: Option<&str>| {
        ServerAck::builder()
            .id("3EB0ACK".to_owned())
            .maybe_class(class.map(str::to_owned))
            .maybe_error(error.map(str::to_owned))
            .build()
    };
    assert_eq!(server_ack(&ack(Some("message"), None)), Some(("3EB0ACK".into(), None)));
    assert_eq!(
        server_ack(&ack(Some("message"), Some("463"))),
        Some(("3EB0ACK".into(), Some(463)))
    );
    assert_eq!(
        server_ack(&ack(Some("message"), Some("oops"))),
        Some(("3EB0ACK".into(), Some(0)))
    );
    assert_eq!(server_ack(&ack(Some("receipt"), None)), None);
    assert_eq!(server_ack(&ack(None, None)), None);
}
