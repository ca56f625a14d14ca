//! The unmodified whatsapp-rust client, built as the daemon builds it (SQLite
//! store, tokio websocket transport), against the fake with nothing in between:
//! a message from one of the fake's phones arrives decrypted as the client's
//! `Messages` event, live or in the offline batch; the fake holds it until the
//! client acks it and delivers it again, under the same id, when it did not; a
//! phone's receipt for what the device sent arrives as the client's `Receipt`.
//! Loopback only; every wait is bounded.

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
    fake_whatsapp_client::FakeWhatsappClient, CountPendingRequest, DropConnectionsRequest, ReceiptKind, ScanQrRequest,
    SendMessageRequest, SendReceiptRequest,
};
use tokio::sync::mpsc;
use tonic::transport::Channel;
use whatsapp_rust::{
    anyhow,
    bot::{Bot, BotHandle},
    store::SqliteStore,
    transport::TokioWebSocketTransportFactory,
    types::{
        durability_hook::InboundMessage,
        events::{Event, EventHandler},
        presence::ReceiptType,
    },
    Client, InboundDurabilityHook, Jid,
};

/// The bound on each step (a pairing, a delivery, a reconnect).
const STEP: Duration = Duration::from_secs(30);

/// The version the daemon announces by default.
const WA_VERSION: (u32, u32, u32) = (2, 3000, 1_042_742_319);

/// The account the device is linked to.
const OWNER: &str = "15550001111";

/// A phone that messages it.
const FRIEND: &str = "15550002222";

/// The fake on loopback, and its controls.
struct Fake {
    /// The server.
    running: fake_whatsapp::Running,
    /// Its control API.
    control: FakeWhatsappClient<Channel>,
}

impl Fake {
    async fn start() -> Self {
        let running = fake_whatsapp::Running::start(fake_whatsapp::Options::default())
            .await
            .expect("the fake starts");
        let control = FakeWhatsappClient::connect(running.control_endpoint())
            .await
            .expect("the fake's control api answers");
        Self { running, control }
    }

