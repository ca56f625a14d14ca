//! The session actor: the only owner of one session's state. It owns the backend
//! connection, the QR expiry and first-code timers, the reconnect timer, the callers
//! waiting for a code, and publishes every change. All of its requests go through its
//! one mailbox, so they are serialized by construction. Its mailbox is in
//! `messages`, its lifecycle requests in `commands`, and how it follows its backend
//! connection and timers in `events`.

use std::{sync::Arc, time::Duration, time::SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::{
    sync::{broadcast, watch},
    time::Instant,
};
use tracing::{info, warn};

pub(crate) use super::messages::SessionMsg;
use super::{
    state::{ConnId, QrNeed, SessionState},
    waiters::{Reply, Waiter, Waiters},
    watchers::Watchers,
};
use crate::{
    backend::{Backend, Connection, EventSink},
    domain::{QrRequest, SessionEvent, SessionId, SessionView, Status},
    error::SessionError,
    events::{Body, EventLog, Inbox, NewEvent},
    metrics::{Metrics, SessionCount},
    store::{write_failed, DataDir, SessionDb, SessionRecord},
};

/// The stop reason of a session that deleted itself: its supervisor forgets it.
pub const DELETED: &str = "deleted";
/// The stop reason of a new session whose record could not be stored: its
/// supervisor forgets it (the caller got the error).
pub const NOT_CREATED: &str = "not created";

/// Server-side bounds and delays.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// How long a new pairing connection (create, refresh) may take to show a code.
    pub qr: Duration,
    /// How long a lazy regeneration (get) may take to show a code.
    pub refresh: Duration,
    /// The cap of the reconnect backoff.
    pub reconnect_max: Duration,
    /// How long a connection must stay up for the backoff to start over.
    pub stable_after: Duration,
}

/// What every session shares.
pub struct SessionContext {
    /// The WhatsApp implementation.
    pub backend: Arc<dyn Backend>,
    /// Where session folders live.
    pub data: DataDir,
    /// The session list on disk.
    pub store: SessionDb,
    /// The event log (status changes go in; connections deliver messages to it).
    pub log: EventLog,
    /// Bounds and delays.
    pub timeouts: Timeouts,
    /// Every session's changes, for WatchSessions.
    pub events: broadcast::Sender<SessionEvent>,
    /// The daemon's metrics.
    pub metrics: Arc<Metrics>,
    /// The most sessions the registry holds; creating more is refused.
    pub max_sessions: usize,
}

/// How a session actor starts.
pub(crate) enum Boot {
    /// Just created: store the record, then start pairing (or resume if credentials
    /// exist) and answer the first caller. A record that cannot be stored is the
    /// caller's error, and the actor stops with `NOT_CREATED`.
    New {
        /// The caller of CreateSession: what it wants of the QR, and its answer.
        first: Option<(QrRequest, Reply)>,
    },
    /// Restored at daemon startup (its state already rebuilt from its record).
    Restored,
    /// Started again after a crash (or afresh): it loads its own record; with
    /// `gave_up`, it stays FAILED with that reason.
    Reload {
        /// Why it gave up (the restart budget is spent).
        gave_up: Option<String>,
    },
    /// It was restarting when a delete came: delete at once.
    Delete(RpcReplyPort<Result<(), SessionError>>),
}

/// Arguments of a session actor.
pub(crate) struct SessionArgs {
    /// The starting state.
    pub state: SessionState,
    /// Its stored record.
    pub record: SessionRecord,
    /// How it starts.
    pub boot: Boot,
    /// Shared services.
    pub ctx: Arc<SessionContext>,
    /// Where snapshots are published (the registry reads them).
    pub published: watch::Sender<SessionView>,
}

/// The session actor (stateless; its state is `SessionRun`).
pub(crate) struct SessionActor;

