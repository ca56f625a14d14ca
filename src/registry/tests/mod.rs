//! Actor-level tests: the real registry and session actors, reached only through
//! the door (`Sessions`), over a scripted in-memory backend, on tokio's paused
//! clock. The test decides when each connection shows what, and when virtual time
//! moves (`tokio::time::advance`, or awaiting a call whose only way out is a
//! timer); the session list runs in place ([`SessionDb::open_inline`]) so no write
//! lets time slip. Each rule is proven in milliseconds of real time.
//!
//! `qr` holds the QR rules (first code, rotation, exhaustion, concurrent callers,
//! timeouts, 515); `lifecycle` holds crash, restart and delete; `reads` the reads
//! answered from the registry's table; `actor` the session actor's timers and its
//! publish-before-reply rule.

mod actor;
mod backoff;
mod lifecycle;
mod qr;
mod reads;

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc, task::Context, time::Duration};

use ractor::Actor;
use tempfile::TempDir;
use tokio::{task::JoinHandle, time::Instant};

use super::{Registry, RegistryArgs, Sessions, Supervision};
use crate::{
    backend::{
        scripted::{Line, Scripted},
        BackendEvent,
    },
    domain::{QrRequest, SessionId, SessionView},
    error::SessionError,
    metrics::Metrics,
    session::actor::{SessionContext, Timeouts},
    store::{DataDir, SessionDb},
};

/// The server's bound on a new pairing connection's first code.
const QR_TIMEOUT: Duration = Duration::from_secs(30);
/// The server's bound on a lazy regeneration.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(15);
/// WhatsApp's first code lives 60 s, each next one 20 s.
const FIRST_TTL: Duration = Duration::from_secs(60);
const NEXT_TTL: Duration = Duration::from_secs(20);
/// Crashes within `CRASH_WINDOW` before a session is left FAILED.
const CRASH_BUDGET: usize = 3;
const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// The first restart comes this long after a crash.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// A daemon's core: the registry and its door over a scripted backend.
struct Daemon {
    /// The door, as every edge uses it.
    sessions: Sessions,
    /// The backend, as the test drives it.
    backend: Scripted,
    /// What the sessions share (the store, the data dir).
    ctx: Arc<SessionContext>,
    /// The data dir, removed at the end.
    _dir: TempDir,
}

impl Daemon {
    /// Starts a registry with no sessions.
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let (store, _) = SessionDb::open_inline(dir.path()).unwrap();
        let backend = Scripted::default();
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let ctx = Arc::new(SessionContext {
            backend: Arc::new(backend.clone()),
            data,
            store,
            log: crate::events::EventLog::open(dir.path(), Arc::default()).unwrap(),
            timeouts: Timeouts {
                qr: QR_TIMEOUT,
                refresh: REFRESH_TIMEOUT,
                reconnect_max: Duration::from_secs(60),
                stable_after: Duration::from_secs(30),
                outbound_ttl: Duration::from_secs(24 * 3600),
            },
            events,
            metrics: Arc::new(Metrics::default()),
            max_sessions: 100,
        });
        let sessions = Sessions::new(QR_TIMEOUT.max(REFRESH_TIMEOUT));
        let args = RegistryArgs {
            ctx: ctx.clone(),
            records: Vec::new(),
            supervision: Supervision {
                budget: CRASH_BUDGET,
                window: CRASH_WINDOW,
            },
            table: sessions.table(),
        };
        let (registry, _) = Actor::spawn(None, Registry, args).await.unwrap();
        sessions.open(registry);
        Self {
            sessions,
            backend,
            ctx,
            _dir: dir,
        }
    }

    /// Creates `id` and shows the first code of a 6-code batch on its connection
    /// (`n`th overall); returns what CreateSession answered and the connection.
    async fn create_paired(&self, id: &SessionId, n: usize) -> (SessionView, Line) {
        let creating = self.spawn_create(id, fresh());
        let line = self.backend.connection(n).await;
        line.qr(1, 6, FIRST_TTL);
        let view = creating.await.unwrap().expect("create answers with the first code");
        (view, line)
    }

    /// Delivers `event` on `line` and waits until its session has handled it.
    async fn tell(&self, line: &Line, event: BackendEvent) {
        line.emit(event);
        let _ = self.now(line.session()).await;
    }

    /// Shows code `index` of a 6-code batch on `line`, valid `ttl`, and waits until
    /// its session has it (so its TTL counts from now); returns its text.
    async fn show(&self, line: &Line, index: u32, ttl: Duration) -> String {
        let code = line.qr(index, 6, ttl);
        let _ = self.now(line.session()).await;
        code
    }

    /// CreateSession, running on its own (it waits for a code the test shows).
    fn spawn_create(&self, id: &SessionId, request: QrRequest) -> JoinHandle<Result<SessionView, SessionError>> {
        let (sessions, id) = (self.sessions.clone(), id.clone());
        tokio::spawn(async move { sessions.create(id, labels(), request).await })
    }

    /// GetSession, running on its own.
    fn spawn_get(&self, id: &SessionId, request: QrRequest) -> JoinHandle<Result<SessionView, SessionError>> {
        let (sessions, id) = (self.sessions.clone(), id.clone());
        tokio::spawn(async move { sessions.get(id, request).await })
    }

    /// GetSession, not yet sent (see [`start_together`]).
    fn get_call(&self, id: &SessionId, request: QrRequest) -> Call<SessionView> {
        let (sessions, id) = (self.sessions.clone(), id.clone());
        Box::pin(async move { sessions.get(id, request).await })
    }

    /// The session as it is now (no waiting, no regeneration). Answered after
    /// everything the session had queued before it.
    async fn now(&self, id: &SessionId) -> Result<SessionView, SessionError> {
        self.sessions.settled(id.clone()).await
    }

    /// Asks for the session as it is until `wanted` says yes, moving virtual time a
    /// millisecond at a time, at most `bound`; returns the view, or panics with the
    /// last answer.
    async fn now_until(
        &self,
        id: &SessionId,
        bound: Duration,
        wanted: impl Fn(&Result<SessionView, SessionError>) -> bool,
    ) -> SessionView {
        let until = Instant::now() + bound;
        loop {
            let answer = self.now(id).await;
            if wanted(&answer) {
                return answer.expect("wanted an answer");
            }
            assert!(Instant::now() < until, "still {answer:?} after {bound:?}");
            tokio::time::advance(Duration::from_millis(1)).await;
        }
    }
}

/// A call through the door, not yet sent.
type Call<T> = Pin<Box<dyn Future<Output = Result<T, SessionError>> + Send>>;

/// Starts calls together: each is polled once here, which puts its request in the
/// registry's mailbox in this order before anything else can run, then it goes on
/// as a task of its own. (Spawning alone leaves the order to the scheduler.)
fn start_together<T: Send + 'static>(calls: Vec<Call<T>>) -> Vec<JoinHandle<Result<T, SessionError>>> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    calls
        .into_iter()
        .map(|mut call| {
            assert!(call.as_mut().poll(&mut cx).is_pending(), "answered before it was sent");
            tokio::spawn(call)
        })
        .collect()
}

/// A session id.
fn id(raw: &str) -> SessionId {
    SessionId::parse(raw).unwrap()
}

/// The labels every test session is created with.
fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([("team".to_owned(), "sales".to_owned())])
}

/// A caller that wants a scannable code (the defaults of GetSession).
fn fresh() -> QrRequest {
    QrRequest {
        min_validity: Duration::ZERO,
        may_refresh: true,
        deadline: None,
    }
}
