//! Building one whatsapp-rust client on a session's credential store: the WhatsApp
//! Web version in use now (pinned or resolved in the background; the client never
//! fetches it itself), the configured websocket URL, the
//! session's tracing span on every task, an inline event handler that forwards the
//! events the session cares about, in arrival order, to the connection task, and the
//! durability hook that commits inbound messages to the session's inbox before they
//! are acked, and the handler that logs undecryptable messages' placeholders.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use tokio::sync::mpsc;
use tracing::Span;
use whatsapp_rust::{
    bot::Bot,
    transport::TokioWebSocketTransportFactory,
    types::events::{Event, EventHandler, EventInterest, EventKind},
    Client,
};

use super::{
    events::OwnDevice, inbound::InboxHook, recovered::Placeholders, runtime::SessionRuntime, store::CredentialFiles,
    version::WaVersions,
};
use crate::config::WhatsappUrl;

/// How a client reaches WhatsApp, and how long a rate limit it meets lasts;
/// cheap to clone.
#[derive(Debug, Clone)]
pub struct Dial {
    /// The WhatsApp Web version the client announces, read at each build.
    pub versions: WaVersions,
    /// The websocket it dials; also where the reachability probe looks.
    pub url: WhatsappUrl,
    /// How long a stream error 429 shows as a rate limit (`--rate-limit-pause`).
    pub rate_limit_pause: Duration,
}

/// The events a connection translates or logs (receipts, WhatsApp's acks of what
/// the session sent, the timelock it pushes); the rest (presence...) are not even queued. Messages
/// are not events here: they reach the inbox through the durability hook.
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
    EventKind::Receipt,
    EventKind::ServerAck,
    EventKind::MexNotification,
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
    /// The connection task's queue: unbounded, so the library's dispatch never waits.
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

/// Opens the store (creating it private, see `store`) and builds a client with auto-reconnect
/// off: the session actor decides every reconnect. Inbound messages are acked to
/// WhatsApp only once `hook` committed them to the session's inbox; undecryptable
/// ones leave a placeholder in the same inbox (see `recovered`). Errors are
/// causes in words. A build that does not verify the server certificate refuses a
/// non-loopback URL here too, whoever configured it.
pub async fn build(files: &CredentialFiles, dial: &Dial, span: Span, hook: InboxHook) -> Result<Built, String> {
    dial.url.allowed()?;
    let store = files.open().await?;
    let (tx, events) = mpsc::unbounded_channel();
    let placeholders = Placeholders {
        inbox: hook.inbox().clone(),
    };
    let version = dial.versions.current();
    tracing::debug!(version = ?version.version, source = version.source.as_str(), "whatsapp web version announced");
    let builder = Bot::builder()
        .with_backend(store)
        .with_runtime(SessionRuntime::new(span))
        .with_version(version.version)
        .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(dial.url.as_str()))
        .skip_history_sync()
        .with_event_handler(Forwarder { tx })
        .with_event_handler(placeholders)
        .with_inbound_durability_hook(hook);
    // A fake-whatsapp build fetches media only from the fake's cdn (its own CA, loopback).
    #[cfg(feature = "fake-whatsapp")]
    let builder = builder.with_http_client(super::http::LoopbackOnly::new());
    let bot = builder
        .build()
        .await
        .map_err(|e| format!("could not build the whatsapp client: {e}"))?;
    let client = bot.client();
    client.enable_auto_reconnect.store(false, Ordering::SeqCst);
    Ok(Built { bot, client, events })
}

/// The account's JIDs (phone number and LID), once paired.
pub fn own_jids(client: &Client) -> Vec<whatsapp_rust::Jid> {
    client.pn().into_iter().chain(client.lid()).collect()
}

/// Who the client is, from its device store.
pub fn own_device(client: &Client) -> OwnDevice {
    OwnDevice {
        jid: client.pn(),
        push_name: client.push_name(),
    }
}
