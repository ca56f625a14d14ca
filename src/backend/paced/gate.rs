//! One pacing gate: a fair semaphore whose permits are handshakes in flight, and
//! the bookkeeping that keeps its gauges true however an attempt ends. An attempt
//! is counted as waiting from the moment it queues until it leaves the queue, by
//! being admitted or by being closed or dropped while it waits (`Queued`'s drop);
//! a place, once taken, goes back exactly once, at the first event, the close, or
//! when the attempt is dropped (`Place`'s drop).

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::GateGauges;

/// Picks one gate's gauges out of the daemon's metrics.
pub(super) type Gauges = fn(&crate::metrics::Metrics) -> &GateGauges;

/// A gate of bounded width; cheap to clone.
#[derive(Clone)]
pub(super) struct Gate {
    /// One permit per attempt that may be in flight; tokio's semaphore is fair, so
    /// attempts pass in the order they queued.
    permits: Arc<Semaphore>,
    /// The daemon's metrics, of which `gauges` picks this gate's.
    metrics: Arc<crate::metrics::Metrics>,
    /// Which gauges count at this gate.
    gauges: Gauges,
}

impl Gate {
    /// A gate letting `width` attempts through at once, counted on `gauges`.
    pub(super) fn new(width: usize, metrics: Arc<crate::metrics::Metrics>, gauges: Gauges) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(width)),
            metrics,
            gauges,
        }
    }

    fn gauges(&self) -> &GateGauges {
        (self.gauges)(&self.metrics)
    }

    /// Queues an attempt: counted as waiting until the returned value is admitted
    /// or dropped.
    pub(super) fn queue(&self) -> Queued {
        self.gauges().waiting(1);
        Queued { gate: self.clone() }
    }
}

/// An attempt in the queue of a gate.
pub(super) struct Queued {
    /// The gate it waits at.
    gate: Gate,
}

impl Queued {
    /// Waits for a permit; the attempt stops counting as waiting whether it gets
    /// one or this future is dropped (the attempt closed or aborted meanwhile).
    pub(super) async fn admitted(self) -> Admitted {
        let permit = self.gate.permits.clone().acquire_owned().await;
        let permit = permit.expect("a pacing gate is never closed");
        Admitted {
            gate: self.gate.clone(),
            permit,
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.gate.gauges().waiting(-1);
    }
}

/// An attempt through the gate that has not started its connection yet. Dropped,
/// the permit goes back and nothing was counted in flight.
pub(super) struct Admitted {
    /// The gate it passed, which counts it in flight once it takes its place.
    gate: Gate,
    /// Its permit, returned to the gate if the attempt ends here.
    permit: OwnedSemaphorePermit,
}

impl Admitted {
    /// The attempt starts its connection: it holds its place (counted in flight)
    /// until `Place::release` or the place is dropped.
    pub(super) fn take_place(self) -> Place {
        self.permit.forget();
        self.gate.gauges().in_flight(1);
        Place {
            gate: self.gate,
            released: AtomicBool::new(false),
        }
    }
}

/// A place in the gate, given back once: at the connection's first event, at its
/// close, or when it is dropped, whichever comes first.
pub(super) struct Place {
    /// The gate the permit goes back to.
    gate: Gate,
    /// Set by the first release; later ones do nothing.
    released: AtomicBool,
}

impl Place {
    /// Gives the place back (once).
    pub(super) fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            // The gauge first: the next attempt, once it has the permit, must not
            // find this one still counted (a peak one above the limit).
            self.gate.gauges().in_flight(-1);
            self.gate.permits.add_permits(1);
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.release();
    }
}
