//! Where a session is in its life (`Status`) and why its last connection ended
//! (`DisconnectReason`), with their wire names.

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
