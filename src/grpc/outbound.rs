//! SendMessage's and GetMessageStatus's wire side: a request checked and turned
//! into the domain's `SendInput` (every refusal says which field and why), and an
//! outbound log row turned into `MessageStatusInfo`.

use super::convert;
use crate::{
    backend::{ChatState, Content as BackendContent},
    domain::{input, MediaInput, SendContent, SendInput, SessionId},
    error::SessionError,
    events::outbound::Row,
    proto::{self, send_message_request::Content},
};

/// Checks a SendMessage request: the session, the chat, the key and the content.
pub fn send_input(body: proto::SendMessageRequest) -> Result<(SessionId, SendInput), SessionError> {
    let id = SessionId::parse(&body.session_id)?;
    let to = input::chat(&body.to)?;
    let client_id = match body.client_message_id.as_str() {
        "" => None,
        key => Some(
            SessionId::parse(key)
                .map_err(|_| {
                    SessionError::InvalidArgument(format!(
                        "client_message_id {key:?} is invalid: 1-64 of [A-Za-z0-9._-], starting with a letter or digit"
                    ))
                })?
                .to_string(),
        ),
    };
    let reply_to = match body.reply_to_message_id.as_str() {
        "" => None,
        raw => Some(input::message_id(raw, "reply_to_message_id")?),
    };
    let content = match body.content {
        None => {
            return Err(SessionError::InvalidArgument(
                "content is missing: set one of text, media, reaction, edit or revoke".into(),
            ))
        }
        Some(Content::Text(text)) => {
            input::text(&text)?;
            SendContent::Text { text, reply_to }
        }
        Some(Content::Media(media)) => SendContent::Media(Box::new(media_input(media, reply_to)?)),
        Some(other) if reply_to.is_some() => {
            let kind = match other {
                Content::Reaction(_) => "reaction",
                Content::Edit(_) => "edit",
                _ => "revoke",
            };
            return Err(SessionError::InvalidArgument(format!(
                "reply_to_message_id goes with a text or a media, not with a {kind}: leave it empty"
            )));
        }
        Some(Content::Reaction(reaction)) => {
            input::emoji(&reaction.emoji)?;
            SendContent::Reaction {
                target: input::message_id(&reaction.message_id, "reaction.message_id")?,
                emoji: reaction.emoji,
            }
        }
        Some(Content::Edit(edit)) => {
            input::text(&edit.text).map_err(|e| SessionError::InvalidArgument(format!("edit.{e}")))?;
            SendContent::Edit {
                target: input::message_id(&edit.message_id, "edit.message_id")?,
                text: edit.text,
            }
        }
        Some(Content::Revoke(revoke)) => SendContent::Revoke {
            target: input::message_id(&revoke.message_id, "revoke.message_id")?,
        },
    };
    let input = SendInput {
        to,
        client_id,
        queue_if_offline: body.queue_if_offline,
        content,
    };
    Ok((id, input))
}

/// Checks a SendMessage's media: a handle, and what a voice note needs.
pub(crate) fn media_input(media: proto::MediaContent, reply_to: Option<String>) -> Result<MediaInput, SessionError> {
    if media.media_id.is_empty() {
        return Err(SessionError::InvalidArgument(
            "media.media_id is required: the media_id UploadMedia answered".into(),
        ));
    }
    if media.caption.len() > 65_536 {
        return Err(SessionError::InvalidArgument(
            "media.caption must be at most 65536 bytes".into(),
        ));
    }
    if media.waveform.len() > 64 || media.waveform.iter().any(|v| *v > 100) {
        return Err(SessionError::InvalidArgument(
            "media.waveform takes at most 64 values of 0 to 100".into(),
        ));
    }
    Ok(MediaInput {
        media_id: media.media_id,
        caption: media.caption,
        file_name: media.file_name,
        voice_note: media.voice_note,
        duration_seconds: media.duration_seconds,
        waveform: media.waveform,
        jpeg_thumbnail: media.jpeg_thumbnail,
        reply_to,
    })
}

/// Checks a SendChatState request: the session, the chat and the state.
pub fn chat_state(body: &proto::SendChatStateRequest) -> Result<(SessionId, String, BackendContent), SessionError> {
    let id = SessionId::parse(&body.session_id)?;
    let to = input::chat(&body.to)?;
    let state = match proto::ChatState::try_from(body.state) {
        Ok(proto::ChatState::Composing) => ChatState::Composing,
        Ok(proto::ChatState::Recording) => ChatState::Recording,
        Ok(proto::ChatState::Paused) => ChatState::Paused,
        _ => {
            return Err(SessionError::InvalidArgument(
                "state is required: CHAT_STATE_COMPOSING, CHAT_STATE_RECORDING or CHAT_STATE_PAUSED".into(),
            ))
        }
    };
    Ok((id, to, BackendContent::ChatState { state }))
}

