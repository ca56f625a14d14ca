//! The gates over the scripted backend, on a paused clock: which gate an attempt
//! takes, that a burst on one never holds the other back, and that the gauges and
//! places come out right however an attempt ends (closed or dropped while waiting,
//! dropped at the very moment it is admitted).

use std::{sync::Arc, time::Duration};

use super::{connection::PacedConnection, Paced, Widths};
use crate::{
    backend::{scripted::Scripted, Backend, BackendEvent, Connection, EventSink},
    domain::SessionId,
    events::{EventLog, Inbox},
    metrics::Metrics,
};

/// A daemon's worth of pacing over a scripted backend.
struct Bench {
    /// What the gates let through.
    scripted: Scripted,
    /// The gates.
    paced: Paced,
    /// Their gauges.
    metrics: Arc<Metrics>,
    /// Where connections deliver (nothing is delivered in these tests).
    inbox: Inbox,
    /// Keeps the inbox's log folder.
    _dir: tempfile::TempDir,
}

impl Bench {
    fn new(connects: usize, pairings: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path(), Arc::default()).unwrap();
        let scripted = Scripted::default();
        let metrics = Arc::new(Metrics::default());
        let widths = Widths { connects, pairings };
        let paced = Paced::new(Arc::new(scripted.clone()), widths, metrics.clone());
        Self {
            scripted,
            paced,
            metrics,
            inbox: Inbox::new(log, "test"),
            _dir: dir,
        }
    }

    /// Starts an attempt for `id`; linked first when `linked`.
    fn attempt(&self, id: &str, linked: bool) -> PacedConnection {
        let session = SessionId::parse(id).unwrap();
        if linked {
            self.scripted.link(&session);
        }
        let sink: EventSink = Arc::new(|_| {});
        self.paced.start(&session, sink, self.inbox.clone())
    }

    /// Lets every task that can run, run (the clock is paused: nothing else moves).
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    /// Connections the scripted backend started for linked / unlinked sessions.
    fn started_by_kind(&self) -> (usize, usize) {
        let sessions = self.scripted.sessions_started();
        let resumes = sessions.iter().filter(|s| self.scripted.has_credentials(s)).count();
        (resumes, sessions.len() - resumes)
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_pairings_fills_its_own_wide_gate_while_resumes_stay_capped_at_the_connect_width() {
    let bench = Bench::new(32, 256);
    let pairings: Vec<_> = (0..300).map(|n| bench.attempt(&format!("new{n}"), false)).collect();
    bench.settle().await;
    assert_eq!(
        bench.started_by_kind(),
        (0, 256),
        "256 pairings in flight at once, not 32"
    );
    assert_eq!(bench.metrics.pairing_connects.in_flight_now(), 256);
    assert_eq!(bench.metrics.pairing_connects.waiting_now(), 44);

    let resumes: Vec<_> = (0..40).map(|n| bench.attempt(&format!("old{n}"), true)).collect();
    bench.settle().await;
    assert_eq!(
        bench.started_by_kind(),
        (32, 256),
        "resumes pass at once beside a full pairing gate, capped at the connect width"
    );
    assert_eq!(bench.metrics.connects.in_flight_now(), 32);
    assert_eq!(bench.metrics.connects.waiting_now(), 8);

    // The first 44 pairings show their code: the 44 waiting ones get through.
    for n in 1..=44 {
        let line = bench.scripted.connection(n).await;
        line.emit(BackendEvent::QrExhausted);
    }
    bench.settle().await;
    assert_eq!(
        bench.started_by_kind(),
        (32, 300),
        "every pairing got through in the end"
    );
    assert_eq!(bench.metrics.pairing_connects.waiting_now(), 0);
    assert_eq!(bench.metrics.pairing_connects.in_flight_peak(), 256);
    assert_eq!(bench.metrics.connects.in_flight_peak(), 32);
    drop((pairings, resumes));
}

#[tokio::test(start_paused = true)]
async fn a_resume_is_not_delayed_by_a_burst_of_pairings_nor_a_pairing_by_a_restore() {
    let bench = Bench::new(1, 1);
    let _restore = bench.attempt("old0", true);
    let _queued_restore = bench.attempt("old1", true);
    let _pairing = bench.attempt("new0", false);
    let _queued_pairing = bench.attempt("new1", false);
    bench.settle().await;
    assert_eq!(
        bench.started_by_kind(),
        (1, 1),
        "each gate lets its own first attempt through"
    );
}

#[tokio::test(start_paused = true)]
async fn closing_or_dropping_an_attempt_while_it_waits_leaves_the_waiting_gauge_at_zero() {
    let bench = Bench::new(1, 1);
    let first = bench.attempt("old0", true);
    let closed = bench.attempt("old1", true);
    let dropped = bench.attempt("old2", true);
    bench.settle().await;
    assert_eq!(bench.metrics.connects.waiting_now(), 2);
    Box::new(closed).close().await;
    drop(dropped);
    bench.settle().await;
    assert_eq!(bench.metrics.connects.waiting_now(), 0, "both left the queue");
    Box::new(first).close().await;
    bench.settle().await;
    assert_eq!(bench.metrics.connects.in_flight_now(), 0);
    assert_eq!(bench.scripted.started(), 1, "nothing opened for the attempts that left");
}

#[tokio::test(start_paused = true)]
async fn an_attempt_dropped_while_its_lock_is_held_opens_nothing_and_gives_its_place_back() {
    let bench = Bench::new(1, 1);
    let first = bench.attempt("old0", true);
    let second = bench.attempt("old1", true);
    bench.settle().await;
    // The task at the gate holds the attempt's lock (as on another worker thread)
    // at the very moment the session drops it, and is admitted right after.
    let held = second.hold_slot().await;
    drop(second);
    Box::new(first).close().await;
    drop(held);
    bench.settle().await;
    assert_eq!(
        bench.scripted.started(),
        1,
        "no connection opened for a dropped attempt"
    );
    assert_eq!(bench.metrics.connects.in_flight_now(), 0);
    assert_eq!(bench.metrics.connects.waiting_now(), 0);

    let _third = bench.attempt("old2", true);
    bench.settle().await;
    assert_eq!(bench.scripted.started(), 2, "the gate's one place is free again");
}

#[tokio::test(start_paused = true)]
async fn an_open_attempt_dropped_before_its_first_event_gives_its_place_back_and_closes() {
    let bench = Bench::new(1, 1);
    let first = bench.attempt("old0", true);
    bench.settle().await;
    assert_eq!(bench.scripted.open(), 1);
    drop(first);
    bench.settle().await;
    assert_eq!(bench.scripted.open(), 0, "the real connection went with its owner");
    assert_eq!(bench.metrics.connects.in_flight_now(), 0);
    let _second = bench.attempt("old1", true);
    bench.settle().await;
    assert_eq!(bench.scripted.started(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_number_check_waits_for_the_gate_then_reaches_the_real_connection_within_its_bound() {
    let bench = Bench::new(1, 1);
    let first = bench.attempt("first", true);
    let second = bench.attempt("second", true);
    bench.settle().await;
    // The scripted connection cannot check numbers: its own refusal shows the call
    // reached it.
    let through = first.registered(vec!["15550001234@s.whatsapp.net".into()]).await;
    assert!(
        matches!(&through, Err(crate::backend::BackendError::Refused(why)) if why.contains("cannot check numbers")),
        "{through:?}"
    );
    // Still waiting at the full gate: the check ends at its bound, not never.
    let waiting = second.registered(vec!["15550001234@s.whatsapp.net".into()]).await;
    assert!(
        matches!(&waiting, Err(crate::backend::BackendError::Unreachable(_))),
        "{waiting:?}"
    );
    drop((first, second));
}
