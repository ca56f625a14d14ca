//! What the fake server knows across connections: the accounts (one per phone
//! number, with the phone's identity key and its linked devices), the open
//! connections and the orders the control API gives them, the refs each pairing
//! connection was offered, the counters, what the server holds for devices (the
//! inbox, driven from `mail`) and what it did with what they sent (the outbox,
//! driven from `sends`), what it holds against each account (driven from
//! `health`), and the phones' copies of messages their devices could not decrypt
//! (driven from `resend`).

mod code;
mod contacts;
mod health;
mod mail;
mod resend;
mod sends;

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot, Mutex};
use wacore_binary::{Jid, Node, Server};
use wacore_libsignal::protocol::{KeyPair, PreKeyBundle, ProtocolAddress};

pub use mail::{new_message_id, ReceiptKind};

use crate::{
    device_keys::DeviceKeys,
    health::Health,
    inbox::Inbox,
    outbox::Outbox,
    pairing::{self, Linked, ScannedCode},
    signal::PhoneSignal,
    stanza,
    vocab::{CodeRequest, ConnId, DeviceAddr, Login, Refusal},
};

/// The name every fake account shows.
pub const PUSH_NAME: &str = "Fake Phone";

/// What the control API tells a connection to do.
#[derive(Debug)]
pub enum Order {
    /// Send this stanza.
    Send(Node),
    /// Send this stream error, then close the socket.
    End(Node),
    /// Drop the socket without a word (socket loss).
    Drop,
    /// Send the device what the server holds for it and did not send yet.
    Deliver,
}

/// A pair-success sent, waiting for the device's pair-device-sign.
#[derive(Debug)]
pub struct PendingPair {
    /// The id of the pair-success iq.
    pub iq_id: String,
    /// The device being linked.
    pub addr: DeviceAddr,
    /// What the phone scanned.
    pub code: ScannedCode,
}

/// An account: a phone and its linked devices.
struct Account {
    /// The phone's identity key: signs ADV identities.
    identity: KeyPair,
    /// The phone's Signal keys and sessions.
    signal: PhoneSignal,
    /// The account's LID user part.
    lid_user: String,
    /// Linked devices by number, with their Noise static key.
    devices: HashMap<u16, [u8; 32]>,
    /// The number the next linked device gets.
    next_device: u16,
}

/// An open connection.
struct Conn {
    /// Where its orders go.
    orders: mpsc::UnboundedSender<Order>,
    /// The refs it was offered (pairing connections).
    refs: Vec<String>,
    /// The device logged in on it.
    device: Option<DeviceAddr>,
    /// The pair-success it was sent, awaiting the device's answer.
    pending: Option<PendingPair>,
    /// Its request for a pairing code, until the phone types it.
    code_request: Option<CodeRequest>,
    /// Where its `companion_finish` goes.
    finish_waiter: Option<oneshot::Sender<Node>>,
    /// The keys its registration payload carried (pairing connections).
    registration: Option<DeviceKeys>,
}

#[derive(Default)]
struct Inner {
    /// Accounts by phone number.
    accounts: HashMap<String, Account>,
    /// Open connections by number; one leaves when its socket closes.
    conns: HashMap<ConnId, Conn>,
    /// Connections ever accepted (WebSocket upgrades).
    started: u64,
    /// The id of the next connection.
    next_conn: ConnId,
    /// Connections still to refuse.
    fail_connects: u32,
    /// Unlink requests still to refuse.
    refuse_unlinks: u32,
    /// Phone numbers handed out so far (for scans without one).
    phones_issued: u64,
    /// Messages devices sent, refusals ordered and acks held.
    outbox: Outbox,
    /// What the server holds for devices, and their keys.
    inbox: Inbox,
    /// Timelocks and bans, and the chats each account messaged.
    health: Health,
    /// The phones' copies of undecryptable messages, and whether they answer.
    resends: resend::Resends,
    /// Numbers not on WhatsApp, and the contact queries answered.
    contacts: contacts::Contacts,
}

/// The shared state.
#[derive(Default)]
pub struct World {
    /// Everything, behind one lock never held across I/O.
    inner: Mutex<Inner>,
}

impl World {
    /// Counts an accepted connection; `false` if it is to be refused.
    pub async fn accept(&self) -> bool {
        let mut inner = self.inner.lock().await;
        inner.started += 1;
        if inner.fail_connects > 0 {
            inner.fail_connects -= 1;
            return false;
        }
        true
    }

    /// Registers an open connection.
    pub async fn open(&self, orders: mpsc::UnboundedSender<Order>) -> ConnId {
        let mut inner = self.inner.lock().await;
        inner.next_conn += 1;
        let id = inner.next_conn;
        inner.conns.insert(
            id,
            Conn {
                orders,
                refs: Vec::new(),
                device: None,
                pending: None,
                code_request: None,
                finish_waiter: None,
                registration: None,
            },
        );
        id
    }

