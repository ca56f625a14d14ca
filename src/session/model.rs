//! What a session looks like from outside: its status, QR code and the snapshot
//! (`SessionView`) that the gRPC edge converts.

use std::{collections::BTreeMap, time::Duration, time::SystemTime};

use tokio::time::Instant;

use super::SessionId;

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Spawned, nothing started yet.
    Starting,
    /// A connection is opening.
    Connecting,
    /// Showing QR codes (or lazily waiting for someone to ask for fresh ones).
    QrWaiting,
    /// Scanned; waiting for the 515 restart.
    Pairing,
    /// Reconnecting at once after a 515 "restart required".
    Restarting,
    /// Linked and online.
    Connected,
    /// Lost its connection; retrying with backoff.
    Reconnecting,
    /// Stopped on request (or replaced); credentials kept.
    Disconnected,
    /// Unlinked; credentials wiped.
    LoggedOut,
    /// Gave up; see `last_error`.
    Failed,
}

/// Why the last connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// Nothing ended (yet), or the session connected since.
    Unspecified,
    /// 515 after pairing.
    RestartRequired,
    /// Socket loss, 408, 428, 503, or a failed connect.
    ConnectionLost,
    /// 401: the device was unlinked.
    LoggedOut,
    /// 440: another client took the credentials.
    Replaced,
    /// 405.
    ClientOutdated,
    /// 402.
    TemporaryBan,
    /// The batch of codes ran out without a scan.
    QrExhausted,
    /// A caller asked for it.
    Requested,
    /// No code came within the server's QR timeout.
    QrTimeout,
}

/// Every status.
pub const ALL_STATUSES: [Status; 10] = [
    Status::Starting,
    Status::Connecting,
    Status::QrWaiting,
    Status::Pairing,
    Status::Restarting,
    Status::Connected,
    Status::Reconnecting,
    Status::Disconnected,
    Status::LoggedOut,
    Status::Failed,
];

/// Every disconnect reason.
pub const ALL_REASONS: [DisconnectReason; 10] = [
    DisconnectReason::Unspecified,
    DisconnectReason::RestartRequired,
    DisconnectReason::ConnectionLost,
    DisconnectReason::LoggedOut,
    DisconnectReason::Replaced,
    DisconnectReason::ClientOutdated,
    DisconnectReason::TemporaryBan,
    DisconnectReason::QrExhausted,
    DisconnectReason::Requested,
    DisconnectReason::QrTimeout,
];

impl Status {
    /// Its name on the wire (`SESSION_STATUS_CONNECTED`), for messages, logs and
    /// metrics.
    pub fn wire_name(self) -> &'static str {
        match self {
            Status::Starting => "SESSION_STATUS_STARTING",
            Status::Connecting => "SESSION_STATUS_CONNECTING",
            Status::QrWaiting => "SESSION_STATUS_QR_WAITING",
            Status::Pairing => "SESSION_STATUS_PAIRING",
            Status::Restarting => "SESSION_STATUS_RESTARTING",
            Status::Connected => "SESSION_STATUS_CONNECTED",
            Status::Reconnecting => "SESSION_STATUS_RECONNECTING",
            Status::Disconnected => "SESSION_STATUS_DISCONNECTED",
            Status::LoggedOut => "SESSION_STATUS_LOGGED_OUT",
            Status::Failed => "SESSION_STATUS_FAILED",
        }
    }
}

impl DisconnectReason {
    /// Its name on the wire (`DISCONNECT_REASON_REPLACED`).
    pub fn wire_name(self) -> &'static str {
        match self {
            DisconnectReason::Unspecified => "DISCONNECT_REASON_UNSPECIFIED",
            DisconnectReason::RestartRequired => "DISCONNECT_REASON_RESTART_REQUIRED",
            DisconnectReason::ConnectionLost => "DISCONNECT_REASON_CONNECTION_LOST",
            DisconnectReason::LoggedOut => "DISCONNECT_REASON_LOGGED_OUT",
            DisconnectReason::Replaced => "DISCONNECT_REASON_REPLACED",
            DisconnectReason::ClientOutdated => "DISCONNECT_REASON_CLIENT_OUTDATED",
            DisconnectReason::TemporaryBan => "DISCONNECT_REASON_TEMPORARY_BAN",
            DisconnectReason::QrExhausted => "DISCONNECT_REASON_QR_EXHAUSTED",
            DisconnectReason::Requested => "DISCONNECT_REASON_REQUESTED",
            DisconnectReason::QrTimeout => "DISCONNECT_REASON_QR_TIMEOUT",
        }
    }
}

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

impl From<Status> for crate::proto::SessionStatus {
    fn from(status: Status) -> Self {
        use crate::proto::SessionStatus as P;
        match status {
            Status::Starting => P::Starting,
            Status::Connecting => P::Connecting,
            Status::QrWaiting => P::QrWaiting,
            Status::Pairing => P::Pairing,
            Status::Restarting => P::Restarting,
            Status::Connected => P::Connected,
            Status::Reconnecting => P::Reconnecting,
            Status::Disconnected => P::Disconnected,
            Status::LoggedOut => P::LoggedOut,
            Status::Failed => P::Failed,
        }
    }
}

impl From<DisconnectReason> for crate::proto::DisconnectReason {
    fn from(reason: DisconnectReason) -> Self {
        use crate::proto::DisconnectReason as P;
        match reason {
            DisconnectReason::Unspecified => P::Unspecified,
            DisconnectReason::RestartRequired => P::RestartRequired,
            DisconnectReason::ConnectionLost => P::ConnectionLost,
            DisconnectReason::LoggedOut => P::LoggedOut,
            DisconnectReason::Replaced => P::Replaced,
            DisconnectReason::ClientOutdated => P::ClientOutdated,
            DisconnectReason::TemporaryBan => P::TemporaryBan,
            DisconnectReason::QrExhausted => P::QrExhausted,
            DisconnectReason::Requested => P::Requested,
            DisconnectReason::QrTimeout => P::QrTimeout,
        }
    }
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
