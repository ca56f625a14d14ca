//! The durable outbound log's vocabulary: what a session sent (one row per
//! WhatsApp message id, in the order accepted), where each message stands, and the
//! rule that a status never goes backwards. The rows live in the event log's file
//! (`outbound` table) and change on its writer thread, in the same transaction as
//! the `EVENT_KIND_OUTBOUND` event each change logs ([`sql`]).

pub(super) mod health_sql;
pub(super) mod sql;

use std::time::SystemTime;

pub use crate::proto::{AccountHealth, MessageStatus, OutboundUpdate};

/// A message to accept into the log.
#[derive(Debug, Clone)]
pub struct Accept {
    /// The session sending it.
    pub session_id: String,
    /// The WhatsApp id the daemon chose for it.
    pub message_id: String,
    /// The caller's idempotency key, if any.
    pub client_id: Option<String>,
    /// The chat's JID.
    pub chat: String,
    /// What makes two requests with one key "the same content" (a hash).
    pub fingerprint: String,
    /// What to send again after a crash or a reconnect (the backend's message,
    /// serialized); it holds the text, so it never leaves the data dir.
    pub payload: String,
    /// Accepted while the session was not CONNECTED: logged (and answered) QUEUED.
    pub queued: bool,
    /// The campaign item it sends (its id was fixed when the item was added).
    pub campaign: Option<super::campaign::Link>,
}

/// What accepting did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// A new message, now in the log.
    New {
        /// When it was accepted.
        accepted_at: SystemTime,
    },
    /// The caller's key was used before for the same content: that message.
    Existing(Box<Row>),
    /// The caller's key was used before for other content.
    Conflict {
        /// The message the key names.
        message_id: String,
    },
    /// A campaign item that is no longer PENDING (cancelled, or sent already):
    /// nothing was accepted.
    Withdrawn,
}

/// One message of the outbound log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// WhatsApp's id.
    pub message_id: String,
    /// The caller's key ("" without one).
    pub client_id: String,
    /// The chat's JID.
    pub chat: String,
    /// Where it stands now.
    pub status: MessageStatus,
    /// WhatsApp's code for FAILED, else 0.
    pub error_code: u32,
    /// The failure in words, else "".
    pub error: String,
    /// What its first answer said (None: no answer was given yet).
    pub first_status: Option<MessageStatus>,
    /// When it was accepted.
    pub accepted_at: SystemTime,
    /// When its status last changed.
    pub updated_at: SystemTime,
    /// What to send again (see [`Accept::payload`]).
    pub payload: String,
}

/// A change of a message's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// Whose message.
    pub session_id: String,
    /// WhatsApp's id.
    pub message_id: String,
    /// The new status.
    pub status: MessageStatus,
    /// WhatsApp's code for FAILED, else 0.
    pub error_code: u32,
    /// The failure in words, else "".
    pub error: String,
}

impl Update {
    /// A change to `status` without an error.
    pub fn to(session_id: &str, message_id: &str, status: MessageStatus) -> Self {
        Self {
            session_id: session_id.to_owned(),
            message_id: message_id.to_owned(),
            status,
            error_code: 0,
            error: String::new(),
        }
    }

    /// A failure with WhatsApp's `code` (0: none) and `error` in words.
    pub fn failed(session_id: &str, message_id: &str, code: u32, error: impl Into<String>) -> Self {
        Self {
            error_code: code,
            error: error.into(),
            ..Self::to(session_id, message_id, MessageStatus::Failed)
        }
    }
}

/// What WhatsApp said about the account (its health), as a backend or the session
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthSignal {
    /// New chats are barred until then (None: lifted).
    Reachout {
        /// When the timelock ends.
        until: Option<SystemTime>,
    },
    /// A temporary ban, with WhatsApp's reason code (101-106).
    TempBan {
        /// WhatsApp's reason.
        code: u32,
        /// When it ends.
        until: SystemTime,
    },
    /// The account is online again: no ban in force.
    BanLifted,
    /// The connection was rate-limited (stream error 429) until then.
    RateLimited {
        /// When the limit ends.
        until: SystemTime,
    },
}

/// What the connection may still have to send: accepted, neither acked by the
/// server nor failed.
pub fn is_pending(status: MessageStatus) -> bool {
    matches!(status, MessageStatus::Queued | MessageStatus::Sent)
}

/// Whether a message at `from` may move to `to`: forward only; FAILED only before
/// the server took it, and nothing after FAILED.
pub fn advances(from: MessageStatus, to: MessageStatus) -> bool {
    match (from, to) {
        (MessageStatus::Failed, _) => false,
        (from, MessageStatus::Failed) => is_pending(from),
        (from, to) => rank(to) > rank(from),
    }
}

fn rank(status: MessageStatus) -> u8 {
    match status {
        MessageStatus::Unspecified => 0,
        MessageStatus::Queued => 1,
        MessageStatus::Sent => 2,
        MessageStatus::ServerAck => 3,
        MessageStatus::Delivered => 4,
        MessageStatus::Read => 5,
        MessageStatus::Played => 6,
        MessageStatus::Failed => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MessageStatus::*;

    #[test]
    fn a_status_only_moves_forward_and_failed_only_before_the_server_took_it() {
        assert!(advances(Queued, Sent) && advances(Sent, ServerAck) && advances(ServerAck, Delivered));
        assert!(advances(Delivered, Read) && advances(Read, Played) && advances(Sent, Read));
        assert!(!advances(Read, Delivered), "a late DELIVERED after READ is not logged");
        assert!(!advances(Sent, Sent) && !advances(ServerAck, Sent));
        assert!(advances(Queued, Failed) && advances(Sent, Failed));
        assert!(!advances(ServerAck, Failed) && !advances(Failed, ServerAck) && !advances(Failed, Failed));
    }
}
