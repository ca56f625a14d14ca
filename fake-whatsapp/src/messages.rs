//! Messages devices send: every copy addressed to a fake phone (`<participants><to
//! jid><enc>`) is decrypted with that phone's Signal session and the recipient's
//! view of it (a text, a reply, a reaction, an edit or a revoke) is listed for
//! `ListReceivedMessages`, once per id and chat; the message is then acked as the
//! server does (`<ack class="message">`), unless it is refused (a nack with its
//! code, nothing listed: a refusal the control API ordered, or 463 for a chat
//! the account never messaged while its new chats are barred) or the account's
//! acks held.
//! The device's chat states and read receipts are listed too, as they come; what
//! it sends its own phone goes to the phone (a resend request is answered).

use buffa::Message as _;
use tracing::{info, warn};
use wacore::{messages::MessageUtils, proto_helpers::MessageExt as _};
use wacore_binary::{Jid, Node};
use wacore_libsignal::protocol::ProtocolAddress;
use waproto::whatsapp as wa;

use crate::{
    cdn::Cdn,
    media,
    proto::{MessageKind, ReceivedMedia, ReceivedMessage},
    stanza::{self, attr, content_bytes},
    vocab::DeviceAddr,
    world::World,
};

/// Takes a `<message>` from `from` (the logged-in device): the acks to send back
/// now (none while the account's acks are held).
pub async fn receive(world: &World, cdn: &Cdn, from: Option<&DeviceAddr>, message: &Node) -> Vec<Node> {
    let id = attr(message, "id").unwrap_or_default();
    let to = attr(message, "to").unwrap_or_default();
    let Some(from) = from else {
        warn!(%id, "a message from a connection without a logged-in device; not decrypted");
        return vec![stanza::ack("message", &id, &to)];
    };
    let chat_user = to.parse::<Jid>().map(|jid| jid.user.to_string()).unwrap_or_default();
    // The account's messages to its own devices are not chat messages: they are
    // never refused or held.
    let peer = chat_user == from.phone || attr(message, "category").as_deref() == Some("peer");
    if !peer {
        if let Some(code) = world.admit(from, &to).await {
            info!(from = %from.jid(), %to, %id, code, "message refused");
            return vec![stanza::nack(&id, &to, code)];
        }
    }
    let sender = ProtocolAddress::new(&from.phone, u32::from(from.device).into());
    for (recipient, enc) in copies(message) {
        let kind = attr(enc, "type").unwrap_or_default();
        let version = attr(enc, "v").and_then(|v| v.parse().ok()).unwrap_or(2);
        let Some(body) = content_bytes(enc) else { continue };
        let decoded = match world.decrypt(&recipient, &sender, &kind, body).await {
            Ok(padded) => decode(&padded, version),
            Err(why) => Err(why),
        };
        match &decoded {
            // To the account's own phone: perhaps a request it answers.
            Ok(message) if peer => world.peer_message(from, &id, &to, message).await,
            _ => {}
        }
        let shown = match decoded {
            Ok(message) => match shown(&message) {
                Some(shown) => Ok(Some(shown)),
                None => Ok(with_media(cdn, &message).await),
            },
            Err(why) => Err(why),
        };
        match shown {
            Ok(Some(shown)) if recipient.user == chat_user => {
                let listed = ReceivedMessage {
                    from_jid: from.jid(),
                    to: to.clone(),
                    text: shown.text,
                    id: id.clone(),
                    kind: shown.kind.into(),
                    quoted_id: shown.quoted_id,
                    target_id: shown.target_id,
                    state: String::new(),
                    media: shown.media,
                };
                let new = world.record(listed).await;
                info!(from = %from.jid(), %to, %id, kind = ?shown.kind, new, "message received and decrypted");
            }
            Ok(_) => {}
            Err(why) => warn!(%id, to = %recipient, %why, "could not decrypt a message copy"),
        }
    }
    if peer {
        return vec![stanza::ack("message", &id, &to)];
    }
    world.ack_or_hold(from, &id, &to).await.into_iter().collect()
}

