//! What survives a restart of the daemon for each session: its record in the
//! session list (see [`super::db`]).

use std::{collections::BTreeMap, time::SystemTime};

use super::time::{from_unix_ms, unix_ms};
use crate::domain::SessionId;

/// What survives a restart of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session's id, validated once when its row is read (a row whose id does
    /// not parse never becomes a record).
    pub id: SessionId,
    /// Labels the caller set at CreateSession, kept and returned as given.
    pub labels: BTreeMap<String, String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Digits only, once linked.
    pub phone_number: String,
    /// The device JID, once linked.
    pub jid: String,
    /// The account's display name.
    pub push_name: String,
    /// When it last connected, ms since the epoch.
    pub connected_at_ms: Option<u64>,
    /// Stopped on request (DisconnectSession): do not connect at startup.
    pub stopped: bool,
    /// Logged out: pair again on request.
    pub logged_out: bool,
}

impl SessionRecord {
    /// A new session's record.
    pub fn new(id: &SessionId, labels: BTreeMap<String, String>, created_at: SystemTime) -> Self {
        Self {
            id: id.clone(),
            labels,
            created_at_ms: unix_ms(created_at),
            phone_number: String::new(),
            jid: String::new(),
            push_name: String::new(),
            connected_at_ms: None,
            stopped: false,
            logged_out: false,
        }
    }

    /// When the session was created.
    pub fn created_at(&self) -> SystemTime {
        from_unix_ms(self.created_at_ms)
    }

    /// When it last connected.
    pub fn connected_at(&self) -> Option<SystemTime> {
        self.connected_at_ms.map(from_unix_ms)
    }
}
