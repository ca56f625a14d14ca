//! Paced connects: a `Backend` wrapper that lets at most `--max-concurrent-connects`
//! connection attempts (handshakes) be in flight at once across all sessions, both
//! backends. An attempt waits its turn in order (tokio's semaphore is fair, first
//! come first served) and holds its place until its connection reports its first
//! event (a QR code, Connected, a failure: the handshake is over) or is closed.
//! Meanwhile the session shows CONNECTING / RECONNECTING as it would anyway. So a
//! restore of thousands of linked sessions, or a mass drop, never opens thousands of
//! handshakes at once (WhatsApp rate-limits such storms).

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use tokio::{
    sync::{Mutex, Notify, Semaphore},
    task::AbortHandle,
};

use super::{
    Backend, BackendError, BoxFuture, Connection, EventSink, Outbound, PairingCodeIssued, SentMessage, CLOSE_TIMEOUT,
};
use crate::{domain::SessionId, events::Inbox, metrics::Metrics};

/// A backend whose connection attempts pass a gate of bounded width.
pub struct Paced {
    /// The backend that connects.
    inner: Arc<dyn Backend>,
    /// One permit per attempt in flight.
    gate: Arc<Semaphore>,
    /// Counts waiting and in-flight attempts.
    metrics: Arc<Metrics>,
}

impl Paced {
    /// Paces `inner` to `width` attempts in flight at once.
    pub fn new(inner: Arc<dyn Backend>, width: usize, metrics: Arc<Metrics>) -> Self {
        tracing::info!(
            backend = inner.name(),
            max_concurrent_connects = width,
            "connection attempts paced"
        );
        Self {
            inner,
            gate: Arc::new(Semaphore::new(width)),
            metrics,
        }
    }
}

/// A place in the gate, given back once (the first event, or the close).
struct Place {
    /// The gate.
    gate: Arc<Semaphore>,
    /// Given back already.
    released: AtomicBool,
    /// Counts in-flight attempts.
    metrics: Arc<Metrics>,
}

impl Place {
    fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.gate.add_permits(1);
            self.metrics.connect_in_flight(-1);
        }
    }
}

/// Where a paced attempt is.
enum Slot {
    /// Waiting for a place.
    Waiting,
    /// Through the gate: the real connection, and its place.
    Open(Box<dyn Connection>, Arc<Place>),
    /// Closed by the session.
    Closed,
}

/// A connection whose attempt may still wait at the gate.
struct PacedConnection {
    /// The attempt.
    slot: Arc<Mutex<Slot>>,
    /// Woken when the attempt leaves `Waiting`.
    settled: Arc<Notify>,
    /// The task waiting at the gate.
    waiting: AbortHandle,
}

impl Backend for Paced {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn has_credentials(&self, session: &SessionId) -> bool {
        self.inner.has_credentials(session)
    }

    fn repair(&self, session: &SessionId) -> Option<String> {
        self.inner.repair(session)
    }

    fn connect(&self, session: &SessionId, sink: EventSink, inbox: Inbox) -> Box<dyn Connection> {
        let slot = Arc::new(Mutex::new(Slot::Waiting));
        let (inner, gate, metrics) = (self.inner.clone(), self.gate.clone(), self.metrics.clone());
        let settled = Arc::new(Notify::new());
        let (session, waiting_slot, wake) = (session.clone(), slot.clone(), settled.clone());
        metrics.connect_waiting(1);
        let waiting = tokio::spawn(async move {
            let admitted = gate.clone().acquire_owned().await;
            metrics.connect_waiting(-1);
            let Ok(permit) = admitted else {
                return;
            };
            let mut slot = waiting_slot.lock().await;
            if !matches!(*slot, Slot::Waiting) {
                return; // closed meanwhile: the permit goes back as it drops
            }
            permit.forget();
            metrics.connect_in_flight(1);
            let place = Arc::new(Place {
                gate,
                released: AtomicBool::new(false),
                metrics,
            });
            let first_event = place.clone();
            let paced_sink: EventSink = Arc::new(move |event| {
                first_event.release();
                sink(event);
            });
            *slot = Slot::Open(inner.connect(&session, paced_sink, inbox), place);
            wake.notify_waiters();
        });
        Box::new(PacedConnection {
            slot,
            settled,
            waiting: waiting.abort_handle(),
        })
    }

    fn wipe(&self, session: &SessionId) -> BoxFuture<'static, Result<(), BackendError>> {
        self.inner.wipe(session)
    }

    fn logout_stored(&self, session: &SessionId) -> BoxFuture<'static, Result<(), BackendError>> {
        self.inner.logout_stored(session)
    }
}

impl PacedConnection {
    /// Takes the attempt out of the gate; the real connection if it got one.
    async fn take(&self) -> Option<(Box<dyn Connection>, Arc<Place>)> {
        let mut slot = self.slot.lock().await;
        match std::mem::replace(&mut *slot, Slot::Closed) {
            Slot::Open(conn, place) => Some((conn, place)),
            Slot::Waiting => {
                self.waiting.abort();
                self.settled.notify_waiters();
                None
            }
            Slot::Closed => None,
        }
    }

    /// Runs `call` on the real connection once the attempt is through the gate (the
    /// caller bounds the wait); refused once closed.
    fn when_open<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn Connection) -> BoxFuture<'static, Result<T, BackendError>> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, BackendError>> {
        let (slot, settled) = (self.slot.clone(), self.settled.clone());
        Box::pin(async move {
            loop {
                let notified = settled.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                match &*slot.lock().await {
                    Slot::Open(..) => break,
                    Slot::Closed => return Err(closed()),
                    Slot::Waiting => {}
                }
                notified.await;
            }
            let calling = match &*slot.lock().await {
                Slot::Open(conn, _) => call(conn.as_ref()),
                Slot::Waiting | Slot::Closed => return Err(closed()),
            };
            calling.await
        })
    }
}

impl Drop for PacedConnection {
    fn drop(&mut self) {
        // Dropped without close while still waiting: give up the turn.
        if let Ok(slot) = self.slot.try_lock() {
            if matches!(*slot, Slot::Waiting) {
                self.waiting.abort();
            }
        }
    }
}

/// Closed before (or while) it got through the gate.
fn closed() -> BackendError {
    BackendError::Refused("the connection was closed: retry".into())
}

impl Connection for PacedConnection {
    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Some((conn, place)) = self.take().await {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close()).await;
                place.release();
            }
        })
    }

    fn logout(self: Box<Self>) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(async move {
            let Some((conn, place)) = self.take().await else {
                return Err(closed());
            };
            let result = conn.logout().await;
            place.release();
            result
        })
    }

    fn send(&self, message: Outbound) -> BoxFuture<'static, Result<SentMessage, BackendError>> {
        self.when_open(move |conn| conn.send(message))
    }

    fn request_pairing_code(&self, phone_number: &str) -> BoxFuture<'static, Result<PairingCodeIssued, BackendError>> {
        let phone = phone_number.to_owned();
        self.when_open(move |conn| conn.request_pairing_code(&phone))
    }
}
