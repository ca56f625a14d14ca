//! An in-process fake WhatsApp with WhatsApp's timings and events: per connection a
//! batch of QR codes (the first valid `first_ttl`, the others `next_ttl`), then the
//! server closes the socket; a scan (or an entered pairing code) gives pair-success
//! then a 515 restart; stored credentials give CONNECTED. The phone's and the
//! server's side are driven through `EmulatorService`. Credentials live in the
//! session's folder, like the real store.

mod cdn;
mod contacts;
mod handle;
mod health;
mod inbound;
mod keys;
mod queue;
mod sent;
mod sent_log;
mod server;
mod undecryptable;

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::{
    sync::{mpsc, watch, Mutex},
    time::Instant,
};

pub use self::sent_log::EmulatedMessage;
use self::{
    handle::EmulatedConnection,
    server::{Control, PAIRING_CODE_TTL},
};
use super::{Backend, BackendError, BoxFuture, Connection, EventSink, PairingCodeIssued};
use crate::{
    backend::Identity,
    domain::SessionId,
    error::SessionError,
    events::Inbox,
    store::{remove_if_present, write_atomic, DataDir},
};

/// The credentials file of an emulated device.
const DEVICE_FILE: &str = "emulator-device.json";

/// Timings of the emulated server.
#[derive(Debug, Clone, PartialEq)]
pub struct EmulatorConfig {
    /// Validity of the first code of a batch (WhatsApp: 60 s).
    pub first_ttl: Duration,
    /// Validity of each later code (WhatsApp: 20 s).
    pub next_ttl: Duration,
    /// Codes per batch (WhatsApp: 6).
    pub qr_count: u32,
    /// Delay of each protocol step: connect to first code, scan to 515, connect to
    /// online.
    pub step_delay: Duration,
    /// How long a rate limit (`RateLimit`, WhatsApp's stream error 429) shows as
    /// the account's health: the daemon's `--rate-limit-pause`.
    pub rate_limit_pause: Duration,
}

/// Connections the emulated server saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionCount {
    /// Attempts ever started, refused ones included.
    pub started: u64,
    /// Connections whose task still runs (at most one per session, unless one leaked).
    pub open: u64,
}

/// The emulated WhatsApp; cheap to clone.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

struct Inner {
    /// Timings, changeable while running (tests).
    config: watch::Sender<EmulatorConfig>,
    /// Where the devices' credentials live.
    data: DataDir,
    /// The server's view of each account.
    accounts: Mutex<HashMap<SessionId, Account>>,
    /// What the server holds for accounts (opened on first use).
    queue: tokio::sync::OnceCell<queue::ServerQueue>,
    /// The phones' copies of messages their devices could not decrypt.
    phone_copies: undecryptable::PhoneCopies,
    /// Which numbers are not on WhatsApp, and the contact checks answered.
    registrations: parking_lot::Mutex<contacts::Registrations>,
}

/// The server's view of one session's account.
#[derive(Default)]
struct Account {
    /// When each connection attempt started.
    attempts: Vec<Instant>,
    /// Connection attempts still to refuse.
    fail_next: u32,
    /// The connection the phone can reach now; None between connections.
    live: Option<Live>,
    /// The next sends to nack: WhatsApp's code, and how many more.
    reject: Option<(u32, u32)>,
    /// New chats are barred until then (`SetAccountHealth`).
    restricted_until: Option<std::time::SystemTime>,
    /// A temporary ban: WhatsApp's reason and its end.
    banned: Option<(u32, std::time::SystemTime)>,
    /// Wakes its online connection when the server queues something for it.
    inbound: Arc<tokio::sync::Notify>,
}

/// An open connection, as the phone can see it.
struct Live {
    /// Its number among the account's connections.
    number: u64,
    /// Where the phone's actions (scan, drop, replace, logout) reach its task.
    control: mpsc::Sender<Control>,
    /// The code on screen and when it expires.
    shown: Option<(String, Instant)>,
    /// The pairing code issued, for which phone, until when.
    pairing: Option<(String, String, Instant)>,
}

/// The stored credentials of an emulated device.
#[derive(Serialize, Deserialize)]
struct Device {
    phone_number: String,
    jid: String,
    push_name: String,
}