    /// `from` messages the owner's devices: the message id.
    async fn send(&self, from: &str, text: &str) -> String {
        let request = SendMessageRequest {
            to_phone_number: OWNER.into(),
            from_phone_number: from.into(),
            text: text.into(),
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
    async fn pending(&self) -> u64 {
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
    async fn wait_pending(&self, wanted: u64) {
        bounded(&format!("{wanted} pending at the fake"), async {
            while self.pending().await != wanted {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
}

/// Forwards every event the client dispatches, in order.
struct Forward(mpsc::UnboundedSender<Arc<Event>>);

impl EventHandler for Forward {
    fn handle_event(&self, event: Arc<Event>) {
        let _ = self.0.send(event);
    }
}

/// A durability hook that refuses the first `refusals` batches (a store that
/// could not commit) and reports every message it is handed: (id, offline).
struct Hook {
    /// Batches still to refuse.
    refusals: AtomicUsize,
    /// Where each message it sees is reported.
    seen: mpsc::UnboundedSender<(String, bool)>,
}

#[whatsapp_rust::async_trait]
impl InboundDurabilityHook for Hook {
    async fn on_messages(&self, _client: Arc<Client>, batch: &[InboundMessage]) -> anyhow::Result<()> {
        for message in batch {
            let _ = self.seen.send((message.info.id.clone(), message.info.is_offline));
        }
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
struct Device {
    /// The running bot.
    handle: BotHandle,
    /// Its events, in order.
    events: mpsc::UnboundedReceiver<Arc<Event>>,
}

impl Device {
    /// Runs a client on the store in `dir`, dialing the fake.
    async fn start(fake: &Fake, dir: &Path, hook: Option<Hook>) -> Self {
        let store = SqliteStore::new(&dir.join("whatsapp.db").to_string_lossy())
            .await
            .expect("the store opens");
        let (tx, events) = mpsc::unbounded_channel();
        let mut builder = Bot::builder()
            .with_backend(store)
            .with_version(WA_VERSION)
            .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(fake.running.url()))
            .skip_history_sync()
            .with_event_handler(Forward(tx));
        if let Some(hook) = hook {
            builder = builder.with_inbound_durability_hook(hook);
        }
        let bot = builder.build().await.expect("the client builds");
        Self {
            handle: bot.spawn(),
            events,
        }
    }

    /// Runs a new client and links it to the owner's account by its first code.
    async fn pair(fake: &Fake, dir: &Path, hook: Option<Hook>) -> Self {
        let mut device = Self::start(fake, dir, hook).await;
        let code = device
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
        device.connected().await;
        device
    }

    fn client(&self) -> Arc<Client> {
        self.handle.client()
    }

    /// The next event `pick` takes, skipping the others (bounded).
    async fn next<T>(&mut self, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
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

    async fn connected(&mut self) {
        self.next(|event| matches!(event, Event::Connected(_)).then_some(()))
            .await;
    }

    /// The next `count` inbound messages, across batches.
    async fn messages(&mut self, count: usize) -> Vec<InboundMessage> {
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
    async fn stop(self) {
        bounded("the client stops", self.handle.shutdown()).await;
    }
}

/// Runs `step` within `STEP`, or fails naming `what`.
async fn bounded<T>(what: &str, step: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, step)
        .await
        .unwrap_or_else(|_| panic!("no {what} within {STEP:?}"))
}

fn text(message: &InboundMessage) -> Option<&str> {
    message.message.conversation.as_deref()
}

fn user(phone: &str) -> Jid {
    format!("{phone}@s.whatsapp.net").parse().unwrap()
}

#[tokio::test]
async fn a_message_to_a_connected_device_arrives_decrypted_with_its_sender_and_chat_and_a_second_follows() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::pair(&fake, dir.path(), None).await;

    let id = fake.send(FRIEND, "hello from a phone").await;
    let [first] = <[InboundMessage; 1]>::try_from(device.messages(1).await).ok().unwrap();
    assert_eq!(text(&first), Some("hello from a phone"));
    assert_eq!(first.info.id, id);
    assert_eq!(first.info.source.sender, user(FRIEND));
    assert_eq!(first.info.source.chat, user(FRIEND));
    assert!(!first.info.source.is_from_me);
    assert!(!first.info.is_offline, "a live delivery");
    assert_eq!(first.info.push_name, "Fake Phone");
    // The device acked it: the phone knows the session stands, and the next
    // message goes on it as a `msg`.
    fake.wait_pending(0).await;

    let second_id = fake.send(FRIEND, "and a second one").await;
    let [second] = <[InboundMessage; 1]>::try_from(device.messages(1).await).ok().unwrap();
    assert_eq!(text(&second), Some("and a second one"));
    assert_eq!(second.info.id, second_id);
    assert_eq!(second.info.source.sender, user(FRIEND));
    fake.wait_pending(0).await;
    device.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn messages_sent_while_the_device_is_offline_arrive_in_order_marked_offline_and_are_forgotten_once_acked() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let device = Device::pair(&fake, dir.path(), None).await;
    device.stop().await;

    let texts = ["one", "two", "three"];
    let mut ids = Vec::new();
    for text in texts {
        ids.push(fake.send(FRIEND, text).await);
    }
    ids.push(fake.send("15550003333", "from another phone").await);
    assert_eq!(
        fake.pending().await,
        4,
        "the server holds them while the device is away"
    );

    let mut device = Device::start(&fake, dir.path(), None).await;
    let messages = device.messages(4).await;
    let from_friend: Vec<&InboundMessage> = messages
        .iter()
        .filter(|message| message.info.source.chat == user(FRIEND))
        .collect();
    let got: Vec<_> = from_friend.iter().filter_map(|message| text(message)).collect();
    assert_eq!(got, texts, "one chat's messages in the order the server took them");
    let mut got_ids: Vec<_> = messages.iter().map(|message| message.info.id.clone()).collect();
    got_ids.sort();
    ids.sort();
    assert_eq!(got_ids, ids);
    assert!(
        messages.iter().all(|message| message.info.is_offline),
        "each came in the offline batch"
    );
    fake.wait_pending(0).await;
    device.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn a_delivery_the_device_did_not_ack_comes_again_with_the_same_id_after_a_reconnect() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let hook = Hook {
        refusals: AtomicUsize::new(1),
        seen: seen_tx,
    };
    let mut device = Device::pair(&fake, dir.path(), Some(hook)).await;

    let id = fake.send(FRIEND, "commit me").await;
    let (first, offline) = bounded("the hook's first call", seen.recv()).await.unwrap();
    assert_eq!((first.as_str(), offline), (id.as_str(), false));
    assert_eq!(fake.pending().await, 1, "refused by the hook: not acked, still held");

    let drop = DropConnectionsRequest {
        phone_number: OWNER.into(),
    };
    fake.control.clone().drop_connections(drop).await.unwrap();
    let (again, offline) = bounded("the hook's second call", seen.recv()).await.unwrap();
    assert_eq!(again, id, "the same message, under the same id");
    assert!(offline, "redelivered in the offline batch of the next connection");
    let [message] = <[InboundMessage; 1]>::try_from(device.messages(1).await).ok().unwrap();
    assert_eq!(
        (message.info.id.as_str(), text(&message)),
        (id.as_str(), Some("commit me"))
    );
    fake.wait_pending(0).await;
    device.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn a_phones_receipt_for_a_sent_message_arrives_as_the_clients_receipt_event_with_its_id_and_kind() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::pair(&fake, dir.path(), None).await;
    let sent = bounded("a send", device.client().send_text(user(FRIEND), "did you get this?"))
        .await
        .expect("the device sends");

    for (kind, expected) in [
        (ReceiptKind::Delivered, ReceiptType::Delivered),
        (ReceiptKind::Read, ReceiptType::Read),
        (ReceiptKind::Played, ReceiptType::Played),
    ] {
        let receipt = SendReceiptRequest {
            to_phone_number: OWNER.into(),
            from_phone_number: FRIEND.into(),
            message_ids: vec![sent.message_id.clone()],
            kind: kind as i32,
        };
        fake.control
            .clone()
            .send_receipt(receipt)
            .await
            .expect("the phone sends a receipt");
        let receipt = device
            .next(|event| match event {
                Event::Receipt(receipt) => Some(receipt.clone()),
                _ => None,
            })
            .await;
        assert_eq!(receipt.message_ids, std::slice::from_ref(&sent.message_id));
        assert_eq!(receipt.r#type, expected);
        assert_eq!(receipt.source.chat, user(FRIEND));
        assert_eq!(receipt.source.sender, user(FRIEND));
    }
    device.stop().await;
    fake.running.stop().await;
}
