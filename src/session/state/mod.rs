//! The session's rules as plain synchronous code: every transition, the QR freshness
//! decision and the revision counter. The actor wraps this with I/O; nothing here
//! touches a socket, a timer or a file.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use tokio::time::Instant;

use crate::{
    backend::{Identity, QrCode},
    domain::{DisconnectReason, Qr, SessionId, SessionView, Status},
};

/// Identifies one backend connection of a session; events from older ones are ignored.
pub type ConnId = u64;

/// What a connection was opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// No credentials: show QR codes.
    Pair,
    /// Stored credentials: go online.
    Resume,
}

/// The live backend connection, as the state machine knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    /// Events tagged with another id are stale and ignored.
    pub id: ConnId,
    /// Why it was opened.
    pub purpose: Purpose,
    /// For a pairing connection: the generation its codes carry.
    pub generation: u64,
    /// For a pairing connection: the first code must come before this.
    pub first_qr_deadline: Option<Instant>,
    /// For a pairing connection: the bound that deadline came from.
    pub first_qr_timeout: Duration,
}

/// One session's state.
#[derive(Debug, Clone)]
pub struct SessionState {
    /// What callers see; every change bumps its revision (`touch`).
    view: SessionView,
    /// The generation of the newest pairing connection.
    generation: u64,
    /// The connection events are accepted from; `None` between connections.
    conn: Option<Conn>,
    /// The id the next connection gets: ids are never reused within an
    /// incarnation, so a late event of a closed connection is always stale.
    next_conn: ConnId,
    /// Failed reconnects in a row (for the backoff).
    reconnect_attempt: u32,
    /// The longest TTL of any code issued so far (zero: none yet).
    longest_ttl: Duration,
}

impl SessionState {
    /// A new session, not started.
    pub fn new(id: SessionId, labels: BTreeMap<String, String>, created_at: SystemTime) -> Self {
        let view = SessionView {
            id,
            status: Status::Starting,
            qr: None,
            phone_number: String::new(),
            jid: String::new(),
            push_name: String::new(),
            created_at,
            updated_at: created_at,
            connected_at: None,
            last_active_at: None,
            last_error: String::new(),
            disconnect_reason: DisconnectReason::Unspecified,
            restart_count: 0,
            revision: 1,
            generation: 0,
            labels,
        };
        Self {
            view,
            generation: 0,
            conn: None,
            next_conn: 1,
            reconnect_attempt: 0,
            longest_ttl: Duration::ZERO,
        }
    }

    /// The public snapshot.
    pub fn view(&self) -> &SessionView {
        &self.view
    }

    /// The generation of the newest pairing connection.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The live connection.
    pub fn conn(&self) -> Option<&Conn> {
        self.conn.as_ref()
    }

    /// Failed reconnects in a row.
    pub fn reconnect_attempt(&self) -> u32 {
        self.reconnect_attempt
    }

    /// Whether the session has a linked device (credentials may exist).
    pub fn is_linked(&self) -> bool {
        !self.view.jid.is_empty()
    }

    /// Records a change: the revision grows and `updated_at` moves.
    fn touch(&mut self, now: SystemTime) {
        self.view.revision += 1;
        self.view.updated_at = now;
    }

    /// Whether `conn` is the live connection.
    fn is_live(&self, conn: ConnId) -> bool {
        self.conn.as_ref().is_some_and(|c| c.id == conn)
    }

    /// Restores what a stored record knows (identity, status at rest).
    pub fn restore(&mut self, identity: Identity, status: Status, reason: DisconnectReason) {
        self.view.phone_number = identity.phone_number;
        self.view.jid = identity.jid;
        self.view.push_name = identity.push_name;
        self.view.connected_at = identity.connected_at;
        self.view.status = status;
        self.view.disconnect_reason = reason;
    }

    /// Continues the revisions of an earlier incarnation (after a crash or restart).
    pub fn continue_revisions(&mut self, last: u64) {
        self.view.revision = self.view.revision.max(last + 1);
    }

    /// Continues an earlier incarnation seen last as `last`: its revisions and its
    /// QR generations only grow.
    pub fn continue_from(&mut self, last: &SessionView) {
        self.continue_revisions(last.revision);
        self.generation = self.generation.max(last.generation);
        self.view.generation = self.generation;
    }

    /// Crashed too often: FAILED with `reason`, nothing more will start by itself.
    pub fn give_up(&mut self, reason: &str) {
        self.view.status = Status::Failed;
        self.view.last_error = reason.to_owned();
    }

    /// Opens a pairing connection: a new generation, no code yet, the first code due
    /// within `timeout`.
    pub fn open_pairing(&mut self, now: Instant, sys: SystemTime, timeout: Duration) -> ConnId {
        self.generation += 1;
        self.view.generation = self.generation;
        let id = self.take_conn_id();
        self.conn = Some(Conn {
            id,
            purpose: Purpose::Pair,
            generation: self.generation,
            first_qr_deadline: Some(now + timeout),
            first_qr_timeout: timeout,
        });
        self.view.qr = None;
        self.view.status = Status::Connecting;
        self.view.last_error.clear();
        self.touch(sys);
        id
    }