/// Takes a `<chatstate to><composing [media="audio"]/>|<paused/></chatstate>` from
/// `from`: listed as a chat state (nothing is answered).
pub async fn chat_state(world: &World, from: &DeviceAddr, node: &Node) {
    let to = attr(node, "to").unwrap_or_default();
    let state = match node.children().and_then(|children| children.first()) {
        Some(child) if child.tag == "paused" => "paused",
        Some(child) if child.tag == "composing" && attr(child, "media").as_deref() == Some("audio") => "recording",
        Some(child) if child.tag == "composing" => "composing",
        _ => {
            warn!(%to, "a chat state without a state; ignored");
            return;
        }
    };
    let signal = ReceivedMessage {
        from_jid: from.jid(),
        to,
        kind: MessageKind::ChatState.into(),
        state: state.into(),
        ..Default::default()
    };
    world.note(signal).await;
}

/// Takes a `<receipt type="read" to id><list><item id/>...` from `from`: listed as
/// a read of those ids.
pub async fn read(world: &World, from: &DeviceAddr, receipt: &Node) {
    let signal = ReceivedMessage {
        from_jid: from.jid(),
        to: attr(receipt, "to").unwrap_or_default(),
        kind: MessageKind::Read.into(),
        target_id: stanza::ids_of(receipt).join(","),
        ..Default::default()
    };
    world.note(signal).await;
}

/// Each encrypted copy and the device it is for: `<participants><to jid><enc>`, or
/// a bare `<enc>` for the chat's own device.
fn copies(message: &Node) -> Vec<(Jid, &Node)> {
    let addressed = message
        .get_optional_child("participants")
        .map(|participants| participants.get_children_by_tag("to"))
        .into_iter()
        .flatten()
        .filter_map(|to| {
            let jid = attr(to, "jid")?.parse::<Jid>().ok()?;
            Some((jid, to.get_optional_child("enc")?))
        });
    let bare = attr(message, "to")
        .and_then(|to| to.parse::<Jid>().ok())
        .and_then(|jid| Some((jid, message.get_optional_child("enc")?)));
    addressed.chain(bare).filter(|(jid, _)| jid.device == 0).collect()
}

/// The `Message` in a padded plaintext.
fn decode(padded: &[u8], version: u8) -> Result<wa::Message, String> {
    let plain = MessageUtils::unpad_message_ref(padded, version).map_err(|e| e.to_string())?;
    wa::Message::decode_from_slice(plain).map_err(|e| format!("not a message: {e}"))
}

/// A message as the recipient's phone shows it.
#[derive(Debug, PartialEq, Eq)]
struct Shown {
    kind: MessageKind,
    /// A text's or an edit's (new) text, a reaction's emoji; empty for a revoke.
    text: String,
    /// A reply's quoted id.
    quoted_id: String,
    /// What a reaction, an edit or a revoke points at.
    target_id: String,
    /// A media message's file, opened.
    media: Option<ReceivedMedia>,
}

/// A media message as the recipient's phone shows it: its caption as the
/// text, the file downloaded from the CDN and decrypted.
async fn with_media(cdn: &Cdn, message: &wa::Message) -> Option<Shown> {
    let media = media::received(cdn, message).await?;
    Some(Shown {
        kind: MessageKind::Media,
        text: media.caption.clone(),
        quoted_id: String::new(),
        target_id: String::new(),
        media: Some(media),
    })
}

