//! What a session asks a connection to send: one `Outbound` value per message,
//! through the one `Connection::send`. A new kind of message (media, a chat state,
//! a read) is a new case of [`Content`] that each backend matches, not a new method
//! copied through every implementation.
//!
//! The daemon chooses each message's WhatsApp id before it is sent (`id`), so a
//! resend after a crash or a reconnect carries the same id and the recipient's
//! phone shows the message once.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::media::MediaMessage;

/// A message for WhatsApp, in the backend's words. Serialized into the outbound
/// log, so a resend after a crash sends exactly what was accepted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbound {
    /// The WhatsApp message id to send it under (`3EB0` and 18 hex digits).
    pub id: String,
    /// The chat: a user JID (`15551234567@s.whatsapp.net`) or a group JID
    /// (`...@g.us`); a backend refuses anything it cannot parse as one.
    pub to: String,
    /// What is sent.
    pub content: Content,
}

/// What a message carries.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content {
    /// A text, possibly quoting an earlier message of the chat (a reply).
    Text {
        /// What the recipient reads; never logged (its length is).
        text: String,
        /// The message it replies to, if any.
        reply_to: Option<MessageRef>,
    },
    /// A reaction to a message of the chat; an empty emoji removes it.
    Reaction {
        /// The message reacted to.
        target: MessageRef,
        /// One emoji, or empty.
        emoji: String,
    },
    /// New text for a message the account sent.
    Edit {
        /// The message edited (always one of the account's own).
        target: MessageRef,
        /// Its new text; never logged.
        text: String,
    },
    /// Deletes a message the account sent, for everyone.
    Revoke {
        /// The message deleted (always one of the account's own).
        target: MessageRef,
    },
    /// "typing...", "recording audio..." or neither, in the chat (no message;
    /// `Outbound::id` names nothing WhatsApp keeps).
    ChatState {
        /// What the chat shows.
        state: ChatState,
    },
    /// A file uploaded earlier (a handle), possibly quoting a message (a reply).
    Media {
        /// The file and how it shows.
        media: Box<MediaMessage>,
        /// The message it replies to, if any.
        reply_to: Option<MessageRef>,
    },
    /// Marks messages of the chat read (no message; `Outbound::id` names nothing).
    Read {
        /// In a group, the member who sent them.
        sender: Option<String>,
        /// WhatsApp's ids of the messages.
        ids: Vec<String>,
    },
}

/// What a chat state shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChatState {
    /// "typing..."
    Composing,
    /// "recording audio..."
    Recording,
    /// Neither any more.
    Paused,
}

/// An earlier message of the chat, as the event log knows it: what WhatsApp needs
/// to point at it (its key) and, for a quote, what it said.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRef {
    /// WhatsApp's id of the message.
    pub id: String,
    /// Sent by the linked account.
    pub from_me: bool,
    /// Its author's JID (the account's own for `from_me`; in a group, the member).
    pub sender: String,
    /// Its text, for the quote a reply shows (empty when it had none); never logged.
    pub text: String,
}

impl Outbound {
    /// A new WhatsApp message id, as WhatsApp Web makes them: `3EB0` and 18
    /// uppercase hex digits (9 random bytes).
    pub fn new_id() -> String {
        let bytes: [u8; 9] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        format!("3EB0{hex}")
    }
}

impl Content {
    /// The kind's name, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Reaction { .. } => "reaction",
            Self::Edit { .. } => "edit",
            Self::Revoke { .. } => "revoke",
            Self::ChatState { .. } => "chat state",
            Self::Read { .. } => "read",
            Self::Media { .. } => "media",
        }
    }

    /// The text it carries (a text's or an edit's, a file's caption), else "".
    pub fn text(&self) -> &str {
        match self {
            Self::Text { text, .. } | Self::Edit { text, .. } => text,
            Self::Media { media, .. } => &media.caption,
            Self::Reaction { .. } | Self::Revoke { .. } | Self::ChatState { .. } | Self::Read { .. } => "",
        }
    }

    /// The message it points at (quotes, reacts to, edits, revokes), if any.
    pub fn target(&self) -> Option<&MessageRef> {
        match self {
            Self::Text { reply_to, .. } | Self::Media { reply_to, .. } => reply_to.as_ref(),
            Self::Reaction { target, .. } | Self::Edit { target, .. } | Self::Revoke { target } => Some(target),
            Self::ChatState { .. } | Self::Read { .. } => None,
        }
    }
}

/// Names the recipient, the kind, the target and the body's size, never the body.
impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = match &self.content {
            Content::Text { text, .. } | Content::Edit { text, .. } => text.len(),
            Content::Reaction { emoji, .. } => emoji.len(),
            Content::Media { media, .. } => media.blob.size as usize,
            Content::Revoke { .. } | Content::ChatState { .. } | Content::Read { .. } => 0,
        };
        write!(
            f,
            "Outbound {{ id: {:?}, to: {:?}, kind: {}, target: {:?}, {size} bytes }}",
            self.id,
            self.to,
            self.content.kind(),
            self.content.target().map(|t| &t.id),
        )
    }
}

/// Names the message, never its text.
impl fmt::Debug for MessageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MessageRef {{ id: {:?}, from_me: {}, sender: {:?} }}",
            self.id, self.from_me, self.sender
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_look_like_whatsapp_webs_and_differ() {
        let (a, b) = (Outbound::new_id(), Outbound::new_id());
        assert_eq!(a.len(), 22);
        assert!(a.starts_with("3EB0") && a[4..].bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn debug_output_names_the_recipient_and_target_but_never_a_text() {
        let message = Outbound {
            id: "3EB0AAAA".into(),
            to: "15551234567@s.whatsapp.net".into(),
            content: Content::Text {
                text: "the secret plan".into(),
                reply_to: Some(MessageRef {
                    id: "QUOTED1".into(),
                    from_me: false,
                    sender: "15550000000@s.whatsapp.net".into(),
                    text: "the quoted secret".into(),
                }),
            },
        };
        let shown = format!("{message:?}");
        assert!(shown.contains("15551234567@s.whatsapp.net"), "{shown}");
        assert!(shown.contains("QUOTED1") && shown.contains("3EB0AAAA"), "{shown}");
        assert!(shown.contains("15 bytes"), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