    /// Opens a connection with stored credentials; `status` is CONNECTING, RESTARTING
    /// or RECONNECTING, whichever explains it.
    pub fn open_resume(&mut self, status: Status, sys: SystemTime) -> ConnId {
        let id = self.take_conn_id();
        self.conn = Some(Conn {
            id,
            purpose: Purpose::Resume,
            generation: self.generation,
            first_qr_deadline: None,
            first_qr_timeout: Duration::ZERO,
        });
        self.view.qr = None;
        self.view.status = status;
        self.touch(sys);
        id
    }

    fn take_conn_id(&mut self) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        id
    }

    /// Forgets the live connection (the caller closes it); returns its id.
    pub fn detach_conn(&mut self) -> Option<ConnId> {
        self.conn.take().map(|c| c.id)
    }

    /// A code arrived. False when it is stale (another connection's).
    pub fn on_qr(&mut self, conn: ConnId, qr: QrCode, now: Instant, sys: SystemTime) -> bool {
        let Some(live) = self.conn.as_mut().filter(|c| c.id == conn) else {
            return false;
        };
        live.first_qr_deadline = None;
        let generation = live.generation;
        self.longest_ttl = self.longest_ttl.max(qr.ttl);
        self.view.qr = Some(Qr {
            code: qr.code,
            issued_at: sys,
            expires_at: sys + qr.ttl,
            expires: now + qr.ttl,
            ttl: qr.ttl,
            index: qr.index,
            count: qr.count,
            generation,
        });
        self.view.status = Status::QrWaiting;
        self.touch(sys);
        true
    }

    /// The server closed the pairing connection after the last code: stay QR_WAITING
    /// with the last, expired code and no connection (lazy regeneration). The code
    /// died with its connection: if our clock (started when its event arrived, a
    /// little after the client's) still counts it valid, it expires now.
    pub fn on_qr_exhausted(&mut self, conn: ConnId, now: Instant, sys: SystemTime) -> bool {
        if !self.is_live(conn) {
            return false;
        }
        if let Some(qr) = self.view.qr.as_mut().filter(|qr| qr.is_valid_at(now)) {
            qr.expires = now;
            qr.expires_at = sys;
        }
        self.conn = None;
        self.view.status = Status::QrWaiting;
        self.view.disconnect_reason = DisconnectReason::QrExhausted;
        self.touch(sys);
        true
    }

    /// The last code of the batch expired while its connection is still open: treat
    /// the batch as exhausted. Returns the connection to close.
    pub fn on_last_qr_expired(&mut self, generation: u64, index: u32, now: Instant, sys: SystemTime) -> Option<ConnId> {
        let qr = self.view.qr.as_ref()?;
        let same = qr.generation == generation && qr.index == index;
        if !same || !qr.is_last() || qr.is_valid_at(now) {
            return None;
        }
        let conn = self.conn.as_ref().filter(|c| c.purpose == Purpose::Pair)?.id;
        self.on_qr_exhausted(conn, now, sys);
        Some(conn)
    }

    /// No code came in time: the connection is closed, the session FAILED with
    /// QR_TIMEOUT. Returns the connection to close.
    pub fn on_first_qr_timeout(&mut self, conn: ConnId, sys: SystemTime) -> Option<ConnId> {
        let timeout = self.conn.as_ref().filter(|c| c.id == conn)?.first_qr_timeout;
        if self.view.qr.is_some() {
            return None;
        }
        self.conn = None;
        self.view.status = Status::Failed;
        self.view.disconnect_reason = DisconnectReason::QrTimeout;
        self.view.last_error = format!(
            "no qr code from whatsapp within {}: call RefreshQr to try again",
            humantime::format_duration(timeout)
        );
        self.touch(sys);
        Some(conn)
    }

    /// The phone scanned a code: PAIRING until the 515 restart.
    pub fn on_pair_success(&mut self, conn: ConnId, phone: String, jid: String, sys: SystemTime) -> bool {
        if !self.is_live(conn) {
            return false;
        }
        self.view.qr = None;
        self.view.phone_number = phone;
        self.view.jid = jid;
        self.view.status = Status::Pairing;
        self.touch(sys);
        true
    }

    /// The connection is online.
    pub fn on_connected(&mut self, conn: ConnId, identity: Identity, sys: SystemTime) -> bool {
        let Some(live) = self.conn.as_mut().filter(|c| c.id == conn) else {
            return false;
        };
        live.purpose = Purpose::Resume;
        live.first_qr_deadline = None;
        self.view.qr = None;
        self.view.phone_number = identity.phone_number;
        self.view.jid = identity.jid;
        if !identity.push_name.is_empty() {
            self.view.push_name = identity.push_name;
        }
        self.view.status = Status::Connected;
        self.view.connected_at = Some(sys);
        self.view.last_active_at = Some(sys);
        self.view.disconnect_reason = DisconnectReason::Unspecified;
        self.view.last_error.clear();
        self.touch(sys);
        true
    }

    /// The connection has been stable long enough: the backoff starts over.
    pub fn reset_backoff(&mut self) {
        self.reconnect_attempt = 0;
    }

    /// Records what went wrong, for `last_error`.
    pub fn note_error(&mut self, message: String) {
        self.view.last_error = message;
    }

    /// Marks the message activity time.
    pub fn mark_active(&mut self, sys: SystemTime) {
        self.view.last_active_at = Some(sys);
        self.touch(sys);
    }
}

mod ending;
mod qr_need;
mod rules;

pub use qr_need::QrNeed;
pub use rules::ConnectPlan;

#[cfg(test)]
mod tests;