/// A running session.
pub(crate) struct SessionRun {
    /// The rules and data.
    pub(super) state: SessionState,
    /// What is stored on disk.
    pub(super) record: SessionRecord,
    /// Shared services.
    pub(super) ctx: Arc<SessionContext>,
    /// Its own address, for timers and backend events.
    pub(super) myself: ActorRef<SessionMsg>,
    /// The live backend connection (matches `state.conn()`).
    pub(super) conn: Option<Box<dyn Connection>>,
    /// Attached watch streams.
    pub(super) watchers: Watchers,
    /// Deleted (or never created): publish nothing more.
    pub(super) deleted: bool,
    /// Callers waiting for a code.
    pub(super) waiters: Waiters,
    /// The QR expiry timer.
    pub(super) qr_timer: Option<AbortHandle>,
    /// The first-code timer.
    pub(super) first_qr_timer: Option<AbortHandle>,
    /// The reconnect (or stable-connection) timer.
    pub(super) reconnect_timer: Option<AbortHandle>,
    /// Where snapshots go.
    published: watch::Sender<SessionView>,
    /// The status last logged.
    logged_status: Status,
    /// The status change last written to the event log.
    journaled: Option<crate::proto::StatusChange>,
    /// How it starts (taken by `post_start`).
    boot: Option<Boot>,
    /// Its place in the sessions-by-status metric.
    counted: SessionCount,
}

/// Answers a little before the caller's deadline, so it gets our message rather than
/// its own timeout.
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

impl Actor for SessionActor {
    type Msg = SessionMsg;
    type State = SessionRun;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionRun, ActorProcessingErr> {
        let logged_status = args.state.view().status;
        // The state it starts in is not a change: only what follows goes to the log.
        let journaled = Some(args.state.view().status_change());
        let counted = SessionCount::new(args.ctx.metrics.clone(), logged_status);
        Ok(SessionRun {
            state: args.state,
            record: args.record,
            ctx: args.ctx,
            myself,
            conn: None,
            watchers: Watchers::default(),
            deleted: false,
            waiters: Waiters::default(),
            qr_timer: None,
            first_qr_timer: None,
            reconnect_timer: None,
            published: args.published,
            logged_status,
            journaled,
            boot: Some(args.boot),
            counted,
        })
    }

    async fn post_start(&self, _: ActorRef<SessionMsg>, run: &mut SessionRun) -> Result<(), ActorProcessingErr> {
        run.boot().await;
        if !run.deleted {
            run.settle().await;
            run.publish();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<SessionMsg>,
        msg: SessionMsg,
        run: &mut SessionRun,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SessionMsg::Get { request, reply } => {
                let bound = run.ctx.timeouts.refresh;
                run.get(request, reply, bound).await;
            }
            SessionMsg::RefreshQr { request, reply } => run.refresh(request, reply).await,
            SessionMsg::Backend { conn, event } => run.on_backend(conn, event).await?,
            SessionMsg::FirstQrDue(conn) => run.first_qr_due(conn).await,
            SessionMsg::QrExpired { generation, index } => run.qr_expired(generation, index).await,
            SessionMsg::WaiterDue(id) => run.waiter_due(id).await,
            SessionMsg::Reconnect => run.reconnect(),
            SessionMsg::Stable(conn) => run.stable(conn),
            SessionMsg::Watch { keep_fresh, reply } => {
                let _ = reply.send(Ok(run.watch(keep_fresh)));
            }
            SessionMsg::WatcherGone(id) => run.watchers.release(id),
            SessionMsg::Disconnect(reply) => {
                let _ = reply.send(run.disconnect().await);
            }
            SessionMsg::Connect { request, reply } => run.connect_session(request, reply).await,
            SessionMsg::Logout(reply) => {
                let _ = reply.send(run.logout().await);
            }
            SessionMsg::Delete(done) => run.delete(done).await,
            SessionMsg::SendText { to, text, reply } => run.send_text(to, text, reply),
            SessionMsg::Sent => run.state.mark_active(SystemTime::now()),
            SessionMsg::RequestPairingCode { phone, reply } => run.request_pairing_code(phone, reply).await,
            SessionMsg::Crash { panic, reply } => {
                warn!(session_id = %run.state.view().id, panic, "crashing on request (EmulatorService.CrashSession)");
                let _ = reply.send(Ok(()));
                if panic {
                    panic!("session crashed on request (EmulatorService.CrashSession)");
                }
                return Err("session crashed on request (EmulatorService.CrashSession)".into());
            }
        }
        if run.deleted {
            return Ok(());
        }
        run.settle().await;
        run.publish();
        Ok(())
    }

