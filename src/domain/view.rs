//! What a session looks like from outside: its QR code and the snapshot
//! (`SessionView`) that the gRPC edge converts.

use std::{collections::BTreeMap, time::Duration, time::SystemTime};

use tokio::time::Instant;

use super::{id::SessionId, status::DisconnectReason, status::Status};

/// One QR code of a batch. `code` is a secret: it holds the device's ADV secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Qr {
    /// The text to encode in the image.
    pub code: String,
    /// Wall-clock time it was received.
    pub issued_at: SystemTime,
    /// Wall-clock time it stops being scannable.
    pub expires_at: SystemTime,
    /// Monotonic twin of `expires_at`, for the decisions.
    pub expires: Instant,
    /// How long it was valid for when issued.
    pub ttl: Duration,
    /// 1-based position in the batch.
    pub index: u32,
    /// Codes in the batch.
    pub count: u32,
    /// The connection generation it belongs to.
    pub generation: u64,
}

impl Qr {
    /// Whether it is still scannable at `now`.
    pub fn is_valid_at(&self, now: Instant) -> bool {
        now < self.expires
    }

    /// How long it stays scannable after `now` (zero when expired).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires.saturating_duration_since(now)
    }

    /// Whether it is the last code of its batch.
    pub fn is_last(&self) -> bool {
        self.index >= self.count
    }
}

impl std::fmt::Debug for Qr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qr")
            .field("code", &"<redacted>")
            .field("index", &self.index)
            .field("count", &self.count)
            .field("generation", &self.generation)
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// A consistent snapshot of one session, as callers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionView {
    /// The session's id.
    pub id: SessionId,
    /// Where it is in its life.
    pub status: Status,
    /// The current code while pairing.
    pub qr: Option<Qr>,
    /// Digits only, once linked.
    pub phone_number: String,
    /// The device's JID, once linked.
    pub jid: String,
    /// The account's display name, when known.
    pub push_name: String,
    /// When the session was created.
    pub created_at: SystemTime,
    /// When anything last changed.
    pub updated_at: SystemTime,
    /// When it last became CONNECTED.
    pub connected_at: Option<SystemTime>,
    /// When it last connected or sent something.
    pub last_active_at: Option<SystemTime>,
    /// What went wrong last, in words.
    pub last_error: String,
    /// Why the last connection ended.
    pub disconnect_reason: DisconnectReason,
    /// Restarts (515) and reconnects so far.
    pub restart_count: u32,
    /// Grows with every change.
    pub revision: u64,
    /// The newest pairing connection's generation (0: none yet); grows across
    /// restarts of the session's actor too.
    pub generation: u64,
    /// The caller's labels.
    pub labels: BTreeMap<String, String>,
}

/// A change of some session, for watchers of every session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEvent {
    /// The session's state after the change (its last state when deleted).
    pub view: SessionView,
    /// The session was deleted.
    pub deleted: bool,
}

impl SessionView {
    /// What the event log records of this state (never the QR code).
    pub fn status_change(&self) -> crate::proto::StatusChange {
        crate::proto::StatusChange {
            status: crate::proto::SessionStatus::from(self.status) as i32,
            disconnect_reason: crate::proto::DisconnectReason::from(self.disconnect_reason) as i32,
            last_error: self.last_error.clone(),
            deleted: false,
        }
    }
}
