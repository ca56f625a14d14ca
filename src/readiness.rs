//! Whether the daemon should get traffic: ready once its sessions are restored and
//! gRPC is serving, not ready again from the moment it starts draining; and whether
//! it is alive: every long-lived task `app::run` watches still runs. The admin
//! port's `/readyz` and `/livez` read it; `app::run` sets it.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    OnceLock,
};

/// The daemon's readiness, shared between `app::run` and the admin port.
#[derive(Debug, Default)]
pub struct Readiness {
    /// The stored sessions are restored and gRPC is serving.
    restored: AtomicBool,
    /// Shutdown started: stop sending traffic here.
    draining: AtomicBool,
    /// Which watched task ended by itself, if one did (the first one: it ends the
    /// process).
    dead: OnceLock<&'static str>,
}

impl Readiness {
    /// Sessions restored and gRPC serving.
    pub fn mark_restored(&self) {
        self.restored.store(true, Ordering::Release);
    }

    /// Shutdown started; readiness never comes back.
    pub fn mark_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// A watched task (`what`) ended while the daemon was not shutting down:
    /// neither live nor ready from now on.
    pub fn mark_dead(&self, what: &'static str) {
        let _ = self.dead.set(what);
        self.draining.store(true, Ordering::Release);
    }

    /// Whether the daemon should get traffic now.
    pub fn is_ready(&self) -> bool {
        self.restored.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }

    /// Why the process is not alive (which watched task ended), or None while it is.
    pub fn not_live_reason(&self) -> Option<&'static str> {
        self.dead.get().copied()
    }

    /// Why it is not ready, in words (None when ready).
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.draining.load(Ordering::Acquire) {
            Some("draining: shutting down")
        } else if !self.restored.load(Ordering::Acquire) {
            Some("starting: sessions not restored yet")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_between_restore_and_drain() {
        let readiness = Readiness::default();
        assert!(!readiness.is_ready());
        readiness.mark_restored();
        assert!(readiness.is_ready());
        assert_eq!(readiness.not_ready_reason(), None);
        readiness.mark_draining();
        assert!(!readiness.is_ready());
        assert_eq!(readiness.not_ready_reason(), Some("draining: shutting down"));
    }
}
