//! An in-process fake WhatsApp with WhatsApp's timings and events: per connection a
//! batch of QR codes (the first valid `first_ttl`, the others `next_ttl`), then the
//! server closes the socket; a scan gives pair-success then a 515 restart; stored
//! credentials give CONNECTED. The phone's side (scanning) is driven through
//! `EmulatorService`. Credentials live in the session's folder, like the real store.

use std::{collections::HashMap, sync::Arc, time::Duration};

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use tokio::{
    sync::{mpsc, watch, Mutex},
    task::JoinHandle,
    time::Instant,
};

use super::{Backend, BackendError, BackendEvent, BoxFuture, Connection, EventSink, CLOSE_TIMEOUT};
use crate::{
    error::SessionError,
    session::{
        policy::Disconnect,
        state::{Identity, QrCode},
        SessionId,
    },
    store::{write_atomic, DataDir},
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
}

/// The server's view of one session's account.
#[derive(Default)]
struct Account {
    /// Connections ever started.
    connections: u64,
    /// The open connection.
    live: Option<Live>,
}

/// An open connection, as the phone can see it.
struct Live {
    /// Its number among the account's connections.
    number: u64,
    /// Steers it.
    control: mpsc::Sender<Control>,
    /// The code on screen and when it expires.
    shown: Option<(String, Instant)>,
}

