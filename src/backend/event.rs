//! The backend's vocabulary: what a connection reports (QR codes, who linked,
//! why it ended), in the backend's own terms. The session maps it to its rules.

use std::time::{Duration, SystemTime};

/// A QR code as a backend reports it.
#[derive(Clone, PartialEq, Eq)]
pub struct QrCode {
    /// The text to encode (`ref,noiseKey,identityKey,advSecret`): a secret, never logged.
    pub code: String,
    /// How long it is valid.
    pub ttl: Duration,
    /// 1-based position in the batch.
    pub index: u32,
    /// Codes in the batch.
    pub count: u32,
}

impl std::fmt::Debug for QrCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QrCode({}/{}, {:?})", self.index, self.count, self.ttl)
    }
}

/// Why a backend connection ended, as the backend reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disconnect {
    /// 515 after pair-success: reconnect with the new credentials.
    RestartRequired,
    /// Socket loss, 408, 428, 503: the cause in words.
    ConnectionLost(String),
    /// 401 / device_removed.
    LoggedOut,
    /// 440 conflict replaced.
    Replaced,
    /// 405: WhatsApp refused the announced WhatsApp Web version.
    ClientOutdated {
        /// Whether `--wa-version` pins it (else a newer one is being resolved).
        pinned: bool,
    },
    /// 402, with when the ban ends if WhatsApp said.
    TemporaryBan {
        /// When the ban ends.
        ends_at: Option<SystemTime>,
        /// WhatsApp's reason (101-106; 0 when it gave none).
        code: u32,
    },
}

/// Who the linked device is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// Digits only.
    pub phone_number: String,
    /// The device JID.
    pub jid: String,
    /// The account's display name.
    pub push_name: String,
    /// When it last connected.
    pub connected_at: Option<SystemTime>,
}
