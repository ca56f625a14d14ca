//! The session's side of a paced attempt: a connection that may still be waiting
//! for its place at the gate. Calls wait (within their own bound) until it is
//! through; closing it gives up its turn, or closes the real connection and gives
//! its place back. Dropping it without `close` does the same as far as a drop can:
//! the wait is abandoned, and an attempt that got through is dropped with it (its
//! place goes back, and the real connection closes by its own drop).

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Weak},
    time::Duration,
};

use tokio::{
    sync::{Mutex, Notify},
    task::AbortHandle,
};

use super::gate::{Place, Queued};
use crate::{
    backend::{
        media::{ChunkSink, DownloadError, Received, Upload},
        Backend, BackendError, BoxFuture, Connection, EventSink, MediaBlob, MediaTransfer, Outbound, PairingCodeIssued,
        SentMessage, CLOSE_TIMEOUT, LOOKUP_BOUND, PAIRING_CODE_BOUND, SEND_BOUND,
    },
    domain::SessionId,
    events::Inbox,
    media::{seal::Sealer, MediaKind},
};

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
pub(super) struct PacedConnection {
    /// The attempt; the task at the gate holds it only weakly, so once the owner
    /// drops this (and no call is under way) nothing is opened for nobody.
    slot: Arc<Mutex<Slot>>,
    /// Woken when the attempt leaves `Waiting`.
    settled: Arc<Notify>,
    /// The task waiting at the gate.
    waiting: AbortHandle,
}

impl PacedConnection {
    /// Queues the attempt (already counted at its gate) and returns at once; once
    /// admitted, `inner` connects `session`, and its first event gives the place back.
    pub(super) fn start(
        inner: Arc<dyn Backend>,
        queued: Queued,
        session: SessionId,
        sink: EventSink,
        inbox: Inbox,
    ) -> Self {
        let slot = Arc::new(Mutex::new(Slot::Waiting));
        let settled = Arc::new(Notify::new());
        let (owner, wake) = (Arc::downgrade(&slot), settled.clone());
        let waiting = tokio::spawn(open_when_admitted(inner, queued, owner, wake, session, sink, inbox));
        Self {
            slot,
            settled,
            waiting: waiting.abort_handle(),
        }
    }

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

    /// Runs `call` on the real connection once the attempt is through the gate,
    /// all of it within `bound`; refused once closed.
    fn when_open<T: Send + 'static>(
        &self,
        bound: Duration,
        call: impl FnOnce(&dyn Connection) -> BoxFuture<'static, Result<T, BackendError>> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, BackendError>> {
        let (slot, settled) = (self.slot.clone(), self.settled.clone());
        let calling = async move {
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
        };
        Box::pin(async move {
            tokio::time::timeout(bound, calling).await.unwrap_or_else(|_| {
                Err(BackendError::Unreachable(
                    "whatsapp did not answer in time (the connection may still be waiting for its turn)".into(),
                ))
            })
        })
    }
}

/// The task at the gate: waits for a place, then opens the real connection unless
/// the attempt was closed or dropped meanwhile (then the place goes back unused).
async fn open_when_admitted(
    inner: Arc<dyn Backend>,
    queued: Queued,
    owner: Weak<Mutex<Slot>>,
    wake: Arc<Notify>,
    session: SessionId,
    sink: EventSink,
    inbox: Inbox,
) {
    let admitted = queued.admitted().await;
    let Some(slot) = owner.upgrade() else {
        return; // dropped while waiting
    };
    let mut slot = slot.lock().await;
    if !matches!(*slot, Slot::Waiting) {
        return; // closed meanwhile
    }
    let place = Arc::new(admitted.take_place());
    // Weak: the slot owns the place, so dropping the slot gives it back even while
    // the real connection (or a test) still holds the sink.
    let first_event = Arc::downgrade(&place);
    let paced_sink: EventSink = Arc::new(move |event| {
        if let Some(place) = first_event.upgrade() {
            place.release();
        }
        sink(event);
    });
    *slot = Slot::Open(inner.connect(&session, paced_sink, inbox), place);
    wake.notify_waiters();
}

impl Drop for PacedConnection {
    fn drop(&mut self) {
        // Dropped without close: a turn still awaited is given up at once (aborting a
        // task that already finished does nothing). An attempt already through the
        // gate goes with the slot: its place back, the real connection closed by
        // its own drop.
        self.waiting.abort();
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
        self.when_open(SEND_BOUND, move |conn| conn.send(message))
    }

    fn registered(&self, chats: Vec<String>) -> BoxFuture<'static, Result<HashMap<String, bool>, BackendError>> {
        self.when_open(LOOKUP_BOUND, move |conn| conn.registered(chats))
    }

    fn request_pairing_code(&self, phone_number: &str) -> BoxFuture<'static, Result<PairingCodeIssued, BackendError>> {
        let phone = phone_number.to_owned();
        self.when_open(PAIRING_CODE_BOUND, move |conn| conn.request_pairing_code(&phone))
    }

    fn media(&self) -> Option<Arc<dyn MediaTransfer>> {
        Some(Arc::new(PacedMedia(self.slot.clone())))
    }
}

/// The real connection's file transfers, once the attempt is through (the session
/// lends them only when CONNECTED, so it is).
struct PacedMedia(Arc<Mutex<Slot>>);

impl PacedMedia {
    fn with<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn MediaTransfer) -> BoxFuture<'static, Result<T, BackendError>> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, BackendError>> {
        let slot = self.0.clone();
        Box::pin(async move {
            let media = match &*slot.lock().await {
                Slot::Open(conn, _) => conn.media(),
                Slot::Waiting | Slot::Closed => return Err(closed()),
            };
            let media =
                media.ok_or_else(|| BackendError::Refused("this backend does not transfer media files".into()))?;
            call(media.as_ref()).await
        })
    }
}

impl MediaTransfer for PacedMedia {
    fn sealer(&self, kind: MediaKind) -> BoxFuture<'static, Result<Box<dyn Sealer>, BackendError>> {
        self.with(move |media| media.sealer(kind))
    }

    fn upload(&self, file: Upload) -> BoxFuture<'static, Result<MediaBlob, BackendError>> {
        self.with(move |media| media.upload(file))
    }

    fn download(
        &self,
        blob: MediaBlob,
        scratch: PathBuf,
        sink: ChunkSink,
    ) -> BoxFuture<'static, Result<(), DownloadError>> {
        let slot = self.0.clone();
        Box::pin(async move {
            let media = match &*slot.lock().await {
                Slot::Open(conn, _) => conn.media(),
                Slot::Waiting | Slot::Closed => return Err(DownloadError::Failed(closed())),
            };
            let media =
                media.ok_or_else(|| BackendError::Refused("this backend does not transfer media files".into()))?;
            media.download(blob, scratch, sink).await
        })
    }

    fn reupload(
        &self,
        message: Received,
        blob: MediaBlob,
        bound: Duration,
    ) -> BoxFuture<'static, Result<MediaBlob, BackendError>> {
        self.with(move |media| media.reupload(message, blob, bound))
    }
}

#[cfg(test)]
impl PacedConnection {
    /// Holds the attempt's lock until the returned guard drops, as the task at the
    /// gate can at the very moment the owner drops it (on another worker thread).
    pub(super) async fn hold_slot(&self) -> impl Send {
        self.slot.clone().lock_owned().await
    }
}
