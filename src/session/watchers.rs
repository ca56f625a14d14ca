//! The streams watching one session: each gets the current state first, then every
//! change. A watcher whose client went away is released at once (a task waits for
//! its receiver to close); one too slow to keep up is dropped.

use std::sync::Arc;

use tokio::{sync::mpsc, task::AbortHandle};

use crate::domain::SessionView;
use crate::metrics::Metrics;

/// Changes a watcher may lag behind before it is dropped.
const WATCHER_BUFFER: usize = 256;

/// One attached stream.
struct Watcher {
    /// How its close-watching task names it in `SessionMsg::WatcherGone`.
    id: u64,
    /// Its stream, bounded by `WATCHER_BUFFER`: full means too slow, and dropped.
    tx: mpsc::Sender<SessionView>,
    /// It asked for a QR that never expires.
    keep_fresh: bool,
    /// The task that notices the client going away.
    on_close: AbortHandle,
    /// Where its release is counted when it drops (the watchers gauge).
    metrics: Arc<Metrics>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.on_close.abort();
        self.metrics.watcher_released();
    }
}

/// The watchers of one session.
#[derive(Default)]
pub struct Watchers {
    list: Vec<Watcher>,
    next_id: u64,
}

impl Watchers {
    /// Attaches a watcher and sends it `current`. `gone` is called with its id once
    /// its client goes away.
    pub fn attach(
        &mut self,
        current: &SessionView,
        keep_fresh: bool,
        metrics: Arc<Metrics>,
        gone: impl FnOnce(u64) + Send + 'static,
    ) -> mpsc::Receiver<SessionView> {
        let (tx, rx) = mpsc::channel(WATCHER_BUFFER);
        let _ = tx.try_send(current.clone());
        self.next_id += 1;
        let id = self.next_id;
        let closed = tx.clone();
        let on_close = tokio::spawn(async move {
            closed.closed().await;
            gone(id);
        })
        .abort_handle();
        metrics.watcher_attached();
        self.list.push(Watcher {
            id,
            tx,
            keep_fresh,
            on_close,
            metrics,
        });
        rx
    }

    /// Releases a watcher whose client went away.
    pub fn release(&mut self, id: u64) {
        self.list.retain(|w| w.id != id);
    }

    /// Sends a change to every watcher; drops those gone or too slow.
    pub fn broadcast(&mut self, view: &SessionView) {
        self.list.retain(|w| match w.tx.try_send(view.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(session_id = %view.id, "dropping a watcher that fell {WATCHER_BUFFER} changes behind");
                false
            }
        });
    }

    /// Whether a watcher asked for a QR that never expires.
    pub fn want_fresh_qr(&self) -> bool {
        self.list.iter().any(|w| w.keep_fresh && !w.tx.is_closed())
    }

    /// Releases every watcher (their streams end).
    pub fn clear(&mut self) {
        self.list.clear();
    }
}