/// What `message` shows, if it is a kind the fake lists (a text, a reaction, an
/// edit, a revoke); `None` for anything else (key shares, receipts of history...).
fn shown(message: &wa::Message) -> Option<Shown> {
    use wa::message::protocol_message::Type;
    let message = message.get_base_message();
    let show = |kind, text: Option<&String>, quoted_id: Option<&String>, target_id: Option<&String>| Shown {
        kind,
        text: text.cloned().unwrap_or_default(),
        quoted_id: quoted_id.cloned().unwrap_or_default(),
        target_id: target_id.cloned().unwrap_or_default(),
        media: None,
    };
    if let Some(text) = &message.conversation {
        return Some(show(MessageKind::Text, Some(text), None, None));
    }
    if let Some(extended) = message.extended_text_message.as_option() {
        let quoted = extended.context_info.as_option().and_then(|c| c.stanza_id.as_ref());
        return Some(show(MessageKind::Text, extended.text.as_ref(), quoted, None));
    }
    if let Some(reaction) = message.reaction_message.as_option() {
        let target = reaction.key.as_option().and_then(|key| key.id.as_ref());
        return Some(show(MessageKind::Reaction, reaction.text.as_ref(), None, target));
    }
    let protocol = message.protocol_message.as_option()?;
    let target = protocol.key.as_option().and_then(|key| key.id.as_ref());
    match protocol.r#type? {
        Type::REVOKE => Some(show(MessageKind::Revoke, None, None, target)),
        Type::MESSAGE_EDIT => {
            let edited = shown(protocol.edited_message.as_option()?)?;
            Some(show(MessageKind::Edit, Some(&edited.text), None, target))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use buffa::MessageField;

    use super::*;

    fn key(id: &str) -> MessageField<wa::MessageKey> {
        MessageField::some(wa::MessageKey {
            remote_jid: Some("15550002222@s.whatsapp.net".into()),
            from_me: Some(true),
            id: Some(id.into()),
            participant: None,
        })
    }

    fn text(text: &str) -> wa::Message {
        wa::Message {
            conversation: Some(text.into()),
            ..Default::default()
        }
    }

    fn protocol(kind: wa::message::protocol_message::Type, target: &str, edited: Option<wa::Message>) -> wa::Message {
        wa::Message {
            protocol_message: MessageField::some(wa::message::ProtocolMessage {
                key: key(target),
                r#type: Some(kind),
                edited_message: edited.map(MessageField::some).unwrap_or_default(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn expect(kind: MessageKind, text: &str, quoted_id: &str, target_id: &str) -> Option<Shown> {
        Some(Shown {
            kind,
            text: text.into(),
            quoted_id: quoted_id.into(),
            target_id: target_id.into(),
            media: None,
        })
    }

    #[test]
    fn a_plain_text_and_a_reply_show_their_text_and_the_reply_its_quoted_id() {
        assert_eq!(shown(&text("hi")), expect(MessageKind::Text, "hi", "", ""));
        let reply = wa::Message {
            extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                text: Some("yes".into()),
                context_info: MessageField::some(wa::ContextInfo {
                    stanza_id: Some("QUOTED".into()),
                    quoted_message: MessageField::some(text("hi")),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(shown(&reply), expect(MessageKind::Text, "yes", "QUOTED", ""));
    }

    #[test]
    fn a_reaction_shows_its_emoji_and_target_and_a_removal_an_empty_emoji() {
        for emoji in ["👍", ""] {
            let reaction = wa::Message {
                reaction_message: MessageField::some(wa::message::ReactionMessage {
                    key: key("TARGET"),
                    text: Some(emoji.into()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            assert_eq!(shown(&reaction), expect(MessageKind::Reaction, emoji, "", "TARGET"));
        }
    }

    #[test]
    fn an_edit_shows_its_new_text_and_a_revoke_its_target() {
        use wa::message::protocol_message::Type;
        let edit = protocol(Type::MESSAGE_EDIT, "TARGET", Some(text("fixed")));
        assert_eq!(shown(&edit), expect(MessageKind::Edit, "fixed", "", "TARGET"));
        let revoke = protocol(Type::REVOKE, "TARGET", None);
        assert_eq!(shown(&revoke), expect(MessageKind::Revoke, "", "", "TARGET"));
    }

    #[test]
    fn other_protocol_messages_are_not_listed() {
        use wa::message::protocol_message::Type;
        let key_share = protocol(Type::APP_STATE_SYNC_KEY_SHARE, "", None);
        assert_eq!(shown(&key_share), None);
        assert_eq!(shown(&wa::Message::default()), None);
    }
}
