//! The domain's failures, each with the one gRPC code it maps to (in `grpc::status`).
//! Messages are lowercase, say what happened and what to do, and never hold secrets.

use crate::domain::status::Status;

/// A failure a caller sees.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionError {
    /// No session with that id.
    #[error("session {0:?} not found: create it first or check the id")]
    NotFound(String),
    /// Something else the call names does not exist (a message, a consumer).
    #[error("{0}")]
    Missing(String),
    /// The call's key was used before for something else.
    #[error("{0}")]
    AlreadyExists(String),
    /// Bad id, phone, JID or text.
    #[error("{0}")]
    InvalidArgument(String),
    /// The session is in the wrong state for the call.
    #[error("{message}")]
    FailedPrecondition {
        /// What happened and what to do.
        message: String,
        /// The session's status when it refused, when known.
        status: Option<Status>,
        /// A stable machine-readable reason, e.g. `SESSION_NOT_CONNECTED`.
        reason: &'static str,
    },
    /// A cursor or consumer position older than what the event log keeps.
    #[error("{message}")]
    CursorExpired {
        /// What happened and what to do.
        message: String,
        /// The oldest cursor kept (empty: the log is empty).
        oldest_cursor: String,
    },
    /// A request no session can satisfy (a QR validity longer than any code lives).
    #[error("{0}")]
    OutOfRange(String),
    /// No QR (or connection) in time.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Shutting down, restarting, or WhatsApp unreachable: safe to retry.
    #[error("{0}")]
    Unavailable(String),
    /// WhatsApp's copy of a file expired and the phone did not upload it again
    /// (UNAVAILABLE, ErrorInfo reason MEDIA_EXPIRED).
    #[error("{0}")]
    MediaExpired(String),
    /// A limit was reached.
    #[error("{0}")]
    ResourceExhausted(String),
    /// No valid credentials on the call.
    #[error("{0}")]
    Unauthenticated(String),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SessionError {
    /// RESOURCE_EXHAUSTED: the daemon holds `limit` sessions already.
    pub fn session_limit(limit: usize) -> Self {
        Self::ResourceExhausted(format!(
            "this daemon holds its limit of {limit} sessions: delete unused sessions or raise --max-sessions"
        ))
    }

    /// FAILED_PRECONDITION with the session's status attached.
    pub fn precondition(reason: &'static str, status: Status, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            message: message.into(),
            status: Some(status),
            reason,
        }
    }
}
