//! The session's guards and decisions, beside its transitions: which calls its
//! state allows, what ConnectSession does, when watchers get a fresh QR, and what a
//! stored record means at restore. Pure: the actor carries out what these decide.

use std::time::SystemTime;

use super::{Purpose, SessionState};
use crate::{
    backend::Identity,
    domain::{DisconnectReason, Status},
    error::SessionError,
    store::SessionRecord,
};

/// What ConnectSession does, given the state and whether credentials are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectPlan {
    /// Linked and not online: connect with the stored credentials.
    Resume,
    /// Not linked and no pairing connection: open one.
    Pair,
    /// Something is already under way (online, connecting, pairing): wait for it.
    Wait,
}

impl SessionState {
    /// A QR or pairing code is only for pairing: refused (FAILED_PRECONDITION
    /// `SESSION_LINKED`) once a device is linked. `what` is what the caller asked.
    pub fn refuse_if_linked(&self, what: &str) -> Result<(), SessionError> {
        let view = self.view();
        if !self.is_linked() && view.status != Status::Connected {
            return Ok(());
        }
        let message = format!(
            "session {} is linked ({}): {what} is only for pairing; log it out first to pair again",
            view.id,
            view.status.wire_name()
        );
        Err(SessionError::precondition("SESSION_LINKED", view.status, message))
    }

    /// Sending needs the session online (FAILED_PRECONDITION `SESSION_NOT_CONNECTED`).
    pub fn require_connected(&self) -> Result<(), SessionError> {
        let view = self.view();
        if view.status == Status::Connected {
            return Ok(());
        }
        let message = format!(
            "session {} is not connected ({}): link it first (its qr code is in GetSession) or wait for it to reconnect",
            view.id,
            view.status.wire_name()
        );
        Err(SessionError::precondition(
            "SESSION_NOT_CONNECTED",
            view.status,
            message,
        ))
    }

    /// What ConnectSession does; `linked`: credentials are stored.
    pub fn connect_plan(&self, linked: bool) -> ConnectPlan {
        let conn = self.conn();
        if linked {
            let idle = self.view().status != Status::Connected && conn.is_none();
            return if idle { ConnectPlan::Resume } else { ConnectPlan::Wait };
        }
        let pairing = conn.is_some_and(|c| c.purpose == Purpose::Pair);
        if pairing {
            ConnectPlan::Wait
        } else {
            ConnectPlan::Pair
        }
    }

    /// Whether a watcher that keeps the QR fresh needs a new batch now: the last one
    /// ran out and no connection is open.
    pub fn watchers_need_fresh_qr(&self, a_watcher_keeps_it_fresh: bool) -> bool {
        a_watcher_keeps_it_fresh && self.view().status == Status::QrWaiting && self.conn().is_none()
    }

    /// A session's state from its stored record, at rest; `linked`: its credentials
    /// are stored. Stopped stays DISCONNECTED; linked and running comes back
    /// CONNECTING (the actor resumes); logged out stays LOGGED_OUT; unlinked waits in
    /// QR_WAITING with no connection until someone asks for a code.
    pub fn at_rest(record: &SessionRecord, linked: bool) -> Self {
        let mut state = Self::new(record.id.clone(), record.labels.clone(), record.created_at());
        let (status, reason) = match (linked, record.stopped, record.logged_out) {
            (_, true, _) => (Status::Disconnected, DisconnectReason::Requested),
            (true, false, _) => (Status::Connecting, DisconnectReason::Unspecified),
            (false, false, true) => (Status::LoggedOut, DisconnectReason::LoggedOut),
            (false, false, false) => (Status::QrWaiting, DisconnectReason::Unspecified),
        };
        let identity = Identity {
            phone_number: record.phone_number.clone(),
            jid: if linked { record.jid.clone() } else { String::new() },
            push_name: record.push_name.clone(),
            connected_at: record.connected_at(),
        };
        state.restore(identity, status, reason);
        // Revisions only grow, across daemon restarts too: a restored session continues
        // from the boot time in microseconds, past anything an earlier run counted to.
        let boot_micros = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        state.continue_revisions(boot_micros);
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(stopped: bool, logged_out: bool) -> SessionRecord {
        let alice = crate::domain::SessionId::parse("alice").unwrap();
        SessionRecord {
            jid: "15551234567:1@s.whatsapp.net".into(),
            stopped,
            logged_out,
            ..SessionRecord::new(&alice, Default::default(), SystemTime::UNIX_EPOCH)
        }
    }

    #[test]
    fn a_stored_record_means_at_rest() {
        let cases = [
            (record(true, false), true, Status::Disconnected),
            (record(false, false), true, Status::Connecting),
            (record(false, true), false, Status::LoggedOut),
            (record(false, false), false, Status::QrWaiting),
        ];
        for (record, linked, status) in cases {
            let state = SessionState::at_rest(&record, linked);
            assert_eq!(state.view().status, status, "{record:?} linked {linked}");
            assert_eq!(state.is_linked(), linked);
        }
    }

    #[test]
    fn linked_sessions_refuse_pairing_and_idle_ones_refuse_sends_with_wire_names() {
        let linked = SessionState::at_rest(&record(false, false), true);
        let refused = linked.refuse_if_linked("a qr code").unwrap_err();
        assert!(refused.to_string().contains("SESSION_STATUS_CONNECTING"), "{refused}");
        let not_sent = linked.require_connected().unwrap_err();
        assert!(
            not_sent.to_string().contains("(SESSION_STATUS_CONNECTING)"),
            "{not_sent}"
        );
        let unlinked = SessionState::at_rest(&record(false, false), false);
        assert!(unlinked.refuse_if_linked("a qr code").is_ok());
    }

    #[test]
    fn connect_resumes_a_linked_idle_session_and_pairs_an_unlinked_one() {
        let stopped = SessionState::at_rest(&record(true, false), true);
        assert_eq!(stopped.connect_plan(true), ConnectPlan::Resume);
        let unlinked = SessionState::at_rest(&record(false, false), false);
        assert_eq!(unlinked.connect_plan(false), ConnectPlan::Pair);
        assert!(unlinked.watchers_need_fresh_qr(true));
        assert!(!unlinked.watchers_need_fresh_qr(false));
    }
}
