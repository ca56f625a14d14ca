//! What a caller asks to send (SendMessage, SendTextMessage) once its input passed
//! the edge's checks, and what it is answered. The chat is a JID; the message a
//! reply, reaction, edit or revoke points at is named by WhatsApp's id, looked up
//! in the log by the session.

use std::time::SystemTime;

use sha2::{Digest, Sha256};

pub use crate::proto::MessageStatus;

/// A message to send.
#[derive(Clone, PartialEq, Eq)]
pub struct SendInput {
    /// The chat's JID (a user or a group).
    pub to: String,
    /// The caller's idempotency key.
    pub client_id: Option<String>,
    /// Accept it as QUEUED when the session is not CONNECTED.
    pub queue_if_offline: bool,
    /// What it carries.
    pub content: SendContent,
}

/// What a message carries, as the caller named it.
#[derive(Clone, PartialEq, Eq)]
pub enum SendContent {
    /// A text; `reply_to` names the message it quotes.
    Text {
        /// Never logged.
        text: String,
        /// WhatsApp's id of a message of the chat.
        reply_to: Option<String>,
    },
    /// A reaction (an empty emoji removes it).
    Reaction {
        /// The message reacted to.
        target: String,
        /// One grapheme, or empty.
        emoji: String,
    },
    /// New text for one of the account's messages.
    Edit {
        /// The message edited.
        target: String,
        /// Never logged.
        text: String,
    },
    /// Deletes one of the account's messages for everyone.
    Revoke {
        /// The message deleted.
        target: String,
    },
    /// A file uploaded with UploadMedia.
    Media(Box<MediaInput>),
}

/// A file to send, as the caller named it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaInput {
    /// UploadMedia's handle.
    pub media_id: String,
    /// Shown under it (never logged).
    pub caption: String,
    /// A document's name ("" keeps the upload's).
    pub file_name: String,
    /// Audio sent as a voice note.
    pub voice_note: bool,
    /// An audio's or video's length.
    pub duration_seconds: u32,
    /// A voice note's waveform.
    pub waveform: Vec<u8>,
    /// A small JPEG preview.
    pub jpeg_thumbnail: Vec<u8>,
    /// WhatsApp's id of a message of the chat it quotes.
    pub reply_to: Option<String>,
}

impl SendInput {
    /// What makes two requests with one key the same request: a hash of the chat
    /// and the content (the text never leaves this function in the clear).
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        let mut field = |value: &str| {
            hash.update((value.len() as u64).to_be_bytes());
            hash.update(value.as_bytes());
        };
        field(&self.to);
        match &self.content {
            SendContent::Text { text, reply_to } => {
                field("text");
                field(text);
                field(reply_to.as_deref().unwrap_or(""));
            }
            SendContent::Reaction { target, emoji } => {
                field("reaction");
                field(target);
                field(emoji);
            }
            SendContent::Edit { target, text } => {
                field("edit");
                field(target);
                field(text);
            }
            SendContent::Revoke { target } => {
                field("revoke");
                field(target);
            }
            SendContent::Media(media) => {
                field("media");
                field(&media.media_id);
                field(&media.caption);
                field(&media.file_name);
                field(if media.voice_note { "voice" } else { "" });
                field(&media.duration_seconds.to_string());
                field(&String::from_utf8_lossy(&media.waveform));
                field(&String::from_utf8_lossy(&media.jpeg_thumbnail));
                field(media.reply_to.as_deref().unwrap_or(""));
            }
        }
        hex::encode(hash.finalize())
    }
}

/// Names the chat and the kind, never a text.
impl std::fmt::Debug for SendInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.content {
            SendContent::Text { .. } => "text",
            SendContent::Reaction { .. } => "reaction",
            SendContent::Edit { .. } => "edit",
            SendContent::Revoke { .. } => "revoke",
            SendContent::Media(_) => "media",
        };
        write!(
            f,
            "SendInput {{ to: {:?}, kind: {kind}, client_id: {:?} }}",
            self.to, self.client_id
        )
    }
}

/// What a send is answered: the message's id and where it stood then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendAnswer {
    /// WhatsApp's id (chosen by the daemon, kept on every resend).
    pub message_id: String,
    /// SENT or QUEUED.
    pub status: MessageStatus,
    /// When the daemon accepted it.
    pub accepted_at: SystemTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(to: &str, text: &str) -> SendInput {
        SendInput {
            to: to.into(),
            client_id: Some("k1".into()),
            queue_if_offline: false,
            content: SendContent::Text {
                text: text.into(),
                reply_to: None,
            },
        }
    }

    #[test]
    fn the_same_request_has_the_same_fingerprint_and_any_other_content_another() {
        let a = text("1@s.whatsapp.net", "hello");
        assert_eq!(a.fingerprint(), text("1@s.whatsapp.net", "hello").fingerprint());
        assert_ne!(a.fingerprint(), text("1@s.whatsapp.net", "hello!").fingerprint());
        assert_ne!(a.fingerprint(), text("2@s.whatsapp.net", "hello").fingerprint());
        // Field boundaries count: "ab"+"c" is not "a"+"bc".
        let edit = |target: &str, text: &str| SendInput {
            content: SendContent::Edit {
                target: target.into(),
                text: text.into(),
            },
            ..a.clone()
        };
        assert_ne!(edit("ab", "c").fingerprint(), edit("a", "bc").fingerprint());
        assert!(!format!("{a:?}").contains("hello"), "the text stays out of logs");
    }
}
