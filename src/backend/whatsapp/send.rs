//! What the real backend sends for each kind of `Content`, and what WhatsApp
//! answers. Every message goes out with `send_message_with_options` under the
//! daemon's own id (`Outbound.id`), so a resend after a crash or a reconnect
//! carries the same id and the recipient's phone shows it once. The library's
//! `send_reaction`, `edit_message` and `revoke_message` choose their own ids, so
//! the messages they build are built here (`message`, pure and tested) the same
//! way; the stanza's `edit` attribute (an edit, a sender revoke, a removed
//! reaction) is derived by the library from the message itself. Chat states and
//! read marks are not messages: they go out through the library's own calls.
//! WhatsApp's ack or nack of each sent message (`Event::ServerAck`) is read by
//! `server_ack`.
//!
//! Not covered: reactions in community announcement groups (the library encrypts
//! those with the target's message secret) and admin revokes of others' messages.

use tokio::time::{timeout_at, Instant};
use tracing::warn;
use whatsapp_rust::{
    buffa::MessageField,
    proto_helpers::{build_quote_context_with_info, build_reaction_message, MessageBuilderExt},
    send::SendOptions,
    types::events::ServerAck,
    wacore::types::message::AddressingMode,
    wacore_binary::JidExt,
    waproto::whatsapp as wa,
    ChatStateType, Client, Jid,
};

use crate::backend::{BackendError, ChatState, Content, MessageRef, Outbound, SentMessage};

/// Sends `outbound` by `deadline`: a message under its own id; a chat state or
/// read marks (which WhatsApp keeps no id for) as they are.
pub async fn send(client: &Client, outbound: Outbound, deadline: Instant) -> Result<SentMessage, BackendError> {
    let chat = jid(&outbound.to, "chat")?;
    let sending = async {
        let own = own_jid(client, &chat, &outbound.content).await?;
        let now_ms = whatsapp_rust::wacore::time::now_millis();
        match wire(&chat, &outbound.content, &own, now_ms)? {
            Wire::Message(message) => {
                let options = SendOptions::default().with_message_id(outbound.id.clone());
                let sent = client.send_message_with_options(chat.clone(), *message, options).await;
                Ok(sent.map_err(send_error)?.message_id)
            }
            Wire::ChatState(state) => {
                let sent = client.chatstate().send(&chat, state).await;
                sent.map_err(|e| BackendError::Unreachable(format!("the chat state was not sent: {e}")))?;
                Ok(outbound.id.clone())
            }
            Wire::Read { sender, ids } => {
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                let sent = client.mark_as_read(&chat, sender.as_ref(), &ids).await;
                sent.map_err(|e| BackendError::Unreachable(format!("the read marks were not sent: {e}")))?;
                Ok(outbound.id.clone())
            }
        }
    };
    let message_id = timeout_at(deadline, sending)
        .await
        .map_err(|_| BackendError::Unreachable("whatsapp did not accept the message in time".into()))??;
    Ok(SentMessage { message_id })
}

/// What one `Content` goes out as.
#[derive(Debug)]
pub enum Wire {
    /// A message, sent under the outbound's id.
    Message(Box<wa::Message>),
    /// A `<chatstate>` ("typing...").
    ChatState(ChatStateType),
    /// A read receipt for `ids`, naming their `sender` in a group.
    Read { sender: Option<Jid>, ids: Vec<String> },
}

/// The account's JID as `chat` knows it: its phone-number JID, or in a group that
/// addresses members by LID (for an edit's key, as WhatsApp Web does) its LID.
async fn own_jid(client: &Client, chat: &Jid, content: &Content) -> Result<Jid, BackendError> {
    let pn = client
        .pn()
        .ok_or_else(|| BackendError::Refused("the device is not logged in".into()))?
        .to_non_ad();
    if !chat.is_group() || !matches!(content, Content::Edit { .. }) {
        return Ok(pn);
    }
    let addressing = client.groups().query_info(chat).await.map(|info| info.addressing_mode);
    match (addressing, client.lid()) {
        (Ok(AddressingMode::Lid), Some(lid)) => Ok(lid.to_non_ad()),
        _ => Ok(pn),
    }
}

