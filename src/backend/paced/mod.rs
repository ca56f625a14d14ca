//! Paced connects: a `Backend` wrapper that bounds the connection attempts
//! (handshakes) in flight at once across all sessions, both backends, with two
//! gates. A session with stored credentials (a restore, a reconnect, the 515
//! restart after pairing) passes `--max-concurrent-connects`; a session without
//! (a pairing connection for QR codes: CreateSession, a refresh) passes its own,
//! wider `--max-concurrent-pairings`. So a restore or a mass drop never opens
//! thousands of handshakes at once (WhatsApp rate-limits such storms), a burst of
//! creates does not wait behind a restore, and a restore does not wait behind a
//! burst of creates.
//!
//! An attempt waits its turn in order (tokio's semaphore is fair) and holds its
//! place until its connection reports its first event (a QR code, Connected, a
//! failure: the handshake is over) or is closed or dropped. Meanwhile the session
//! shows CONNECTING / RECONNECTING as it would anyway.

mod connection;
mod gate;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use self::{connection::PacedConnection, gate::Gate};
use super::{Backend, BackendError, BoxFuture, Connection, EventSink};
use crate::{domain::SessionId, events::Inbox, metrics::Metrics};

/// How many attempts each gate lets through at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Widths {
    /// Sessions with stored credentials (`--max-concurrent-connects`).
    pub connects: usize,
    /// Pairing connections (`--max-concurrent-pairings`).
    pub pairings: usize,
}

/// A backend whose connection attempts pass a gate of bounded width.
pub struct Paced {
    /// The backend that connects once an attempt is admitted; also says which
    /// gate an attempt takes (stored credentials or not).
    inner: Arc<dyn Backend>,
    /// The gate of sessions with stored credentials.
    connects: Gate,
    /// The gate of pairing connections.
    pairings: Gate,
}

impl Paced {
    /// Paces `inner` to `widths` attempts in flight at once, counted on `metrics`.
    pub fn new(inner: Arc<dyn Backend>, widths: Widths, metrics: Arc<Metrics>) -> Self {
        tracing::info!(
            backend = inner.name(),
            max_concurrent_connects = widths.connects,
            max_concurrent_pairings = widths.pairings,
            "connection attempts paced"
        );
        Self {
            inner,
            connects: Gate::new(widths.connects, metrics.clone(), |m| &m.connects),
            pairings: Gate::new(widths.pairings, metrics, |m| &m.pairing_connects),
        }
    }

    /// Queues an attempt at the gate its session's credentials choose.
    fn start(&self, session: &SessionId, sink: EventSink, inbox: Inbox) -> PacedConnection {
        let gate = if self.inner.has_credentials(session) {
            &self.connects
        } else {
            &self.pairings
        };
        PacedConnection::start(self.inner.clone(), gate.queue(), session.clone(), sink, inbox)
    }
}

impl Backend for Paced {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn files_per_session(&self) -> u64 {
        self.inner.files_per_session()
    }

    fn has_credentials(&self, session: &SessionId) -> bool {
        self.inner.has_credentials(session)
    }

    fn repair(&self, session: &SessionId) -> Option<String> {
        self.inner.repair(session)
    }

    fn connect(&self, session: &SessionId, sink: EventSink, inbox: Inbox) -> Box<dyn Connection> {
        Box::new(self.start(session, sink, inbox))
    }

    fn wipe(&self, session: &SessionId) -> BoxFuture<'static, Result<(), BackendError>> {
        self.inner.wipe(session)
    }

    fn logout_stored(&self, session: &SessionId, inbox: Inbox) -> BoxFuture<'static, Result<(), BackendError>> {
        self.inner.logout_stored(session, inbox)
    }
}