    /// Forgets a closed connection.
    pub async fn close(&self, id: ConnId) {
        self.inner.lock().await.conns.remove(&id);
    }

    /// Records the refs offered to a pairing connection, and the keys its
    /// registration carried.
    pub async fn offer_refs(&self, id: ConnId, refs: Vec<String>, keys: Option<DeviceKeys>) {
        if let Some(conn) = self.inner.lock().await.conns.get_mut(&id) {
            conn.refs = refs;
            conn.registration = keys;
        }
    }

    /// A phone scanned `code`: sends a pair-success for a new device of `phone` (a
    /// fresh number when empty) to the connection that was offered the code's ref.
    /// Returns the device to be.
    pub async fn scan(&self, code: &str, phone: &str) -> Result<DeviceAddr, Refusal> {
        let code = pairing::parse_qr(code).map_err(Refusal::Invalid)?;
        if !phone.chars().all(|c| c.is_ascii_digit()) {
            return Err(Refusal::Invalid("a phone number is digits only".into()));
        }
        let mut inner = self.inner.lock().await;
        let conn_id = inner
            .conns
            .iter()
            .find(|(_, conn)| conn.refs.contains(&code.pairing_ref))
            .map(|(id, _)| *id)
            .ok_or_else(|| Refusal::NotFound("no open connection was offered that qr code's ref".into()))?;
        let phone = match phone {
            "" => {
                inner.phones_issued += 1;
                format!("1555{:07}", inner.phones_issued)
            }
            digits => digits.to_owned(),
        };
        inner.pair_on(conn_id, &phone, code)
    }

    /// The answer `iq_id` arrived on connection `id`: if it answers a pair-success,
    /// the device is linked (with its Noise key) once its countersignature checks
    /// out. `None` when it answers something else.
    pub async fn answer_pairing(&self, id: ConnId, iq_id: &str, answer: &Node) -> Option<Result<DeviceAddr, String>> {
        let mut inner = self.inner.lock().await;
        let conn = inner.conns.get_mut(&id)?;
        if conn.pending.as_ref().is_none_or(|p| p.iq_id != iq_id) {
            return None;
        }
        let pending = conn.pending.take()?;
        if let Err(why) = pairing::countersigned(answer, &pending.code) {
            return Some(Err(why));
        }
        let keys = conn.registration.take();
        let account = inner.account(&pending.addr.phone);
        account.devices.insert(pending.addr.device, pending.code.noise_key);
        inner.inbox.link(pending.addr.clone(), keys);
        Some(Ok(pending.addr))
    }

    /// A device logs in with its Noise static key: accepted with its LID if it is
    /// linked with that key and its account is not banned.
    pub async fn login(&self, id: ConnId, addr: &DeviceAddr, noise_key: &[u8; 32]) -> Login {
        let mut inner = self.inner.lock().await;
        let Some(account) = inner.accounts.get(&addr.phone) else {
            return Login::Unknown;
        };
        if account.devices.get(&addr.device) != Some(noise_key) {
            return Login::Unknown;
        }
        let lid = format!("{}:{}@lid", account.lid_user, addr.device);
        let now = std::time::SystemTime::now();
        if let Some(ban) = inner.health.ban(&addr.phone, now) {
            return Login::Banned(crate::health::ban_failure(ban, now));
        }
        if let Some(conn) = inner.conns.get_mut(&id) {
            conn.device = Some(addr.clone());
        }
        Login::Accepted(lid)
    }

    /// Gives `order(conn)` to every open connection of `phone`'s devices (all
    /// open connections when `phone` is empty); how many got one.
    async fn order_each(&self, phone: &str, order: impl Fn() -> Order) -> u32 {
        let inner = self.inner.lock().await;
        let mut given = 0;
        for conn in inner.conns.values() {
            let matches = phone.is_empty() || conn.device.as_ref().is_some_and(|d| d.phone == phone);
            if matches && conn.orders.send(order()).is_ok() {
                given += 1;
            }
        }
        given
    }

    /// Drops the sockets of `phone`'s devices (every socket when empty).
    pub async fn drop_connections(&self, phone: &str) -> u32 {
        self.order_each(phone, || Order::Drop).await
    }

    /// Another client took over `phone`'s devices' streams.
    pub async fn replace_streams(&self, phone: &str) -> Result<u32, Refusal> {
        require_phone(phone)?;
        Ok(self
            .order_each(phone, || Order::End(stanza::stream_conflict(None, "replaced")))
            .await)
    }

    /// The phone unlinks all its devices: they are forgotten, and the open ones
    /// told so (401 device_removed). How many were linked.
    pub async fn logout_devices(&self, phone: &str) -> Result<u32, Refusal> {
        require_phone(phone)?;
        let removed = {
            let mut inner = self.inner.lock().await;
            let account = inner
                .accounts
                .get_mut(phone)
                .ok_or_else(|| Refusal::NotFound(format!("no account for phone number {phone}")))?;
            let removed = account.devices.len();
            account.devices.clear();
            inner.inbox.unlink_all(phone);
            u32::try_from(removed).unwrap_or(u32::MAX)
        };
        self.order_each(phone, || {
            Order::End(stanza::stream_conflict(Some(401), "device_removed"))
        })
        .await;
        Ok(removed)
    }