/// What the phone or the session does to a connection.
#[derive(Debug)]
enum Control {
    Close,
    Scanned(Identity),
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
        };
        Self { inner: Arc::new(inner) }
    }

    /// Changes the timings for connections started from now on.
    pub fn set_config(&self, change: impl FnOnce(&mut EmulatorConfig)) {
        self.inner.config.send_modify(change);
    }

    /// Connections ever started for a session.
    pub async fn connections_started(&self, session: &SessionId) -> u64 {
        let accounts = self.inner.accounts.lock().await;
        accounts.get(session).map_or(0, |a| a.connections)
    }

    /// The phone scans `code` (empty: the one on screen). Refused unless it is the
    /// session's current, unexpired code.
    pub async fn scan_qr(&self, session: &SessionId, code: &str, phone: &str) -> Result<Identity, SessionError> {
        let phone_number = phone_or_generated(phone)?;
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
        let device: u32 = rand::thread_rng().gen_range(2..60);
        let identity = Identity {
            jid: format!("{phone_number}:{device}@s.whatsapp.net"),
            push_name: format!("Emulated {}", &phone_number[phone_number.len() - 4..]),
            phone_number,
            connected_at: None,
        };
        live.shown = None;
        live.control
            .try_send(Control::Scanned(identity.clone()))
            .map_err(|_| refused(format!("session {session} is closing its connection: try again")))?;
        Ok(identity)
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

    async fn register(&self, session: &SessionId, control: mpsc::Sender<Control>) -> u64 {
        let mut accounts = self.inner.accounts.lock().await;
        let account = accounts.entry(session.clone()).or_default();
        account.connections += 1;
        account.live = Some(Live {
            number: account.connections,
            control,
            shown: None,
        });
        account.connections
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

    /// One connection, start to end: the server's side of the protocol.
    async fn serve(
        self,
        session: SessionId,
        control: mpsc::Sender<Control>,
        mut rx: mpsc::Receiver<Control>,
        sink: EventSink,
    ) {
        let number = self.register(&session, control).await;
        let config = self.config();
        if next_control(config.step_delay, &mut rx).await.is_some() {
            return self.deregister(&session, number).await;
        }
        match self.read_device(&session) {
            Some(device) => self.online(device, &mut rx, &sink).await,
            None => self.pair(&session, number, &config, &mut rx, &sink).await,
        }
        self.deregister(&session, number).await;
    }

    async fn pair(
        &self,
        session: &SessionId,
        number: u64,
        config: &EmulatorConfig,
        rx: &mut mpsc::Receiver<Control>,
        sink: &EventSink,
    ) {
        let keys = DeviceKeys::random();
        for index in 1..=config.qr_count {
            let ttl = if index == 1 { config.first_ttl } else { config.next_ttl };
            let code = keys.qr_code();
            self.show(session, number, &code, Instant::now() + ttl).await;
            let count = config.qr_count;
            sink(BackendEvent::Qr(QrCode {
                code,
                ttl,
                index,
                count,
            }));
            match next_control(ttl, rx).await {
                None => continue,
                Some(Control::Close) => return,
                Some(Control::Scanned(identity)) => {
                    return self.complete_pairing(session, identity, config, rx, sink).await
                }
            }
        }
        sink(BackendEvent::QrExhausted);
    }

    async fn complete_pairing(
        &self,
        session: &SessionId,
        identity: Identity,
        config: &EmulatorConfig,
        rx: &mut mpsc::Receiver<Control>,
        sink: &EventSink,
    ) {
        if let Err(e) = self.store_device(session, &identity).await {
            let cause = format!("the emulated device could not store its credentials: {e}");
            return sink(BackendEvent::Disconnected(Disconnect::ConnectionLost(cause)));
        }
        sink(BackendEvent::PairSuccess {
            phone_number: identity.phone_number,
            jid: identity.jid,
        });
        if let Some(Control::Close) = next_control(config.step_delay, rx).await {
            return;
        }
        sink(BackendEvent::Disconnected(Disconnect::RestartRequired));
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

    async fn online(&self, device: Device, rx: &mut mpsc::Receiver<Control>, sink: &EventSink) {
        sink(BackendEvent::Connected(Identity {
            phone_number: device.phone_number,
            jid: device.jid,
            push_name: device.push_name,
            connected_at: None,
        }));
        while let Some(control) = rx.recv().await {
            match control {
                Control::Close => return,
                Control::Scanned(_) => {}
            }
        }
    }
}

/// Waits `delay` for a control; None when the delay passed first.
async fn next_control(delay: Duration, rx: &mut mpsc::Receiver<Control>) -> Option<Control> {
    tokio::select! {
        () = tokio::time::sleep(delay) => None,
        control = rx.recv() => Some(control.unwrap_or(Control::Close)),
    }
}

fn refused(message: String) -> SessionError {
    SessionError::FailedPrecondition {
        message,
        status: None,
        reason: "QR_NOT_SCANNABLE",
    }
}

/// Checks a phone number (digits only, 7 to 15 of them) or makes one up.
fn phone_or_generated(phone: &str) -> Result<String, SessionError> {
    if phone.is_empty() {
        let subscriber: u32 = rand::thread_rng().gen_range(0..10_000_000);
        return Ok(format!("1555{subscriber:07}"));
    }
    let digits_only = phone.bytes().all(|b| b.is_ascii_digit());
    if digits_only && (7..=15).contains(&phone.len()) {
        return Ok(phone.to_owned());
    }
    Err(SessionError::InvalidArgument(format!(
        "phone number {phone:?} is invalid: use 7 to 15 digits with the country code, no + or spaces"
    )))
}

/// The keys a device shows in its codes (random per connection).
struct DeviceKeys {
    noise: String,
    identity: String,
    adv_secret: String,
}

impl DeviceKeys {
    fn random() -> Self {
        Self {
            noise: random_b64(32),
            identity: random_b64(32),
            adv_secret: random_b64(32),
        }
    }

    /// `ref,noise,identity,adv,client type`, with a fresh ref.
    fn qr_code(&self) -> String {
        let reference = format!("2@{}", random_b64(48));
        format!("{reference},{},{},{},1", self.noise, self.identity, self.adv_secret)
    }
}

fn random_b64(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut bytes);
    B64.encode(bytes)
}

/// A connection to the emulator.
struct EmulatedConnection {
    control: mpsc::Sender<Control>,
    task: JoinHandle<()>,
}

impl Connection for EmulatedConnection {
    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = self.control.try_send(Control::Close);
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.task).await;
        })
    }
}

impl Backend for Emulator {
    fn name(&self) -> &'static str {
        "emulator"
    }

    fn has_credentials(&self, session: &SessionId) -> bool {
        self.device_path(session).exists()
    }

    fn connect(&self, session: &SessionId, sink: EventSink) -> Box<dyn Connection> {
        let (control, rx) = mpsc::channel(8);
        let task = tokio::spawn(self.clone().serve(session.clone(), control.clone(), rx, sink));
        Box::new(EmulatedConnection { control, task })
    }

    fn wipe(&self, session: &SessionId) -> BoxFuture<'static, Result<(), BackendError>> {
        let path = self.device_path(session);
        Box::pin(async move {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(BackendError::Storage(format!("could not wipe credentials: {e}"))),
            }
        })
    }
}
