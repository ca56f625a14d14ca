//! A session's state rebuilt from its stored record: at startup, after a crash, or
//! after giving up.

use std::time::SystemTime;

use tracing::warn;

use crate::{
    session::{
        actor::SessionContext,
        state::{Identity, SessionState},
        DisconnectReason, SessionId, Status,
    },
    store::SessionRecord,
};

/// A session's state as its record starts it: id, labels, creation time.
fn recorded_state(record: &SessionRecord) -> (SessionId, SessionState) {
    let id = SessionId::parse(&record.id).expect("records are validated on load");
    let state = SessionState::new(id.clone(), record.labels.clone(), record.created_at());
    (id, state)
}

/// A session's state at daemon startup: its credentials checked once (unusable ones
/// wiped, the cause noted in last_error), then rebuilt from its record.
pub(super) fn state_at_startup(record: &SessionRecord, ctx: &SessionContext) -> SessionState {
    let id = SessionId::parse(&record.id).expect("records are validated on load");
    let repaired = ctx.backend.repair(&id);
    if let Some(why) = &repaired {
        warn!(session_id = %id, %why, "unusable credentials wiped: the session pairs again");
    }
    let mut state = restored_state(record, ctx.backend.has_credentials(&id));
    if let Some(why) = repaired {
        state.note_error(why);
    }
    state
}

/// A session's state rebuilt from its record (status at rest); `linked`: whether
/// its credentials are stored. Linked and running comes back CONNECTING (the actor
/// resumes); unlinked waits in QR_WAITING with no connection until asked.
pub(super) fn restored_state(record: &SessionRecord, linked: bool) -> SessionState {
    let (_, mut state) = recorded_state(record);
    let (status, reason) = match (linked, record.stopped, record.logged_out) {
        (_, true, _) => (Status::Disconnected, DisconnectReason::Requested),
        (true, false, _) => (Status::Connecting, DisconnectReason::Unspecified),
        (false, false, true) => (Status::LoggedOut, DisconnectReason::LoggedOut),
        // Unlinked: waits with no connection until someone asks for a code.
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

pub(super) fn gave_up_state(record: &SessionRecord, reason: &str) -> SessionState {
    let (_, mut state) = recorded_state(record);
    state.give_up(reason);
    state
}