/// What `content` goes out as in `chat`, for the account known there as `own`,
/// stamped `now_ms`. Refused when a target cannot be named (an unreadable JID, or
/// an edit or revoke of someone else's message).
pub fn wire(chat: &Jid, content: &Content, own: &Jid, now_ms: i64) -> Result<Wire, BackendError> {
    let message = match content {
        Content::ChatState { state } => return Ok(Wire::ChatState(chat_state(*state))),
        Content::Read { sender, ids } => {
            let sender = sender.as_deref().map(|s| jid(s, "sender")).transpose()?;
            return Ok(Wire::Read {
                sender: sender.map(|s| s.to_non_ad()),
                ids: ids.clone(),
            });
        }
        Content::Text { text, reply_to: None } => wa::Message::text(text.clone()),
        Content::Text {
            text,
            reply_to: Some(quoted),
        } => {
            let author = author(chat, quoted, own)?;
            let context =
                build_quote_context_with_info(&quoted.id, &author, chat, chat, &wa::Message::text(quoted.text.clone()));
            wa::Message::text_with_context(text.clone(), context)
        }
        Content::Media { media, reply_to } => {
            let context = match reply_to {
                Some(quoted) => {
                    let author = author(chat, quoted, own)?;
                    let quoted_message = wa::Message::text(quoted.text.clone());
                    Some(build_quote_context_with_info(
                        &quoted.id,
                        &author,
                        chat,
                        chat,
                        &quoted_message,
                    ))
                }
                None => None,
            };
            super::media_message::message(media, context)?
        }
        Content::Reaction { target, emoji } => {
            let participant = if chat.is_group() {
                Some(author(chat, target, own)?.to_string())
            } else {
                None
            };
            let key = key(chat, target.from_me, &target.id, participant);
            build_reaction_message(key, emoji.clone(), now_ms)
        }
        Content::Edit { target, text } => {
            own_message(target, "edited")?;
            let participant = chat.is_group().then(|| own.to_string());
            protocol(wa::message::ProtocolMessage {
                key: MessageField::some(key(chat, true, &target.id, participant)),
                r#type: Some(wa::message::protocol_message::Type::MESSAGE_EDIT),
                edited_message: MessageField::some(wa::Message::text(text.clone())),
                timestamp_ms: Some(now_ms),
                ..Default::default()
            })
        }
        Content::Revoke { target } => {
            own_message(target, "revoked")?;
            // A sender revoke names no participant: from_me says whose it is.
            protocol(wa::message::ProtocolMessage {
                key: MessageField::some(key(chat, true, &target.id, None)),
                r#type: Some(wa::message::protocol_message::Type::REVOKE),
                ..Default::default()
            })
        }
    };
    Ok(Wire::Message(Box::new(message)))
}

fn chat_state(state: ChatState) -> ChatStateType {
    match state {
        ChatState::Composing => ChatStateType::Composing,
        ChatState::Recording => ChatStateType::Recording,
        ChatState::Paused => ChatStateType::Paused,
    }
}

/// WhatsApp's answer to a sent message, from a server ack: its id and, for a
/// nack, the error code (0 when the code is not a number). `None` for acks of
/// anything but a message (receipts, notifications, calls).
pub fn server_ack(ack: &ServerAck) -> Option<(String, Option<u32>)> {
    if ack.class.as_deref() != Some("message") {
        return None;
    }
    let error = ack.error.as_deref().map(|code| {
        code.parse().unwrap_or_else(|_| {
            warn!(message_id = %ack.id, code, "a nack with an error code that is not a number");
            0
        })
    });
    Some((ack.id.clone(), error))
}

/// The author of `target` as a JID without a device: the account itself for its
/// own messages, the chat in a direct chat when the log named none.
fn author(chat: &Jid, target: &MessageRef, own: &Jid) -> Result<Jid, BackendError> {
    if target.sender.is_empty() {
        return match (target.from_me, chat.is_group()) {
            (true, _) => Ok(own.clone()),
            (false, false) => Ok(chat.to_non_ad()),
            (false, true) => Err(BackendError::Refused(format!(
                "message {:?} of group {chat} has no known sender",
                target.id
            ))),
        };
    }
    Ok(jid(&target.sender, "sender")?.to_non_ad())
}

fn own_message(target: &MessageRef, done: &str) -> Result<(), BackendError> {
    if target.from_me {
        return Ok(());
    }
    Err(BackendError::Refused(format!(
        "message {:?} was not sent by this account: only its own messages can be {done}",
        target.id
    )))
}

fn key(chat: &Jid, from_me: bool, id: &str, participant: Option<String>) -> wa::MessageKey {
    wa::MessageKey {
        remote_jid: Some(chat.to_string()),
        from_me: Some(from_me),
        id: Some(id.to_owned()),
        participant,
    }
}

fn protocol(message: wa::message::ProtocolMessage) -> wa::Message {
    wa::Message {
        protocol_message: MessageField::some(message),
        ..Default::default()
    }
}

fn jid(text: &str, what: &str) -> Result<Jid, BackendError> {
    text.parse()
        .map_err(|_| BackendError::Refused(format!("{what} {text:?} is not a whatsapp jid")))
}

fn send_error(error: whatsapp_rust::send::SendError) -> BackendError {
    use whatsapp_rust::send::SendError;
    match error {
        SendError::NotLoggedIn => BackendError::Refused("the device is not logged in".into()),
        SendError::InvalidRequest(why) => BackendError::Refused(format!("whatsapp refused the message: {why}")),
        other => BackendError::Unreachable(format!("the message was not sent: {other}")),
    }
}

#[cfg(test)]
#[path = "send_tests.rs"]
mod tests;
