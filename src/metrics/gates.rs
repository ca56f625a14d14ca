//! The gauges of one pacing gate (`--max-concurrent-connects` for linked sessions,
//! `--max-concurrent-pairings` for pairing connections): attempts waiting for a
//! place, attempts past it whose handshake has not settled, and the most of those
//! ever at once. Each gate registers its own three series under its own noun.

use prometheus_client::{metrics::gauge::Gauge, registry::Registry};

/// One gate's gauges.
#[derive(Debug, Default)]
pub struct GateGauges {
    /// Attempts queued for a place; each leaves it exactly once, whether it got a
    /// place or was closed or dropped while it waited.
    waiting: Gauge,
    /// Attempts holding a place: from passing the gate to their connection's first
    /// event (a QR code, CONNECTED, a failure) or its close.
    in_flight: Gauge,
    /// The highest `in_flight` since start: what shows the gate's width held.
    in_flight_peak: Gauge,
}

impl GateGauges {
    /// Registers `<noun>_waiting`, `<noun>_in_flight` and `<noun>_in_flight_peak`,
    /// whose help names `what` is counted and the `flag` that bounds it.
    pub(super) fn register(&self, registry: &mut Registry, noun: &str, what: &str, flag: &str) {
        registry.register(
            format!("{noun}_in_flight"),
            format!("{what} past the --{flag} gate, not yet settled"),
            self.in_flight.clone(),
        );
        registry.register(
            format!("{noun}_in_flight_peak"),
            format!("The most {} in flight at once since start", what.to_lowercase()),
            self.in_flight_peak.clone(),
        );
        registry.register(
            format!("{noun}_waiting"),
            format!("{what} waiting for a place under --{flag}"),
            self.waiting.clone(),
        );
    }

    /// An attempt joins (+1) or leaves (-1) the queue.
    pub(crate) fn waiting(&self, delta: i64) {
        self.waiting.inc_by(delta);
    }

    /// An attempt got a place (+1) or gave it back (-1).
    pub(crate) fn in_flight(&self, delta: i64) {
        let now = self.in_flight.inc_by(delta) + delta;
        if now > self.in_flight_peak.get() {
            self.in_flight_peak.set(now);
        }
    }

    /// Attempts waiting now.
    pub fn waiting_now(&self) -> i64 {
        self.waiting.get()
    }

    /// Attempts in flight now.
    pub fn in_flight_now(&self) -> i64 {
        self.in_flight.get()
    }

    /// The most attempts that were in flight at once.
    pub fn in_flight_peak(&self) -> i64 {
        self.in_flight_peak.get()
    }
}
