//! What phones send linked devices, on the world's side: a phone's message or
//! receipt is held for each linked device of the recipient until that device
//! acks it (the server keeps the queue, not the device); a device's connection
//! takes what it has not sent yet, each message sealed by its sending phone (a
//! Signal session opened from the device's published keys) on first delivery; a
//! device acks, publishes keys, or asks for a resend (a retry receipt).

use buffa::Message as _;
use tracing::{debug, warn};
use wacore::messages::MessageUtils;
use wacore_binary::Node;
use wacore_libsignal::protocol::ProtocolAddress;
use waproto::whatsapp as wa;

use super::{require_phone, Inner, Order, World, PUSH_NAME};
use crate::{
    device_keys::DeviceKeys,
    inbox::{Class, Item, Payload, Unsent},
    stanza::{self, attr},
    vocab::{ConnId, DeviceAddr, Refusal},
};

/// A receipt a recipient's phone sends for messages a device sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    /// The message reached the phone.
    Delivered,
    /// The phone's user read it.
    Read,
    /// The phone's user played it (voice and video notes).
    Played,
}

impl ReceiptKind {
    /// The receipt's `type` (none for delivered).
    fn wire(self) -> Option<&'static str> {
        match self {
            Self::Delivered => None,
            Self::Read => Some("read"),
            Self::Played => Some("played"),
        }
    }
}

/// How many times a sender resends one message to a device that cannot decrypt it.
const MAX_RESENDS: u32 = 5;

impl World {
    /// `from`'s phone sends `text` to `to`'s linked devices: held for each until
    /// it acks, delivered at once to those connected. Returns the message id (`id`,
    /// or a new one when empty).
    pub async fn send_message(&self, to: &str, from: &str, text: &str, id: &str) -> Result<String, Refusal> {
        self.queue_message(to, from, text, id, Payload::Text).await
    }

    /// Whether `from`'s phone may message `to`'s linked devices (they are
    /// phone numbers, not the same one, and `to` has a linked device).
    pub async fn check_recipient(&self, to: &str, from: &str) -> Result<(), Refusal> {
        sender_and_recipient(to, from)?;
        self.inner.lock().await.linked_devices(to).map(|_| ())
    }

    /// `from`'s phone sends `message` (media) under `id` (from
    /// [`new_message_id`]) to `to`'s linked devices, held and delivered like a
    /// text.
    pub async fn send_media(&self, to: &str, from: &str, id: &str, message: &wa::Message) -> Result<String, Refusal> {
        let payload = Payload::Message(message.encode_to_vec());
        self.queue_message(to, from, "(media)", id, payload).await
    }

    /// Queues a message of `from`'s phone for `to`'s linked devices, sealed from
    /// `payload`.
    pub(super) async fn queue_message(
        &self,
        to: &str,
        from: &str,
        text: &str,
        id: &str,
        payload: Payload,
    ) -> Result<String, Refusal> {
        sender_and_recipient(to, from)?;
        if text.is_empty() {
            return Err(Refusal::Invalid("a message needs a text".into()));
        }
        let id = match id {
            "" => message_id(),
            id => id.to_owned(),
        };
        let mut inner = self.inner.lock().await;
        let devices = inner.linked_devices(to)?;
        // Any number is a WhatsApp user here: the sender gets its keys now.
        inner.account(from);
        let item = Item {
            seq: 0,
            class: Class::Message,
            id: id.clone(),
            from: from.to_owned(),
            text: text.to_owned(),
            t: stanza::now(),
            stanza: None,
            payload,
        };
        for addr in &devices {
            inner.inbox.push(addr, item.clone());
        }
        inner.wake(&devices);
        Ok(id)
    }

    /// `from`'s phone sends a receipt of `kind` for `ids` (messages `to`'s
    /// devices sent it) to `to`'s linked devices, held like a message.
    pub async fn send_receipt(&self, to: &str, from: &str, ids: &[String], kind: ReceiptKind) -> Result<(), Refusal> {
        sender_and_recipient(to, from)?;
        if ids.is_empty() || ids.iter().any(String::is_empty) {
            return Err(Refusal::Invalid("a receipt names one or more message ids".into()));
        }
        let mut inner = self.inner.lock().await;
        let devices = inner.linked_devices(to)?;
        let item = Item {
            seq: 0,
            class: Class::Receipt,
            id: ids[0].clone(),
            from: from.to_owned(),
            text: String::new(),
            t: stanza::now(),
            stanza: Some(stanza::relayed_receipt(&user_jid(from), ids, kind.wire())),
            payload: Payload::Text,
        };
        for addr in &devices {
            inner.inbox.push(addr, item.clone());
        }
        inner.wake(&devices);
        Ok(())
    }

