//! The fake on loopback with its control API, and the unmodified whatsapp-rust
//! client built as the daemon builds it (SQLite store, tokio websocket transport)
//! dialing it, with its events in order and an optional durability hook that can
//! refuse or hold commits. Every wait is bounded.
#![allow(dead_code)]

use std::{
    future::Future,
    path::Path,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use fake_whatsapp::proto::{
    fake_whatsapp_client::FakeWhatsappClient, CountPendingRequest, ScanQrRequest, SendMessageRequest,
};
use tokio::sync::{mpsc, watch};
use tonic::transport::Channel;
use whatsapp_rust::{
    anyhow,
    bot::{Bot, BotHandle},
    store::SqliteStore,
    transport::TokioWebSocketTransportFactory,
    types::{
        durability_hook::InboundMessage,
        events::{Event, EventHandler},
    },
    Client, InboundDurabilityHook, Jid,
};

/// The bound on each step (a pairing, a delivery, a reconnect).
pub const STEP: Duration = Duration::from_secs(30);

/// The version the daemon announces by default.
pub const WA_VERSION: (u32, u32, u32) = (2, 3000, 1_042_742_319);

/// The account the device is linked to.
pub const OWNER: &str = "15550001111";

/// A phone that messages it.
pub const FRIEND: &str = "15550002222";

/// The fake on loopback, and its controls.
pub struct Fake {
    /// The server.
    pub running: fake_whatsapp::Running,
    /// Its control API.
    pub control: FakeWhatsappClient<Channel>,
}

impl Fake {
    pub async fn start() -> Self {
        let running = fake_whatsapp::Running::start(fake_whatsapp::Options::default())
            .await
            .expect("the fake starts");
        let control = FakeWhatsappClient::connect(running.control_endpoint())
            .await
            .expect("the fake's control api answers");
        Self { running, control }
    }

    /// `from` messages the owner's devices: the message id.
    pub async fn send(&self, from: &str, text: &str) -> String {
        let request = SendMessageRequest {
            to_phone_number: OWNER.into(),
            from_phone_number: from.into(),
            text: text.into(),
            ..Default::default()
        };
        let sent = self
            .control
            .clone()
            .send_message(request)
            .await
            .expect("the fake takes the message");
        sent.into_inner().message_id
    }

    /// Messages the fake holds for the owner.
    pub async fn pending(&self) -> u64 {
        let request = CountPendingRequest {
            phone_number: OWNER.into(),
        };
        self.control
            .clone()
            .count_pending(request)
            .await
            .unwrap()
            .into_inner()
            .pending
    }

    /// Waits (bounded) until the fake holds `wanted` messages for the owner.
    pub async fn wait_pending(&self, wanted: u64) {
        bounded(&format!("{wanted} pending at the fake"), async {
            while self.pending().await != wanted {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
}

/// Forwards every event the client dispatches, in order.
pub struct Forward(mpsc::UnboundedSender<Arc<Event>>);

impl EventHandler for Forward {
    fn handle_event(&self, event: Arc<Event>) {
        let _ = self.0.send(event);
    }
}

/// A durability hook that reports every message it is handed (id, offline),
/// holds each commit until its gate is open, and refuses the first `refusals`
/// batches (a store that could not commit).
pub struct Hook {
    /// Batches still to refuse.
    refusals: AtomicUsize,
    /// Commits wait until this reads true.
    gate: watch::Receiver<bool>,
    /// Where each message it sees is reported.
    seen: mpsc::UnboundedSender<(String, bool)>,
}

/// A hook's controls: what it saw, and its gate.
pub struct HookProbe {
    /// (id, offline) of each message handed to it, in order.
    pub seen: mpsc::UnboundedReceiver<(String, bool)>,
    /// Opens (true) or closes the gate.
    pub gate: watch::Sender<bool>,
}

impl Hook {
    /// A hook that refuses its first `refusals` batches, with its gate `open`.
    pub fn new(refusals: usize, open: bool) -> (Self, HookProbe) {
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let (gate_tx, gate) = watch::channel(open);
        let hook = Self {
            refusals: AtomicUsize::new(refusals),
            gate,
            seen: seen_tx,
        };
        (hook, HookProbe { seen, gate: gate_tx })
    }
}

#[whatsapp_rust::async_trait]
impl InboundDurabilityHook for Hook {
    async fn on_messages(&self, _client: Arc<Client>, batch: &[InboundMessage]) -> anyhow::Result<()> {
        for message in batch {
            let _ = self.seen.send((message.info.id.clone(), message.info.is_offline));
        }
        let mut gate = self.gate.clone();
        let _ = gate.wait_for(|open| *open).await;
        let refuse = self
            .refusals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refuse {
            anyhow::bail!("refused (test)");
        }
        Ok(())
    }
}

/// A running client and what it dispatched.
pub struct Device {
    /// The running bot.
    pub handle: BotHandle,
    /// Its events, in order.
    pub events: mpsc::UnboundedReceiver<Arc<Event>>,
}

impl Device {
    /// Runs a client on the store in `dir`, dialing the fake; it reconnects by
    /// itself when its connection drops.
    pub async fn start(fake: &Fake, dir: &Path, hook: Option<Hook>) -> Self {
        Self::start_with(fake, dir, hook, true).await
    }

    /// Runs a client on the store in `dir`, dialing the fake once: it does not
    /// reconnect by itself.
    pub async fn start_once(fake: &Fake, dir: &Path) -> Self {
        Self::start_with(fake, dir, None, false).await
    }

    async fn start_with(fake: &Fake, dir: &Path, hook: Option<Hook>, reconnect: bool) -> Self {
        let store = SqliteStore::new(&dir.join("whatsapp.db").to_string_lossy())
            .await
            .expect("the store opens");
        let (tx, events) = mpsc::unbounded_channel();
        let mut builder = Bot::builder()
            .with_backend(store)
            .with_version(WA_VERSION)
            .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(fake.running.url()))
            .with_http_client(cdn_client())
            .skip_history_sync()
            .with_event_handler(Forward(tx));
        if let Some(hook) = hook {
            builder = builder.with_inbound_durability_hook(hook);
        }
        let bot = builder.build().await.expect("the client builds");
        bot.client().enable_auto_reconnect.store(reconnect, Ordering::SeqCst);
        Self {
            handle: bot.spawn(),
            events,
        }
    }

    /// Links a new client to the owner's account by its first code and, as the
    /// daemon does, runs a fresh client on the new credentials after the 515.
    pub async fn pair(fake: &Fake, dir: &Path, hook: Option<Hook>) -> Self {
        let mut pairing = Self::start_with(fake, dir, None, false).await;
        let code = pairing
            .next(|event| match event {
                Event::PairingQrCode(qr) => Some(qr.code.clone()),
                _ => None,
            })
            .await;
        let scan = ScanQrRequest {
            code,
            phone_number: OWNER.into(),
        };
        fake.control
            .clone()
            .scan_qr(scan)
            .await
            .expect("the phone scans the code");
        pairing
            .next(|event| matches!(event, Event::PairSuccess(_)).then_some(()))
            .await;
        bounded("the end of the pairing connection (515)", pairing.handle).await;
        let mut device = Self::start(fake, dir, hook).await;
        device.connected().await;
        device
    }

    pub fn client(&self) -> Arc<Client> {
        self.handle.client()
    }

    /// The next event `pick` takes, skipping the others (bounded).
    pub async fn next<T>(&mut self, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
        bounded("an event", async {
            loop {
                let event = self.events.recv().await.expect("the client goes on");
                if let Some(picked) = pick(&event) {
                    return picked;
                }
            }
        })
        .await
    }

    pub async fn connected(&mut self) {
        self.next(|event| matches!(event, Event::Connected(_)).then_some(()))
            .await;
    }

    /// The next `count` inbound messages, across batches.
    pub async fn messages(&mut self, count: usize) -> Vec<InboundMessage> {
        let mut messages = Vec::new();
        while messages.len() < count {
            let batch = self
                .next(|event| event.as_messages().map(|batch| batch.messages.clone()))
                .await;
            messages.extend(batch.iter().cloned());
        }
        messages
    }

    /// Stops the client as the daemon does on shutdown (no logout).
    pub async fn stop(self) {
        bounded("the client stops", self.handle.shutdown()).await;
    }
}

/// whatsapp-rust's media client trusting only the fake's CA (as the daemon's
/// fake-whatsapp build does).
pub fn cdn_client() -> whatsapp_rust::http::UreqHttpClient {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let ca = Certificate::from_pem(fake_whatsapp::CA_PEM.as_bytes()).expect("the fake's ca parses");
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(vec![ca])))
        .build();
    let agent = ureq::Agent::config_builder().tls_config(tls).build().new_agent();
    whatsapp_rust::http::UreqHttpClient::with_agent(agent)
}

/// Runs `step` within `STEP`, or fails naming `what`.
pub async fn bounded<T>(what: &str, step: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, step)
        .await
        .unwrap_or_else(|_| panic!("no {what} within {STEP:?}"))
}

pub fn text(message: &InboundMessage) -> Option<&str> {
    message.message.conversation.as_deref()
}

pub fn user(phone: &str) -> Jid {
    format!("{phone}@s.whatsapp.net").parse().unwrap()
}
