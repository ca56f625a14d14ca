//! What callers ask of the door into the sessions and what it answers besides a
//! `SessionView`: the QR a read wants, a pairing code, a sent message.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// What a caller asks of a session's QR.
#[derive(Debug, Clone, Copy)]
pub struct QrRequest {
    /// The code must stay valid at least this long.
    pub min_validity: Duration,
    /// False: answer with the state as it is (a peek: nothing is started).
    pub may_refresh: bool,
    /// The caller's own deadline (from its gRPC timeout), if any.
    pub deadline: Option<Instant>,
}

impl QrRequest {
    /// A peek: the state as it is, no code wanted, no deadline of the caller's own.
    pub const PEEK: QrRequest = QrRequest {
        min_validity: Duration::ZERO,
        may_refresh: false,
        deadline: None,
    };
}

/// A message handed to WhatsApp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// WhatsApp's id of the message.
    pub message_id: String,
    /// When it was handed over.
    pub sent_at: SystemTime,
}

/// A pairing code to type on the phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingCodeView {
    /// `XXXX-XXXX`.
    pub code: String,
    /// When it stops working.
    pub expires_at: SystemTime,
}