/// The most message ids one MarkRead takes.
pub const MAX_READ_IDS: usize = 256;

/// Checks a MarkRead request: the session, the chat, the sender and the ids.
pub fn mark_read(body: proto::MarkReadRequest) -> Result<(SessionId, String, BackendContent), SessionError> {
    let id = SessionId::parse(&body.session_id)?;
    let chat = input::chat(&body.chat)?;
    let sender = match body.sender.as_str() {
        "" => None,
        raw => Some(input::recipient(raw)?),
    };
    if body.message_ids.is_empty() || body.message_ids.len() > MAX_READ_IDS {
        return Err(SessionError::InvalidArgument(format!(
            "message_ids must name 1 to {MAX_READ_IDS} messages, got {}",
            body.message_ids.len()
        )));
    }
    let ids = body
        .message_ids
        .iter()
        .map(|raw| input::message_id(raw, "message_ids"))
        .collect::<Result<_, _>>()?;
    Ok((id, chat, BackendContent::Read { sender, ids }))
}

/// Which message a GetMessageStatus names: (key, by the caller's key).
pub fn status_key(body: &proto::GetMessageStatusRequest) -> Result<(String, bool), SessionError> {
    match (body.message_id.as_str(), body.client_message_id.as_str()) {
        ("", "") => Err(SessionError::InvalidArgument(
            "name the message: set message_id or client_message_id".into(),
        )),
        (id, "") => Ok((input::message_id(id, "message_id")?, false)),
        ("", key) => Ok((key.to_owned(), true)),
        _ => Err(SessionError::InvalidArgument(
            "set message_id or client_message_id, not both".into(),
        )),
    }
}

/// The wire form of an outbound log row.
pub fn status_info(row: Row) -> proto::MessageStatusInfo {
    proto::MessageStatusInfo {
        message_id: row.message_id,
        client_message_id: row.client_id,
        chat: row.chat,
        status: row.status as i32,
        error_code: row.error_code,
        error: row.error,
        updated_at: Some(convert::timestamp(row.updated_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content: Content) -> proto::SendMessageRequest {
        proto::SendMessageRequest {
            session_id: "alice".into(),
            to: "+15551234567".into(),
            content: Some(content),
            ..Default::default()
        }
    }

    fn refusal(body: proto::SendMessageRequest) -> String {
        match send_input(body) {
            Err(SessionError::InvalidArgument(message)) => message,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn a_text_to_a_phone_number_becomes_a_send_to_its_user_jid() {
        let (id, input) = send_input(request(Content::Text("hi".into()))).unwrap();
        assert_eq!(id.to_string(), "alice");
        assert_eq!(input.to, "15551234567@s.whatsapp.net");
        assert_eq!(input.client_id, None);
    }

    #[test]
    fn bad_input_is_refused_naming_the_field() {
        assert!(refusal(proto::SendMessageRequest {
            content: None,
            ..request(Content::Text("x".into()))
        })
        .contains("content is missing"));
        assert!(refusal(request(Content::Text(String::new()))).contains("text must be 1 to 65536 bytes"));
        assert!(refusal(request(Content::Text("x".repeat(65_537)))).contains("text must be 1 to 65536 bytes"));
        let two = Content::Reaction(proto::Reaction {
            message_id: "3EB0AA".into(),
            emoji: "👍👍".into(),
        });
        assert!(refusal(request(two)).contains("one emoji"));
        let letter = Content::Reaction(proto::Reaction {
            message_id: "3EB0AA".into(),
            emoji: "a".into(),
        });
        assert!(refusal(request(letter)).contains("one emoji"));
        let no_target = Content::Revoke(proto::Revoke {
            message_id: String::new(),
        });
        assert!(refusal(request(no_target)).contains("revoke.message_id"));
        assert!(refusal(proto::SendMessageRequest {
            to: "someone".into(),
            ..request(Content::Text("x".into()))
        })
        .contains("recipient \"someone\" is invalid"));
        assert!(refusal(proto::SendMessageRequest {
            client_message_id: "bad key!".into(),
            ..request(Content::Text("x".into()))
        })
        .contains("client_message_id"));
    }

    #[test]
    fn groups_and_single_emoji_sequences_are_taken() {
        let group = proto::SendMessageRequest {
            to: "120363012345678901@g.us".into(),
            ..request(Content::Text("hi".into()))
        };
        assert_eq!(send_input(group).unwrap().1.to, "120363012345678901@g.us");
        // A family emoji is several code points but one grapheme; empty removes.
        for emoji in ["👍", "👨‍👩‍👧", ""] {
            let reaction = Content::Reaction(proto::Reaction {
                message_id: "3EB0AA".into(),
                emoji: emoji.into(),
            });
            assert!(send_input(request(reaction)).is_ok(), "{emoji:?}");
        }
    }
}