    /// A device unlinks itself (`remove-companion-device`): whether it was linked,
    /// or None when the request is refused (ordered; the device stays linked).
    pub async fn unlink(&self, addr: &DeviceAddr) -> Option<bool> {
        let mut inner = self.inner.lock().await;
        if inner.refuse_unlinks > 0 {
            inner.refuse_unlinks -= 1;
            return None;
        }
        inner.inbox.unlink(addr);
        let accounts = inner.accounts.get_mut(&addr.phone);
        Some(accounts.is_some_and(|account| account.devices.remove(&addr.device).is_some()))
    }

    /// Refuses the next `count` unlink requests.
    pub async fn refuse_unlinks(&self, count: u32) {
        self.inner.lock().await.refuse_unlinks = count;
    }

    /// Refuses the next `count` connections.
    pub async fn fail_connects(&self, count: u32) {
        self.inner.lock().await.fail_connects = count;
    }

    /// Connections ever accepted, and open now.
    pub async fn count_connections(&self) -> (u64, u64) {
        let inner = self.inner.lock().await;
        (inner.started, inner.conns.len() as u64)
    }

    /// The pre-key bundle of `phone`'s phone (device 0); the account is created on
    /// first use, as any number is a WhatsApp user here.
    pub async fn bundle(&self, user: &Jid) -> Result<PreKeyBundle, String> {
        let mut inner = self.inner.lock().await;
        let phone = inner.phone_of(user);
        inner.account(&phone).signal.bundle()
    }

    /// Decrypts what `sender` sent to `recipient`'s phone.
    pub async fn decrypt(
        &self,
        recipient: &Jid,
        sender: &ProtocolAddress,
        kind: &str,
        body: &[u8],
    ) -> Result<Vec<u8>, String> {
        let mut inner = self.inner.lock().await;
        let phone = inner.phone_of(recipient);
        inner.account(&phone).signal.decrypt(sender, kind, body).await
    }

    /// The identity key pair of `phone`'s phone, created with its account.
    pub async fn phone_identity(&self, phone: &str) -> KeyPair {
        self.inner.lock().await.account(phone).identity.clone()
    }
}

impl Inner {
    /// Sends a pair-success for a new device of `phone` to connection `conn_id`
    /// and waits for its countersignature there.
    fn pair_on(&mut self, conn_id: ConnId, phone: &str, code: ScannedCode) -> Result<DeviceAddr, Refusal> {
        let account = self.account(phone);
        let addr = DeviceAddr {
            phone: phone.to_owned(),
            device: account.next_device,
        };
        account.next_device += 1;
        let (jid, lid) = (addr.jid(), format!("{}:{}@lid", account.lid_user, addr.device));
        let linked = Linked {
            jid: &jid,
            lid: &lid,
            push_name: PUSH_NAME,
            device: addr.device,
        };
        let iq_id = stanza::next_id();
        let success = pairing::pair_success(&iq_id, &account.identity, &code, &linked).map_err(Refusal::Invalid)?;
        let closed = || Refusal::NotFound("the device's connection just closed".into());
        let conn = self.conns.get_mut(&conn_id).ok_or_else(closed)?;
        conn.refs.clear();
        conn.orders.send(Order::Send(success)).map_err(|_| closed())?;
        conn.pending = Some(PendingPair {
            iq_id,
            addr: addr.clone(),
            code,
        });
        Ok(addr)
    }

    /// The phone number of a user JID, by phone number or by LID.
    fn phone_of(&self, user: &Jid) -> String {
        if user.server == Server::Lid {
            let by_lid = self
                .accounts
                .iter()
                .find(|(_, account)| account.lid_user == user.user.as_str());
            if let Some((phone, _)) = by_lid {
                return phone.clone();
            }
        }
        user.user.to_string()
    }

    /// `phone`'s account, created on first use.
    fn account(&mut self, phone: &str) -> &mut Account {
        let next_lid = 100_000_000_000_000 + self.accounts.len() as u64;
        self.accounts.entry(phone.to_owned()).or_insert_with(|| {
            let identity = KeyPair::generate(&mut rand::rng());
            Account {
                signal: PhoneSignal::new(&identity).expect("a fresh identity signs its pre-key"),
                identity,
                lid_user: next_lid.to_string(),
                devices: HashMap::new(),
                next_device: 1,
            }
        })
    }
}

fn require_phone(phone: &str) -> Result<(), Refusal> {
    if phone.is_empty() || !phone.chars().all(|c| c.is_ascii_digit()) {
        return Err(Refusal::Invalid("a phone number (digits) is required".into()));
    }
    Ok(())
}
