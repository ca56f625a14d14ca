//! The registry's table of sessions as readers see it: each session's latest
//! published snapshot and whether its actor may be bypassed for a read. The registry
//! writes it (a session added, forgotten); the door reads it without a mailbox round
//! trip, so a GetSession on a CONNECTED session, a peek or a list never waits behind a
//! busy session or the registry.
//!
//! A `parking_lot` lock rather than the async one the clippy rule asks for: it is
//! held only to copy a handle or a page out (no await inside, microseconds), and the
//! registry writes it from synchronous code.

use std::{
    collections::BTreeMap,
    ops::Bound::{Excluded, Unbounded},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use parking_lot::RwLock;
use tokio::sync::watch;

use crate::domain::{SessionId, SessionView, Status};

/// One page of sessions and the id the next page starts after.
pub type Page = (Vec<SessionView>, Option<SessionId>);

/// What the table holds of one session.
#[derive(Clone)]
struct Row {
    /// The snapshot its actor publishes (before it answers anyone).
    view: watch::Receiver<SessionView>,
    /// False while its actor is not running (restarting after a crash, not yet
    /// spawned) or a delete is under way: then reads go to the registry, which
    /// answers as the lifecycle says (UNAVAILABLE, NOT_FOUND).
    direct: Arc<AtomicBool>,
}

/// The sessions readers see, shared by the registry (writer) and the door.
#[derive(Clone, Default)]
pub struct Table {
    /// Every session the registry knows, by id.
    rows: Arc<RwLock<BTreeMap<SessionId, Row>>>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("sessions", &self.rows.read().len())
            .finish()
    }
}

/// A session as a read finds it in the table (returned at once and taken apart by the
/// caller, so the snapshot is not boxed).
#[allow(clippy::large_enum_variant)]
pub enum Found {
    /// Its latest snapshot; its actor runs and no delete is under way.
    Live(SessionView),
    /// Known, but only the registry can answer (restarting, being deleted).
    AskRegistry,
    /// Unknown.
    Missing,
}

impl Table {
    /// Adds (or replaces) a session; `direct` is the switch its registry entry flips.
    pub(super) fn insert(&self, id: SessionId, view: watch::Receiver<SessionView>, direct: Arc<AtomicBool>) {
        self.rows.write().insert(id, Row { view, direct });
    }

    /// Forgets a session.
    pub(super) fn remove(&self, id: &SessionId) {
        self.rows.write().remove(id);
    }

    /// A session's latest snapshot, when a read may be answered from it.
    pub fn find(&self, id: &SessionId) -> Found {
        let Some(row) = self.rows.read().get(id).cloned() else {
            return Found::Missing;
        };
        if !row.direct.load(Ordering::Acquire) {
            return Found::AskRegistry;
        }
        let view = row.view.borrow().clone();
        Found::Live(view)
    }

    /// One page of sessions ordered by id, after `after`, only `status` if set (as
    /// they are now, those being deleted included, as the registry lists them).
    pub fn page(&self, status: Option<Status>, page_size: usize, after: Option<&SessionId>) -> Page {
        let start = after.map_or(Unbounded, Excluded);
        let rows = self.rows.read();
        let mut matching = rows
            .range((start, Unbounded))
            .map(|(_, row)| row.view.borrow().clone())
            .filter(|view| status.is_none_or(|s| view.status == s));
        let page: Vec<SessionView> = matching.by_ref().take(page_size).collect();
        let more = matching.next().is_some();
        let next = more.then(|| page.last().map(|v| v.id.clone())).flatten();
        (page, next)
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, time::SystemTime};

    use super::*;
    use crate::session::state::SessionState;

    fn view(id: &str, status: Status) -> SessionView {
        let id = SessionId::parse(id).unwrap();
        let mut view = SessionState::new(id, BTreeMap::new(), SystemTime::UNIX_EPOCH)
            .view()
            .clone();
        view.status = status;
        view
    }

    fn add(table: &Table, id: &str, status: Status, direct: bool) -> (watch::Sender<SessionView>, Arc<AtomicBool>) {
        let (tx, rx) = watch::channel(view(id, status));
        let switch = Arc::new(AtomicBool::new(direct));
        table.insert(SessionId::parse(id).unwrap(), rx, switch.clone());
        (tx, switch)
    }

    #[test]
    fn a_read_sees_the_latest_publication_only_while_the_actor_runs() {
        let table = Table::default();
        let alice = SessionId::parse("alice").unwrap();
        assert!(matches!(table.find(&alice), Found::Missing));
        let (publisher, direct) = add(&table, "alice", Status::Connecting, true);
        publisher.send_replace(view("alice", Status::Connected));
        assert!(matches!(table.find(&alice), Found::Live(v) if v.status == Status::Connected));
        direct.store(false, Ordering::Release);
        assert!(matches!(table.find(&alice), Found::AskRegistry));
        table.remove(&alice);
        assert!(matches!(table.find(&alice), Found::Missing));
    }

    #[test]
    fn pages_go_in_id_order_and_filter_by_status() {
        let table = Table::default();
        let _keep: Vec<_> = [
            ("c", Status::Connected),
            ("a", Status::Connected),
            ("b", Status::QrWaiting),
        ]
        .into_iter()
        .map(|(id, status)| add(&table, id, status, true))
        .collect();
        let (first, next) = table.page(None, 2, None);
        let ids: Vec<&str> = first.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        let (rest, end) = table.page(None, 2, next.as_ref());
        assert_eq!(rest.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["c"]);
        assert!(end.is_none());
        let (connected, _) = table.page(Some(Status::Connected), 10, None);
        assert_eq!(connected.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["a", "c"]);
    }
}
