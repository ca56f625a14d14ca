//! What a session asks a connection to send: one `Outbound` value per message,
//! through the one `Connection::send`. A new kind of message (media, a reaction,
//! an edit, a revoke, a chat state, a read) is a new case here that each backend
//! matches, not a new method copied through every implementation.

use std::fmt;

/// A message for WhatsApp, in the backend's words.
#[derive(Clone, PartialEq, Eq)]
pub enum Outbound {
    /// A plain text message.
    Text {
        /// A user JID such as `15551234567@s.whatsapp.net`; a backend refuses
        /// anything it cannot parse as one.
        to: String,
        /// What the recipient reads; never logged (its length is).
        text: String,
    },
}

/// Names the recipient and the body's size, never the body.
impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text { to, text } => write!(f, "Text {{ to: {to:?}, text: {} bytes }}", text.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_names_the_recipient_but_never_the_body() {
        let message = Outbound::Text {
            to: "15551234567@s.whatsapp.net".into(),
            text: "the secret plan".into(),
        };
        let shown = format!("{message:?}");
        assert!(shown.contains("15551234567@s.whatsapp.net"), "{shown}");
        assert!(shown.contains("15 bytes"), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
