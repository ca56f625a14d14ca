//! Publishing a session's changes: the snapshot the registry answers reads from,
//! the watch streams, the daemon-wide change feed, the status change in the event
//! log and in the logs (by wire names), and the sessions-by-status metric.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::info;

use super::SessionContext;
use crate::{
    domain::{SessionEvent, SessionView, Status},
    events::{Body, NewEvent},
    metrics::{Metrics, SessionCount},
    proto::StatusChange,
    session::watchers::Watchers,
};

/// Where a session's changes go, and what it last sent to each.
pub(super) struct Publisher {
    /// The registry's copy of the snapshot; handed from incarnation to incarnation,
    /// so its revision tells what the registry already shows.
    published: watch::Sender<SessionView>,
    /// The status last logged, so each change is logged once.
    logged_status: Status,
    /// The status change last written to the event log; the state an incarnation
    /// starts in counts as written (only what follows is a change).
    journaled: Option<StatusChange>,
    /// Its place in the sessions-by-status metric.
    counted: SessionCount,
}

impl Publisher {
    /// Publishes into `published`, starting from `first` (not itself a change).
    pub(super) fn new(published: watch::Sender<SessionView>, first: &SessionView, metrics: &Arc<Metrics>) -> Self {
        Self {
            published,
            logged_status: first.status,
            journaled: Some(first.status_change()),
            counted: SessionCount::new(metrics.clone(), first.status),
        }
    }

    /// Publishes `view` if it changed, and logs a status change once.
    pub(super) fn publish(&mut self, view: &SessionView, watchers: &mut Watchers, ctx: &SessionContext) {
        self.counted.set(view.status);
        if view.status != self.logged_status {
            info!(
                session_id = %view.id,
                from = %self.logged_status.wire_name(),
                to = %view.status.wire_name(),
                reason = %view.disconnect_reason.wire_name(),
                revision = view.revision,
                "session status changed"
            );
            self.logged_status = view.status;
        }
        let change = view.status_change();
        if self.journaled.as_ref() != Some(&change) {
            let id = view.id.as_str();
            ctx.log.append_detached(NewEvent::now(id, Body::Status(change.clone())));
            self.journaled = Some(change);
        }
        let changed = self.published.borrow().revision != view.revision;
        if changed {
            self.published.send_replace(view.clone());
            watchers.broadcast(view);
            let event = SessionEvent {
                view: view.clone(),
                deleted: false,
            };
            let _ = ctx.events.send(event);
        }
    }
}