    async fn post_stop(&self, _: ActorRef<SessionMsg>, run: &mut SessionRun) -> Result<(), ActorProcessingErr> {
        for timer in [&run.qr_timer, &run.first_qr_timer, &run.reconnect_timer]
            .into_iter()
            .flatten()
        {
            timer.abort();
        }
        let stopping = SessionError::Unavailable("the session is stopping: retry in a moment".into());
        for waiter in run.waiters.drain() {
            waiter.finish(Err(stopping.clone()));
        }
        run.close_conn().await;
        Ok(())
    }
}

impl SessionRun {
    pub(super) fn now() -> (Instant, SystemTime) {
        (Instant::now(), SystemTime::now())
    }

    /// The first step after (re)start.
    async fn boot(&mut self) {
        let id = self.state.view().id.clone();
        match self.boot.take() {
            Some(Boot::New { first }) => self.boot_new(first).await,
            // Its credentials were checked at restore: CONNECTING means linked and running.
            Some(Boot::Restored) if self.state.view().status == Status::Connecting => {
                self.open_resume(Status::Connecting);
            }
            Some(Boot::Reload { gave_up }) => self.reload(&id, gave_up).await,
            Some(Boot::Delete(done)) => self.delete(done).await,
            Some(Boot::Restored) | None => {}
        }
    }

    /// Stores a new session's record, then starts it and answers its first caller.
    async fn boot_new(&mut self, first: Option<(QrRequest, Reply)>) {
        let id = self.state.view().id.clone();
        if let Err(e) = self.ctx.store.create(self.record.clone()).await {
            warn!(session_id = %id, error = %e, "a new session's record could not be stored; nothing was created");
            if let Some((_, reply)) = first {
                let _ = reply.send(Err(write_failed(&self.ctx.data, &id, &e)));
            }
            self.deleted = true;
            self.myself.stop(Some(NOT_CREATED.into()));
            return;
        }
        if self.ctx.backend.has_credentials(&id) {
            self.open_resume(Status::Connecting);
        } else {
            self.open_pairing(self.ctx.timeouts.qr).await;
        }
        if let Some((request, reply)) = first {
            // The creator waits as long as its new connection may take: the QR timeout.
            self.get(request, reply, self.ctx.timeouts.qr).await;
        }
    }

    /// Loads its own record after a crash and rebuilds its state from it; an
    /// unreadable record leaves it FAILED with the cause.
    async fn reload(&mut self, id: &SessionId, gave_up: Option<String>) {
        let last = self.state.view().clone();
        let loaded = self.ctx.store.load(id).await;
        let linked = self.ctx.backend.has_credentials(id);
        let (record, unreadable) = match loaded {
            Ok(record) => (record.unwrap_or_else(|| self.record.clone()), None),
            Err(e) => {
                warn!(session_id = %id, error = %e, "the session's record cannot be read");
                let why = format!("its stored record cannot be read ({e}); call ConnectSession to retry");
                (self.record.clone(), Some(why))
            }
        };
        self.state = SessionState::at_rest(&record, linked);
        self.state.continue_from(&last);
        self.record = record;
        if let Some(reason) = gave_up.or(unreadable) {
            warn!(session_id = %id, %reason, "session left FAILED");
            self.state.give_up(&reason);
            return;
        }
        if self.state.view().status == Status::Connecting {
            self.open_resume(Status::Connecting);
        }
    }

