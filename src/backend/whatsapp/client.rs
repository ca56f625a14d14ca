//! Building one whatsapp-rust client on a session's credential store: the pinned
//! WhatsApp Web version (no network fetch), the configured websocket URL, the
//! session's tracing span on every task, and an inline event handler that forwards the events the session cares about, in
//! arrival order, to the connection task.

use std::sync::{atomic::Ordering, Arc};

use tokio::sync::mpsc;
use tracing::Span;
use whatsapp_rust::{
    bot::Bot,
    store::SqliteStore,
    transport::TokioWebSocketTransportFactory,
    types::events::{Event, EventHandler, EventInterest, EventKind},
    Client,
};

use super::{events::OwnDevice, runtime::SessionRuntime, store::CredentialFiles};
use crate::config::WhatsappUrl;

/// How a client reaches WhatsApp; cheap to clone.
#[derive(Debug, Clone)]
pub struct Dial {
    /// The WhatsApp Web version the client announces.
    pub version: (u32, u32, u32),
    /// The websocket it dials.
    pub url: WhatsappUrl,
}

/// The events a connection translates; the rest (messages, presence...) are not
/// even queued.
const FORWARDED: &[EventKind] = &[
    EventKind::PairingQrCode,
    EventKind::PairingQrCodesExhausted,
    EventKind::PairSuccess,
    EventKind::PairError,
    EventKind::Connected,
    EventKind::Disconnected,
    EventKind::LoggedOut,
    EventKind::StreamReplaced,
    EventKind::ClientOutdated,
    EventKind::TemporaryBan,
    EventKind::ConnectFailure,
    EventKind::StreamError,
];

/// A built client, not yet running.
pub struct Built {
    /// Runs the client (`spawn`).
    pub bot: Bot,
    /// The client, shared with the connection handle.
    pub client: Arc<Client>,
    /// The forwarded events, in the order the library dispatched them.
    pub events: mpsc::UnboundedReceiver<Arc<Event>>,
}

/// Runs on the library's dispatch path: only queues, never blocks.
struct Forwarder {
    /// Where events go.
    tx: mpsc::UnboundedSender<Arc<Event>>,
}

impl EventHandler for Forwarder {
    fn handle_event(&self, event: Arc<Event>) {
        let _ = self.tx.send(event);
    }

    fn interest(&self) -> EventInterest {
        EventInterest::of(FORWARDED)
    }
}

/// Opens the store (creating it private) and builds a client with auto-reconnect
/// off: the session actor decides every reconnect. Errors are causes in words. A
/// build that does not verify the server certificate refuses a non-loopback URL
/// here too, whoever configured it.
pub async fn build(files: &CredentialFiles, dial: &Dial, span: Span) -> Result<Built, String> {
    dial.url.allowed()?;
    let prepared = files.clone();
    tokio::task::spawn_blocking(move || prepared.prepare())
        .await
        .map_err(|e| format!("could not prepare the credential store: {e}"))?
        .map_err(|e| format!("could not prepare the credential store: {e}"))?;
    let db_path = files.db_path();
    let store = SqliteStore::new(&db_path.to_string_lossy())
        .await
        .map_err(|e| format!("could not open the credential store {}: {e}", db_path.display()))?;
    let (tx, events) = mpsc::unbounded_channel();
    let bot = Bot::builder()
        .with_backend(store)
        .with_runtime(SessionRuntime::new(span))
        .with_version(dial.version)
        .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(dial.url.as_str()))
        .skip_history_sync()
        .with_event_handler(Forwarder { tx })
        .build()
        .await
        .map_err(|e| format!("could not build the whatsapp client: {e}"))?;
    let client = bot.client();
    client.enable_auto_reconnect.store(false, Ordering::SeqCst);
    Ok(Built { bot, client, events })
}

/// Who the client is, from its device store.
pub fn own_device(client: &Client) -> OwnDevice {
    OwnDevice {
        jid: client.pn(),
        push_name: client.push_name(),
    }
}
