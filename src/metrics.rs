//! Counters the daemon keeps about itself (watchers attached, ...), readable by
//! tests and, later, the `/metrics` endpoint.

use std::sync::atomic::{AtomicI64, Ordering};

/// The daemon's gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Watch streams attached to sessions right now.
    watchers: AtomicI64,
}

impl Metrics {
    /// Watch streams attached right now.
    pub fn watchers(&self) -> i64 {
        self.watchers.load(Ordering::Relaxed)
    }

    pub(crate) fn watcher_attached(&self) {
        self.watchers.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn watcher_released(&self) {
        self.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}