    /// Answers now, or registers a waiter for at most `bound` (starting a new
    /// generation if needed).
    async fn get(&mut self, request: QrRequest, reply: Reply, bound: Duration) {
        let (now, _) = Self::now();
        match self.state.qr_need(now, request.min_validity, request.may_refresh) {
            QrNeed::Ready => {
                let _ = reply.send(Ok(self.state.view().clone()));
            }
            QrNeed::Wait => self.wait(request, reply, bound),
            QrNeed::Regenerate => {
                self.open_pairing(self.ctx.timeouts.refresh).await;
                self.wait(request, reply, self.ctx.timeouts.refresh);
            }
            QrNeed::OutOfRange { longest } => {
                let _ = reply.send(Err(out_of_range(request.min_validity, longest)));
            }
        }
    }

    async fn refresh(&mut self, request: QrRequest, reply: Reply) {
        if let Err(linked) = self.state.refuse_if_linked("a qr code") {
            let _ = reply.send(Err(linked));
            return;
        }
        self.open_pairing(self.ctx.timeouts.qr).await;
        self.wait(request, reply, self.ctx.timeouts.qr);
    }

    /// Parks a caller until the state settles, bounded by `bound` and its deadline.
    pub(super) fn wait(&mut self, request: QrRequest, reply: Reply, bound: Duration) {
        let now = Instant::now();
        let server_deadline = now + bound;
        let callers = request.deadline.map(|d| d.checked_sub(DEADLINE_MARGIN).unwrap_or(d));
        let (deadline, callers_deadline) = match callers {
            Some(d) if d < server_deadline => (d, true),
            _ => (server_deadline, false),
        };
        let id = self.waiters.next_id();
        let myself = self.myself.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            let _ = myself.cast(SessionMsg::WaiterDue(id));
        })
        .abort_handle();
        self.waiters.push(Waiter {
            id,
            request,
            reply,
            deadline,
            callers_deadline,
            timer,
        });
    }

    /// Answers the waiters the state now satisfies; starts one regeneration if some
    /// need it.
    async fn settle(&mut self) {
        if self.state.watchers_need_fresh_qr(self.watchers.want_fresh_qr()) {
            info!(session_id = %self.state.view().id, "a watcher keeps the qr fresh: regenerating");
            self.open_pairing(self.ctx.timeouts.refresh).await;
        }
        if self.waiters.is_empty() {
            return;
        }
        let now = Instant::now();
        let state = &self.state;
        let regenerate = self
            .waiters
            .any(|r| state.qr_need(now, r.min_validity, r.may_refresh) == QrNeed::Regenerate);
        if regenerate {
            self.open_pairing(self.ctx.timeouts.refresh).await;
        }
        let state = &self.state;
        self.waiters
            .answer_where(|r| match state.qr_need(now, r.min_validity, r.may_refresh) {
                QrNeed::Ready => Some(Ok(state.view().clone())),
                QrNeed::OutOfRange { longest } => Some(Err(out_of_range(r.min_validity, longest))),
                QrNeed::Wait | QrNeed::Regenerate => None,
            });
    }

    async fn waiter_due(&mut self, id: u64) {
        let conn_due = self
            .state
            .conn()
            .and_then(|c| c.first_qr_deadline.map(|d| (c.id, d)))
            .filter(|(_, d)| *d <= Instant::now());
        if let Some((conn, _)) = conn_due {
            self.first_qr_due(conn).await;
        }
        let Some(waiter) = self.waiters.take(id) else {
            return;
        };
        let session = &self.state.view().id;
        let message = if waiter.callers_deadline {
            format!(
                "the call's deadline passed before session {session} had a qr code; it keeps pairing: call GetSession again"
            )
        } else {
            format!("session {session} had no qr code in time: call GetSession or RefreshQr again")
        };
        waiter.finish(Err(SessionError::DeadlineExceeded(message)));
    }

    /// Starts a pairing connection (closing any other first): a new generation.
    pub(super) async fn open_pairing(&mut self, timeout: Duration) {
        self.close_conn().await;
        let (now, sys) = Self::now();
        let conn = self.state.open_pairing(now, sys, timeout);
        let myself = self.myself.clone();
        replace_timer(
            &mut self.first_qr_timer,
            myself.send_after(timeout, move || SessionMsg::FirstQrDue(conn)),
        );
        let generation = self.state.generation();
        self.ctx.metrics.pairing_connection_started(generation);
        info!(session_id = %self.state.view().id, conn, generation, "pairing connection started");
        self.connect(conn);
    }

    /// Starts a connection with stored credentials.
    pub(super) fn open_resume(&mut self, status: Status) {
        let conn = self.state.open_resume(status, SystemTime::now());
        info!(session_id = %self.state.view().id, conn, "connecting with stored credentials");
        self.connect(conn);
    }

    fn connect(&mut self, conn: ConnId) {
        let myself = self.myself.clone();
        let sink: EventSink = Arc::new(move |event| {
            let _ = myself.cast(SessionMsg::Backend { conn, event });
        });
        let id = &self.state.view().id;
        let inbox = Inbox::new(self.ctx.log.clone(), id.as_str());
        self.conn = Some(self.ctx.backend.connect(id, sink, inbox));
    }

    /// Closes the live connection (without logging out) and waits for it.
    pub(super) async fn close_conn(&mut self) {
        self.state.detach_conn();
        if let Some(conn) = self.conn.take() {
            conn.close().await;
        }
    }

    /// Stops a pending reconnect.
    pub(super) fn cancel_reconnect(&mut self) {
        release_timer(&mut self.reconnect_timer);
    }

    /// Writes the record; a failure is the caller's error.
    pub(super) async fn save(&self) -> Result<(), SessionError> {
        let id = &self.state.view().id;
        self.ctx
            .store
            .save(self.record.clone())
            .await
            .map_err(|e| write_failed(&self.ctx.data, id, &e))
    }

    /// Writes the record after something the session did on its own (no caller to
    /// tell): a failure shows in `last_error`, the session goes on.
    pub(super) async fn save_or_note(&mut self) {
        if let Err(error) = self.save().await {
            warn!(session_id = %self.state.view().id, %error, "the session's record could not be stored");
            self.state.note_error(error.to_string());
        }
    }

    pub(super) fn fail_waiters(&mut self, error: SessionError) {
        for waiter in self.waiters.drain() {
            waiter.finish(Err(error.clone()));
        }
    }

    /// Publishes the snapshot if it changed, and logs a status change once.
    fn publish(&mut self) {
        let view = self.state.view();
        self.counted.set(view.status);
        if view.status != self.logged_status {
            info!(
                session_id = %view.id,
                from = ?self.logged_status,
                to = ?view.status,
                reason = ?view.disconnect_reason,
                revision = view.revision,
                "session status changed"
            );
            self.logged_status = view.status;
        }
        let change = view.status_change();
        if self.journaled.as_ref() != Some(&change) {
            let id = view.id.as_str();
            self.ctx
                .log
                .append_detached(NewEvent::now(id, Body::Status(change.clone())));
            self.journaled = Some(change);
        }
        let changed = self.published.borrow().revision != view.revision;
        if changed {
            self.published.send_replace(view.clone());
            self.watchers.broadcast(view);
            let event = SessionEvent {
                view: view.clone(),
                deleted: false,
            };
            let _ = self.ctx.events.send(event);
        }
    }
}

/// OUT_OF_RANGE: no code lives `wanted`; the longest issued lives `longest`.
fn out_of_range(wanted: Duration, longest: Duration) -> SessionError {
    SessionError::OutOfRange(format!(
        "min_qr_validity {} is longer than any qr code lives: the longest whatsapp issues is valid {}; ask for at most that",
        humantime::format_duration(wanted),
        humantime::format_duration(longest)
    ))
}

/// Cancels the timer in `slot` and lets its task go (a held handle keeps a finished
/// task's memory).
pub(super) fn release_timer(slot: &mut Option<AbortHandle>) {
    if let Some(timer) = slot.take() {
        timer.abort();
    }
}

/// Keeps `timer` in `slot`, cancelling the one it replaces.
pub(super) fn replace_timer<T>(slot: &mut Option<AbortHandle>, timer: JoinHandle<T>) {
    if let Some(old) = slot.replace(timer.abort_handle()) {
        old.abort();
    }
}