    /// What connection `conn` of device `addr` did not send yet, in the server's
    /// order, each message sealed by its sender on its first delivery. Stops
    /// before a message that cannot be sealed: it and what follows wait.
    pub async fn take_unsent(&self, conn: ConnId, addr: &DeviceAddr) -> Vec<Node> {
        let mut inner = self.inner.lock().await;
        let Inner { accounts, inbox, .. } = &mut *inner;
        let Unsent { mut keys, items } = inbox.unsent_mut(addr, conn);
        let device = signal_address(addr);
        let mut taken = Vec::with_capacity(items.len());
        let mut last = None;
        for item in items {
            if item.stanza.is_none() {
                let Some(sender) = accounts.get_mut(&item.from) else {
                    warn!(id = %item.id, from = %item.from, "a message from an unknown phone; holding it");
                    break;
                };
                let bundle = || match keys.as_deref_mut() {
                    Some(keys) => keys.take_bundle(addr.device),
                    None => Err("the device published no keys".into()),
                };
                let sealed = match &item.payload {
                    Payload::Text => sender.signal.encrypt(&device, bundle, &plaintext(&item.text)).await,
                    Payload::Peer { message, .. } | Payload::Message(message) => {
                        let padded = MessageUtils::pad_message_v2(message.clone());
                        sender.signal.encrypt(&device, bundle, &padded).await
                    }
                    Payload::Undecryptable => undecryptable(),
                };
                match sealed {
                    Ok((kind, body)) => {
                        let from = match &item.payload {
                            Payload::Peer { from, .. } => from.clone(),
                            _ => user_jid(&item.from),
                        };
                        let mut node = stanza::relayed_message(&from, &item.id, item.t, PUSH_NAME, kind, body);
                        if matches!(item.payload, Payload::Peer { .. }) {
                            node.attrs.insert("category", "peer");
                        }
                        item.stanza = Some(node);
                    }
                    Err(why) => {
                        warn!(device = %addr.jid(), id = %item.id, %why, "cannot seal a message yet; it and what follows wait");
                        break;
                    }
                }
            }
            if let Some(node) = &item.stanza {
                taken.push(node.clone());
                last = Some(item.seq);
            }
        }
        if let Some(seq) = last {
            inbox.mark_sent(addr, conn, seq);
        }
        taken
    }

    /// Device `addr` acked `ids` of `class`: they are forgotten, and the sender of
    /// an acked `pkmsg` learns the device holds its session. How many were
    /// forgotten.
    pub async fn acked(&self, addr: &DeviceAddr, class: Class, ids: &[String]) -> usize {
        let mut inner = self.inner.lock().await;
        let forgotten = inner.inbox.ack(addr, class, ids);
        let device = signal_address(addr);
        for item in &forgotten {
            let kind = item
                .stanza
                .as_ref()
                .and_then(|node| node.get_optional_child("enc"))
                .and_then(|enc| attr(enc, "type"));
            if kind.as_deref() != Some("pkmsg") {
                continue;
            }
            if let Some(sender) = inner.accounts.get_mut(&item.from) {
                if let Err(why) = sender.signal.session_confirmed(&device) {
                    warn!(device = %addr.jid(), %why, "could not mark a session confirmed");
                }
            }
        }
        debug!(device = %addr.jid(), ?class, acked = forgotten.len(), "acked");
        forgotten.len()
    }

    /// Device `addr` could not decrypt a message (`receipt` is its retry
    /// receipt): the sender opens a new session, from the keys the receipt
    /// carries or else from those the device published, and sends the message
    /// again under the same id, as a newer item that waits for its own ack.
    pub async fn resend(&self, addr: &DeviceAddr, receipt: &Node) -> Result<(), String> {
        let id = attr(receipt, "id").ok_or("a retry receipt without an id")?;
        let count = receipt
            .get_optional_child("retry")
            .and_then(|retry| attr(retry, "count"))
            .and_then(|count| count.parse::<u32>().ok())
            .unwrap_or(1);
        if count > MAX_RESENDS {
            return Err(format!("message {id} was asked for {count} times; not sent again"));
        }
        let mut inner = self.inner.lock().await;
        let original = inner
            .inbox
            .newest(addr, Class::Message, &id)
            .cloned()
            .ok_or_else(|| format!("no message {id} is held for the device"))?;
        if original.payload == Payload::Undecryptable {
            // Its sender cannot seal it for the device: only the account's phone
            // can help (a resend request).
            return Err(format!("message {id} cannot be sent again by its sender"));
        }
        let bundle = match DeviceKeys::from_retry(receipt) {
            Some(keys) => keys?.take_bundle(addr.device)?,
            None => inner
                .inbox
                .keys_mut(addr)
                .ok_or("the device published no keys")?
                .take_bundle(addr.device)?,
        };
        let sender = inner
            .accounts
            .get_mut(&original.from)
            .ok_or_else(|| format!("no phone {}", original.from))?;
        sender.signal.open_session(&signal_address(addr), &bundle).await?;
        inner.inbox.push(
            addr,
            Item {
                stanza: None,
                ..original
            },
        );
        inner.wake(std::slice::from_ref(addr));
        Ok(())
    }

