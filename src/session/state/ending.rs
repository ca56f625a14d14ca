//! How a session's connection ends: a disconnect with its reason (and what the
//! reconnect policy makes of it), a connection that could not open, a stop or a
//! logout on request.

use std::time::SystemTime;

use super::{ConnId, Purpose, SessionState};
use crate::{
    backend::Disconnect,
    domain::{DisconnectReason, Status},
    session::policy::{recovery_for, Recovery},
};

impl SessionState {
    /// The connection ended. Returns what to do next, or None when it was stale.
    pub fn on_disconnected(&mut self, conn: ConnId, why: &Disconnect, sys: SystemTime) -> Option<Recovery> {
        let purpose = self.conn.as_ref().filter(|c| c.id == conn)?.purpose;
        self.conn = None;
        self.view.qr = None;
        let unlinked_pairing = purpose == Purpose::Pair && !self.is_linked();
        if unlinked_pairing && matches!(why, Disconnect::ConnectionLost(_)) {
            // A pairing socket that drops is like a batch that ran out: lazy.
            self.view.status = Status::QrWaiting;
            self.view.disconnect_reason = DisconnectReason::ConnectionLost;
            self.touch(sys);
            return Some(Recovery::Stop);
        }
        if unlinked_pairing && matches!(why, Disconnect::ClientOutdated { pinned: false }) {
            // Nothing to resume: the next pairing connection, asked for, uses the
            // version being resolved now.
            self.view.status = Status::QrWaiting;
            self.view.disconnect_reason = DisconnectReason::ClientOutdated;
            self.view.last_error =
                "whatsapp refused this client version (405): resolving the current one; ask for a qr code again".into();
            self.touch(sys);
            return Some(Recovery::Stop);
        }
        let (status, reason, error, recovery) = recovery_for(why);
        self.view.status = status;
        self.view.disconnect_reason = reason;
        if !error.is_empty() {
            self.view.last_error = error;
        }
        match recovery {
            Recovery::RestartNow => self.view.restart_count += 1,
            Recovery::Backoff => self.reconnect_attempt += 1,
            Recovery::StopAndWipe => self.forget_identity(),
            Recovery::Stop | Recovery::AfterBan(_) => {}
        }
        self.touch(sys);
        Some(recovery)
    }

    /// A connection could not even be opened. Pairing: FAILED with the cause (a caller
    /// retries). Resume: back off and retry.
    pub fn on_connect_failed(&mut self, conn: ConnId, cause: &str, sys: SystemTime) -> Option<Recovery> {
        let purpose = self.conn.as_ref().filter(|c| c.id == conn)?.purpose;
        if purpose == Purpose::Resume {
            return self.on_disconnected(conn, &Disconnect::ConnectionLost(cause.to_owned()), sys);
        }
        self.conn = None;
        self.view.qr = None;
        self.view.status = Status::Failed;
        self.view.disconnect_reason = DisconnectReason::ConnectionLost;
        self.view.last_error = format!("could not reach whatsapp: {cause}");
        self.touch(sys);
        Some(Recovery::Stop)
    }

    /// A reconnect attempt after backoff starts.
    pub fn count_reconnect(&mut self) {
        self.view.restart_count += 1;
    }

    fn forget_identity(&mut self) {
        self.view.jid.clear();
        self.view.push_name.clear();
        self.view.connected_at = None;
    }

    /// Stopped on request: DISCONNECTED, reason REQUESTED, no QR. Returns the
    /// connection to close.
    pub fn stop_requested(&mut self, sys: SystemTime) -> Option<ConnId> {
        let conn = self.detach_conn();
        let changed = self.view.status != Status::Disconnected
            || self.view.disconnect_reason != DisconnectReason::Requested
            || self.view.qr.is_some();
        if changed {
            self.view.status = Status::Disconnected;
            self.view.disconnect_reason = DisconnectReason::Requested;
            self.view.qr = None;
            self.touch(sys);
        }
        conn
    }

    /// Logged out on request: LOGGED_OUT, identity forgotten.
    pub fn logged_out(&mut self, sys: SystemTime) {
        self.conn = None;
        self.view.qr = None;
        self.view.status = Status::LoggedOut;
        self.view.disconnect_reason = DisconnectReason::LoggedOut;
        self.view.last_error.clear();
        self.forget_identity();
        self.touch(sys);
    }
}