impl Emulator {
    /// An emulator keeping credentials under `data`.
    pub fn new(config: EmulatorConfig, data: DataDir) -> Self {
        let (config, _) = watch::channel(config);
        let inner = Inner {
            config,
            data,
            accounts: Mutex::default(),
            queue: tokio::sync::OnceCell::new(),
            phone_copies: Default::default(),
            registrations: Default::default(),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Changes the timings for connections started from now on.
    pub fn set_config(&self, change: impl FnOnce(&mut EmulatorConfig)) {
        self.inner.config.send_modify(change);
    }

    /// Connections ever started for a session.
    pub async fn connections_started(&self, session: &SessionId) -> u64 {
        self.connection_times(session).await.len() as u64
    }

    /// Connections started and open now: of one session, or of all when None.
    pub async fn count_connections(&self, session: Option<&SessionId>) -> ConnectionCount {
        let accounts = self.inner.accounts.lock().await;
        let count = |a: &Account| ConnectionCount {
            started: a.attempts.len() as u64,
            open: u64::from(a.live.is_some()),
        };
        match session {
            Some(session) => accounts.get(session).map(count).unwrap_or_default(),
            None => accounts
                .values()
                .map(count)
                .fold(ConnectionCount::default(), |sum, c| ConnectionCount {
                    started: sum.started + c.started,
                    open: sum.open + c.open,
                }),
        }
    }

    /// When each connection attempt of a session started.
    pub async fn connection_times(&self, session: &SessionId) -> Vec<Instant> {
        let accounts = self.inner.accounts.lock().await;
        accounts.get(session).map(|a| a.attempts.clone()).unwrap_or_default()
    }

    /// The phone scans `code` (empty: the one on screen). Refused unless it is the
    /// session's current, unexpired code.
    pub async fn scan_qr(&self, session: &SessionId, code: &str, phone: &str) -> Result<Identity, SessionError> {
        let identity = keys::identity_for(keys::phone_or_generated(phone)?);
        let mut accounts = self.inner.accounts.lock().await;
        let live = accounts.get_mut(session).and_then(|a| a.live.as_mut());
        let Some((live, (shown, expires))) = live.and_then(|l| l.shown.clone().map(|s| (l, s))) else {
            return Err(refused(format!(
                "session {session} shows no qr code: get the session to have one shown first"
            )));
        };
        if !code.is_empty() && code != shown {
            return Err(refused(format!(
                "that code is not the one session {session} shows now: scan its current code"
            )));
        }
        if Instant::now() >= expires {
            return Err(refused(format!(
                "the code of session {session} has expired: get the session for a fresh one"
            )));
        }
        live.shown = None;
        send_control(live, session, Control::Scanned(identity.clone()))?;
        Ok(identity)
    }

    /// The phone types a pairing code. Refused unless it is the one issued to the
    /// session's open connection and still valid.
    pub async fn enter_pairing_code(&self, session: &SessionId, typed: &str) -> Result<Identity, SessionError> {
        let typed = keys::normalize_pairing_code(typed);
        let mut accounts = self.inner.accounts.lock().await;
        let live = accounts.get_mut(session).and_then(|a| a.live.as_mut());
        let Some((live, (code, phone, expires))) = live.and_then(|l| l.pairing.clone().map(|p| (l, p))) else {
            return Err(refused(format!(
                "session {session} has no pairing code: request one with RequestPairingCode first"
            )));
        };
        if typed != code || Instant::now() >= expires {
            return Err(refused(format!(
                "that pairing code is wrong or expired for session {session}: request a new one"
            )));
        }
        let identity = keys::identity_for(phone);
        live.pairing = None;
        live.shown = None;
        send_control(live, session, Control::Scanned(identity.clone()))?;
        Ok(identity)
    }

    /// Socket loss on the session's open connection.
    pub async fn drop_connection(&self, session: &SessionId) -> Result<(), SessionError> {
        self.control_live(session, Control::Drop).await
    }

    /// The phone unlinks the device (401 device_removed).
    pub async fn logout_from_phone(&self, session: &SessionId) -> Result<(), SessionError> {
        self.control_live(session, Control::RemoteLogout).await
    }

    /// Another client takes over the credentials (440 conflict replaced).
    pub async fn replace_stream(&self, session: &SessionId) -> Result<(), SessionError> {
        self.control_live(session, Control::Replace).await
    }

    /// WhatsApp rate-limits the session's online connection (stream error 429):
    /// the account shows rate-limited, the connection is lost and reconnects.
    pub async fn rate_limit(&self, session: &SessionId) -> Result<(), SessionError> {
        self.control_live(session, Control::RateLimit).await
    }

    /// Refuses the session's next `count` connection attempts.
    pub async fn fail_connects(&self, session: &SessionId, count: u32) {
        let mut accounts = self.inner.accounts.lock().await;
        accounts.entry(session.clone()).or_default().fail_next = count;
    }

    async fn control_live(&self, session: &SessionId, control: Control) -> Result<(), SessionError> {
        let accounts = self.inner.accounts.lock().await;
        let Some(live) = accounts.get(session).and_then(|a| a.live.as_ref()) else {
            return Err(refused(format!("session {session} has no open connection")));
        };
        send_control(live, session, control)
    }

    fn config(&self) -> EmulatorConfig {
        self.inner.config.borrow().clone()
    }

    fn device_path(&self, session: &SessionId) -> std::path::PathBuf {
        self.inner.data.session_dir(session).join(DEVICE_FILE)
    }

    fn read_device(&self, session: &SessionId) -> Option<Device> {
        let bytes = std::fs::read(self.device_path(session)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The device is unlinked: its credentials go, and the server forgets what it
    /// held for it.
    async fn remove_device(&self, session: &SessionId) {
        let _ = tokio::fs::remove_file(self.device_path(session)).await;
        self.forget_held(session).await;
    }

    /// Registers a new connection; returns its number and whether to refuse it.
    async fn register(&self, session: &SessionId, control: mpsc::Sender<Control>) -> (u64, bool) {
        let mut accounts = self.inner.accounts.lock().await;
        let account = accounts.entry(session.clone()).or_default();
        account.attempts.push(Instant::now());
        let number = account.attempts.len() as u64;
        let refuse = account.fail_next > 0;
        account.fail_next = account.fail_next.saturating_sub(1);
        account.live = Some(Live {
            number,
            control,
            shown: None,
            pairing: None,
        });
        (number, refuse)
    }

    async fn deregister(&self, session: &SessionId, number: u64) {
        let mut accounts = self.inner.accounts.lock().await;
        if let Some(account) = accounts.get_mut(session) {
            if account.live.as_ref().is_some_and(|l| l.number == number) {
                account.live = None;
            }
        }
    }

    async fn show(&self, session: &SessionId, number: u64, code: &str, expires: Instant) {
        let mut accounts = self.inner.accounts.lock().await;
        let live = accounts.get_mut(session).and_then(|a| a.live.as_mut());
        if let Some(live) = live.filter(|l| l.number == number) {
            live.shown = Some((code.to_owned(), expires));
        }
    }

    async fn issue_pairing_code(
        &self,
        session: &SessionId,
        number: u64,
        phone: String,
        batch_ends: Instant,
    ) -> PairingCodeIssued {
        let code = keys::pairing_code();
        let expires = batch_ends.min(Instant::now() + PAIRING_CODE_TTL);
        let mut accounts = self.inner.accounts.lock().await;
        let live = accounts.get_mut(session).and_then(|a| a.live.as_mut());
        if let Some(live) = live.filter(|l| l.number == number) {
            live.pairing = Some((code.clone(), phone, expires));
        }
        PairingCodeIssued {
            code,
            valid_for: expires.saturating_duration_since(Instant::now()),
        }
    }

    async fn store_device(&self, session: &SessionId, identity: &Identity) -> std::io::Result<()> {
        let device = Device {
            phone_number: identity.phone_number.clone(),
            jid: identity.jid.clone(),
            push_name: identity.push_name.clone(),
        };
        let dir = self.inner.data.session_dir(session);
        let bytes = serde_json::to_vec(&device).map_err(std::io::Error::other)?;
        tokio::task::spawn_blocking(move || {
            crate::store::create_private_dir(&dir)?;
            write_atomic(&dir, DEVICE_FILE, &bytes)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

fn send_control(live: &Live, session: &SessionId, control: Control) -> Result<(), SessionError> {
    live.control
        .try_send(control)
        .map_err(|_| refused(format!("session {session} is closing its connection: try again")))
}

fn refused(message: String) -> SessionError {
    SessionError::FailedPrecondition {
        message,
        status: None,
        reason: "EMULATOR_REFUSED",
    }
}

impl Backend for Emulator {
    fn name(&self) -> &'static str {
        "emulator"
    }

    fn has_credentials(&self, session: &SessionId) -> bool {
        self.device_path(session).exists()
    }

    fn repair(&self, session: &SessionId) -> Option<String> {
        let path = self.device_path(session);
        if !path.exists() || self.read_device(session).is_some() {
            return None;
        }
        if let Err(e) = remove_if_present(&path) {
            return Some(format!(
                "the stored credentials are unreadable and could not be wiped ({e})"
            ));
        }
        Some("the stored credentials were unreadable and have been wiped: pair the session again".into())
    }

    fn connect(&self, session: &SessionId, sink: EventSink, inbox: Inbox) -> Box<dyn Connection> {
        let (control, rx) = mpsc::channel(16);
        let task = tokio::spawn(self.clone().serve(session.clone(), control.clone(), rx, sink, inbox));
        Box::new(EmulatedConnection::new(control, task, self.cdn(session)))
    }

    fn wipe(&self, session: &SessionId) -> BoxFuture<'static, Result<(), BackendError>> {
        let path = self.device_path(session);
        let (emulator, session) = (self.clone(), session.clone());
        Box::pin(async move {
            emulator.forget_held(&session).await;
            let removed = tokio::task::spawn_blocking(move || remove_if_present(&path)).await;
            match removed.map_err(std::io::Error::other).and_then(|r| r) {
                Ok(()) => Ok(()),
                Err(e) => Err(BackendError::Storage(format!("could not wipe credentials: {e}"))),
            }
        })
    }

    fn logout_stored(&self, session: &SessionId, _inbox: Inbox) -> BoxFuture<'static, Result<(), BackendError>> {
        // The emulated server forgets a device when its credentials go: nothing to
        // send over the wire.
        self.wipe(session)
    }
}