    /// Device `addr` uploaded pre-keys or rotated its signed pre-key (`iq`, an
    /// `encrypt` set): senders use them from now on, and what waited for keys
    /// goes out.
    pub async fn publish_keys(&self, addr: &DeviceAddr, iq: &Node) -> Result<(), String> {
        let mut inner = self.inner.lock().await;
        if DeviceKeys::is_upload(iq) {
            let upload = DeviceKeys::from_upload(iq)?;
            debug!(device = %addr.jid(), one_time = upload.one_time_left(), "pre-keys uploaded");
            inner.inbox.publish(addr, upload);
        } else if let Some(rotated) = DeviceKeys::rotation(iq) {
            let signed = rotated?;
            if let Some(keys) = inner.inbox.keys_mut(addr) {
                keys.rotate(signed);
            }
        } else {
            return Ok(());
        }
        inner.wake(std::slice::from_ref(addr));
        Ok(())
    }

    /// Messages the server still holds (queued or delivered and not acked) for
    /// `phone`'s devices.
    pub async fn count_pending(&self, phone: &str) -> Result<u64, Refusal> {
        require_phone(phone)?;
        let pending = self.inner.lock().await.inbox.pending_messages(phone);
        Ok(u64::try_from(pending).unwrap_or(u64::MAX))
    }
}

impl Inner {
    /// The linked devices of `phone`, in order; NOT_FOUND if it has none.
    fn linked_devices(&self, phone: &str) -> Result<Vec<DeviceAddr>, Refusal> {
        let mut devices: Vec<DeviceAddr> = self
            .accounts
            .get(phone)
            .map(|account| {
                account
                    .devices
                    .keys()
                    .map(|device| DeviceAddr {
                        phone: phone.to_owned(),
                        device: *device,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if devices.is_empty() {
            return Err(Refusal::NotFound(format!(
                "no device is linked to phone number {phone}"
            )));
        }
        devices.sort_by_key(|addr| addr.device);
        Ok(devices)
    }

    /// Tells the open connections of `devices` to deliver what they hold.
    pub(super) fn wake(&self, devices: &[DeviceAddr]) {
        for conn in self.conns.values() {
            if conn.device.as_ref().is_some_and(|device| devices.contains(device)) {
                let _ = conn.orders.send(Order::Deliver);
            }
        }
    }
}

/// Both are phone numbers, and not the same one.
fn sender_and_recipient(to: &str, from: &str) -> Result<(), Refusal> {
    require_phone(to)?;
    require_phone(from)?;
    if to == from {
        return Err(Refusal::Invalid(
            "the sender and the recipient are the same phone number".into(),
        ));
    }
    Ok(())
}

/// A fresh message id, as a phone makes them (32 hex digits), for a message
/// whose content needs the id first (media).
pub fn new_message_id() -> String {
    message_id()
}

/// A fresh message id, as a phone makes them (32 hex digits).
pub(super) fn message_id() -> String {
    rand::random::<[u8; 16]>()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect()
}

/// `PHONE@s.whatsapp.net`.
fn user_jid(phone: &str) -> String {
    format!("{phone}@s.whatsapp.net")
}

/// The Signal address of a device, as the fake's phones name it.
fn signal_address(addr: &DeviceAddr) -> ProtocolAddress {
    ProtocolAddress::new(&addr.phone, u32::from(addr.device).into())
}

/// A well-formed Signal message (`msg`) of a session no device has, under keys
/// made for it alone: a device cannot decrypt it.
fn undecryptable() -> Result<(&'static str, Vec<u8>), String> {
    use wacore_libsignal::protocol::{IdentityKey, KeyPair, SignalMessage};
    let mut rng = rand::rng();
    let mut key = || KeyPair::generate(&mut rng).public_key;
    let (ratchet, sender, receiver) = (key(), IdentityKey::new(key()), IdentityKey::new(key()));
    let ciphertext: [u8; 48] = rand::random();
    let mac_key: [u8; 32] = rand::random();
    SignalMessage::new(3, &mac_key, ratchet, 0, 0, &ciphertext, &sender, &receiver)
        .map(|message| ("msg", message.serialized().to_vec()))
        .map_err(|e| format!("could not make an undecryptable message: {e}"))
}

/// A text message as a device decrypts it: `Message{conversation}`, padded.
fn plaintext(text: &str) -> Vec<u8> {
    let message = wa::Message {
        conversation: Some(text.to_owned()),
        ..Default::default()
    };
    MessageUtils::pad_message_v2(message.encode_to_vec())
}
