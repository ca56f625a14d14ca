//! A backend for actor tests whose connections say nothing until the test tells
//! them to. The test takes each connection as it starts ([`Scripted::connection`]),
//! makes it emit what a real one would (QR codes with their TTLs, exhaustion,
//! pair-success, CONNECTED, a disconnect with its reason, a failure to connect),
//! and counts the connections started and still open. It can hold every close at a
//! gate until the test releases it, to catch a session mid-step. Stored credentials
//! are a set of linked ids. No socket, file or timer: time moves only when the test moves it.

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::sync::watch;

use super::{
    Backend, BackendError, BackendEvent, BoxFuture, Connection, EventSink, Identity, Outbound, PairingCodeIssued,
    QrCode, SentMessage,
};
use crate::{domain::SessionId, events::Inbox};

/// How long the test waits for a connection to start, in virtual time: a
/// connection starts while the actors handle messages, never after a timer, so
/// the wait fails as soon as the runtime would go idle without it.
const PROMPT: Duration = Duration::from_millis(1);

/// The scripted backend; cheap to clone (the test keeps one, the daemon another).
#[derive(Clone, Default)]
pub(crate) struct Scripted {
    /// Every connection started, oldest first (a watch: readable without a lock
    /// from the backend's sync methods, awaitable from the test).
    lines: Arc<watch::Sender<Vec<Line>>>,
    /// The sessions with stored credentials.
    linked: Arc<watch::Sender<BTreeSet<SessionId>>>,
    /// The gate of closes: what the test holds, and how many wait at it.
    gate: Gate,
}

/// While `held`, closing a connection waits (and the session actor with it).
#[derive(Clone, Default)]
struct Gate {
    /// Whether closes wait.
    held: Arc<watch::Sender<bool>>,
    /// Closes waiting now.
    waiting: Arc<watch::Sender<usize>>,
}

/// One connection, as the test drives it.
#[derive(Clone)]
pub(crate) struct Line {
    /// Its number among all connections, from 1.
    number: usize,
    /// The session it belongs to.
    session: SessionId,
    /// Where its events go: the session actor.
    sink: EventSink,
    /// Cleared once the session closes (or drops) it.
    open: Arc<AtomicBool>,
}

impl Scripted {
    /// Connections started so far.
    pub fn started(&self) -> usize {
        self.lines.borrow().len()
    }

    /// The session of each connection started, oldest first.
    pub fn sessions_started(&self) -> Vec<SessionId> {
        self.lines.borrow().iter().map(|l| l.session.clone()).collect()
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lines.borrow().iter().filter(|l| l.is_open()).count()
    }

    /// The `n`th connection (from 1), once it has started; panics when it does not
    /// start before the runtime would go idle.
    pub async fn connection(&self, n: usize) -> Line {
        let mut lines = self.lines.subscribe();
        let started = tokio::time::timeout(PROMPT, lines.wait_for(|l| l.len() >= n)).await;
        match started {
            Ok(Ok(lines)) => lines[n - 1].clone(),
            _ => panic!("connection {n} did not start (started: {})", self.started()),
        }
    }

    /// From now on, closing a connection waits until [`Scripted::release_closes`].
    pub fn hold_closes(&self) {
        self.gate.held.send_replace(true);
    }

    /// Lets held closes (and later ones) finish.
    pub fn release_closes(&self) {
        self.gate.held.send_replace(false);
    }

    /// Waits until a close is held at the gate; panics when none is before the
    /// runtime would go idle.
    pub async fn close_held(&self) {
        let mut waiting = self.gate.waiting.subscribe();
        let held = tokio::time::timeout(PROMPT, waiting.wait_for(|n| *n > 0)).await;
        assert!(matches!(held, Ok(Ok(_))), "no close is held");
    }

    /// Stores credentials for `session`, as a pairing would.
    pub fn link(&self, session: &SessionId) {
        self.linked.send_modify(|linked| {
            linked.insert(session.clone());
        });
    }
}

impl Line {
    /// The session it belongs to.
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// Whether the session still holds it open.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    /// Delivers `event` to the session (queued in its mailbox before this returns).
    pub fn emit(&self, event: BackendEvent) {
        (self.sink)(event);
    }

    /// Shows code `index` of `count`, valid `ttl`; returns its text, unique to this
    /// connection and index.
    pub fn qr(&self, index: u32, count: u32, ttl: Duration) -> String {
        let code = format!("ref-{}-{index},noise,identity,adv", self.number);
        self.emit(BackendEvent::Qr(QrCode {
            code: code.clone(),
            ttl,
            index,
            count,
        }));
        code
    }
}

/// The session's side of a scripted connection.
struct ScriptedConnection {
    /// The flag its `Line` reads.
    open: Arc<AtomicBool>,
    /// Where its close may wait.
    gate: Gate,
}

impl Drop for ScriptedConnection {
    fn drop(&mut self) {
        self.open.store(false, Ordering::SeqCst);
    }
}

impl Connection for ScriptedConnection {
    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut held = self.gate.held.subscribe();
            if *held.borrow_and_update() {
                self.gate.waiting.send_modify(|n| *n += 1);
                let _ = held.wait_for(|held| !held).await;
                self.gate.waiting.send_modify(|n| *n -= 1);
            }
        })
    }

    fn logout(self: Box<Self>) -> BoxFuture<'static, Result<(), BackendError>> {
        drop(self);
        Box::pin(async { Ok(()) })
    }

    fn send(&self, message: Outbound) -> BoxFuture<'static, Result<SentMessage, BackendError>> {
        let sent = SentMessage { message_id: message.id };
        Box::pin(async { Ok(sent) })
    }

    fn request_pairing_code(&self, _phone: &str) -> BoxFuture<'static, Result<PairingCodeIssued, BackendError>> {
        let issued = PairingCodeIssued {
            code: "ABCD1234".into(),
            valid_for: Duration::from_secs(160),
        };
        Box::pin(async { Ok(issued) })
    }
}

impl Backend for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn has_credentials(&self, session: &SessionId) -> bool {
        self.linked.borrow().contains(session)
    }

    fn repair(&self, _session: &SessionId) -> Option<String> {
        None
    }

    fn connect(&self, session: &SessionId, sink: EventSink, _inbox: Inbox) -> Box<dyn Connection> {
        let open = Arc::new(AtomicBool::new(true));
        self.lines.send_modify(|lines| {
            lines.push(Line {
                number: lines.len() + 1,
                session: session.clone(),
                sink,
                open: open.clone(),
            });
        });
        Box::new(ScriptedConnection {
            open,
            gate: self.gate.clone(),
        })
    }

    fn wipe(&self, session: &SessionId) -> BoxFuture<'static, Result<(), BackendError>> {
        self.linked.send_modify(|linked| {
            linked.remove(session);
        });
        Box::pin(async { Ok(()) })
    }

    fn logout_stored(&self, _session: &SessionId, _inbox: Inbox) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Who a pairing linked, as `Connected` reports it.
pub(crate) fn identity(phone_number: &str) -> Identity {
    Identity {
        phone_number: phone_number.into(),
        jid: format!("{phone_number}:1@s.whatsapp.net"),
        push_name: "Scripted".into(),
        connected_at: None,
    }
}
