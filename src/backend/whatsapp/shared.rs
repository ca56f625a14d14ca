//! What a connection's handle and its task share: whether it is closing (then
//! nothing is reported), the client once built, the session's sink and the
//! WhatsApp Web versions.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use tokio::{
    sync::{watch, Notify},
    time::{timeout_at, Instant},
};
use whatsapp_rust::Client;

use super::version::WaVersions;
use crate::backend::{BackendError, BackendEvent, EventSink};

/// What the handle and the task share.
pub struct Shared {
    /// Set once `close` or `logout` begins: nothing is reported after it.
    pub(super) closed: AtomicBool,
    /// Wakes the task while it is still building the client.
    pub(super) stop: Notify,
    /// The client, once built.
    pub(super) client: watch::Sender<Option<Arc<Client>>>,
    /// The session actor's sink: every event in order, until `closed` is set.
    sink: EventSink,
    /// The version clients announce, resolved again after a 405 unless pinned.
    pub(super) versions: WaVersions,
}

impl Shared {
    /// Open, no client yet, reporting to `sink`.
    pub fn new(sink: EventSink, versions: WaVersions) -> Self {
        let (client, _) = watch::channel(None);
        Self {
            closed: AtomicBool::new(false),
            stop: Notify::new(),
            client,
            sink,
            versions,
        }
    }

    /// Reports `event` unless the connection is closing.
    pub fn report(&self, event: BackendEvent) {
        if !self.closed.load(Ordering::SeqCst) {
            (self.sink)(event);
        }
    }

    /// Whether `close` or `logout` began.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Resolves once the connection let its client go (closed, logged out or
    /// dropped); never while the client is still in use.
    pub async fn client_gone(&self) {
        let mut built = self.client.subscribe();
        let _ = built.wait_for(Option::is_none).await;
    }

    /// The client, waiting for it to be built until `deadline`.
    pub async fn client(&self, deadline: Instant) -> Result<Arc<Client>, BackendError> {
        let mut built = self.client.subscribe();
        let client = timeout_at(deadline, built.wait_for(Option::is_some))
            .await
            .map_err(|_| BackendError::Unreachable("the whatsapp client did not start in time".into()))?
            .map_err(|_| BackendError::Refused("the connection is closed".into()))?
            .clone();
        client.ok_or_else(|| BackendError::Refused("the connection is closed".into()))
    }
}
