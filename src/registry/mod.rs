//! The registry actor: maps session ids to their actors, spawns them linked to
//! itself, forwards each request with the caller's reply port (never awaiting a
//! child), and supervises: a session that crashes is restarted from its stored record
//! with capped exponential backoff and a restart budget; past the budget it stays
//! FAILED. Other sessions never notice.

mod restore;
mod supervision;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, SystemTime},
};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::{
    sync::{broadcast, watch},
    time::Instant,
};
use tracing::{error, info, warn};

pub use supervision::{CrashBudget, Supervision};

use self::restore::{gave_up_state, restored_state, state_at_startup};
use crate::{
    error::SessionError,
    session::{
        actor::{Boot, SessionActor, SessionArgs, SessionContext, SessionMsg},
        state::SessionState,
        waiters::{QrRequest, Reply},
        SessionEvent, SessionId, SessionView, Status,
    },
    store::{finish_wipe, unix_ms, SessionRecord},
};

/// What the registry starts with.
pub struct RegistryArgs {
    /// What every session shares.
    pub ctx: Arc<SessionContext>,
    /// The records to restore, read from the session list.
    pub records: Vec<SessionRecord>,
    /// The restart budget.
    pub supervision: Supervision,
}

/// Where the gRPC services find the registry: empty until the restore is done, and
/// requests meanwhile are refused as UNAVAILABLE (safe to retry).
#[derive(Debug, Clone, Default)]
pub struct RegistryHandle(Arc<std::sync::OnceLock<ActorRef<RegistryMsg>>>);

impl RegistryHandle {
    /// The registry is up: requests go through from now on.
    pub fn set(&self, registry: ActorRef<RegistryMsg>) {
        let _ = self.0.set(registry);
    }

    /// The registry, or UNAVAILABLE while sessions are being restored.
    pub fn get(&self) -> Result<&ActorRef<RegistryMsg>, SessionError> {
        self.0.get().ok_or_else(|| {
            SessionError::Unavailable("wa-sessiond is starting and restoring its sessions: retry in a moment".into())
        })
    }
}

/// Sessions whose actors start together at startup.
const RESTORE_BATCH: usize = 256;

/// Every session's current state and the subscription to their changes.
pub type WatchAll = (Vec<SessionView>, broadcast::Receiver<SessionEvent>);

/// One page of sessions and the token of the next.
pub type Page = (Vec<SessionView>, Option<String>);

/// The registry's mailbox.
pub enum RegistryMsg {
    /// Create a session (or return the existing one as it is).
    Create {
        /// The id.
        id: SessionId,
        /// The caller's labels (used only when new).
        labels: BTreeMap<String, String>,
        /// What the caller wants of the QR.
        request: QrRequest,
        /// The answer.
        reply: Reply,
    },
    /// Forward a request to one session (NOT_FOUND when unknown or being deleted).
    Forward {
        /// The id.
        id: SessionId,
        /// The request, with the caller's reply port.
        msg: SessionMsg,
    },
    /// Delete a session: it logs out, removes its files, then sends `Deleted`.
    Delete {
        /// The id.
        id: SessionId,
        /// The answer (sent once the session is forgotten).
        reply: RpcReplyPort<Result<(), SessionError>>,
    },
    /// A session finished deleting itself: forget it, then answer the caller.
    Deleted {
        /// The id.
        id: SessionId,
        /// Its last state.
        last: Box<SessionView>,
        /// The caller of Delete.
        reply: RpcReplyPort<Result<(), SessionError>>,
    },
    /// Every session's current state and a subscription to their changes.
    WatchAll {
        /// The answer.
        reply: RpcReplyPort<Result<WatchAll, SessionError>>,
    },
    /// One page of sessions, ordered by id, after `after`.
    List {
        /// Only this status, if set.
        status: Option<Status>,
        /// At most this many.
        page_size: usize,
        /// Start after this id.
        after: Option<SessionId>,
        /// The answer.
        reply: RpcReplyPort<Result<Page, SessionError>>,
    },
    /// The backoff after a crash passed: start the session again.
    Restart(SessionId),
}

/// A session the registry knows.
struct Entry {
    /// Its actor; None while a restart is pending.
    actor: Option<ActorRef<SessionMsg>>,
    /// Its latest snapshot.
    view: watch::Receiver<SessionView>,
    /// The publishing side, handed to each incarnation of the actor.
    publisher: watch::Sender<SessionView>,
    /// Its recent crashes.
    crashes: CrashBudget,
    /// Being deleted: requests get NOT_FOUND.
    deleting: bool,
    /// Left FAILED after too many crashes: ConnectSession or RefreshQr start it afresh.
    gave_up: bool,
}

impl Entry {
    fn new(view: SessionView, supervision: Supervision) -> Self {
        let (publisher, receiver) = watch::channel(view);
        Self {
            actor: None,
            view: receiver,
            publisher,
            crashes: CrashBudget::new(supervision),
            deleting: false,
            gave_up: false,
        }
    }
}

/// The registry actor.
pub struct Registry;

/// The registry's state.
pub struct RegistryState {
    ctx: Arc<SessionContext>,
    sessions: BTreeMap<SessionId, Entry>,
    by_actor: HashMap<ActorId, SessionId>,
    supervision: Supervision,
}

impl Actor for Registry {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = RegistryArgs;

    /// Restores every session before the registry takes its first request (so
    /// `Actor::spawn` returning means the restore is done).
    async fn pre_start(
        &self,
        myself: ActorRef<RegistryMsg>,
        args: RegistryArgs,
    ) -> Result<RegistryState, ActorProcessingErr> {
        let mut state = RegistryState {
            ctx: args.ctx,
            sessions: BTreeMap::new(),
            by_actor: HashMap::new(),
            supervision: args.supervision,
        };
        let total = args.records.len();
        let started = Instant::now();
        let mut progress = Instant::now();
        let mut records = args.records.into_iter().peekable();
        let mut done = 0;
        while records.peek().is_some() {
            // Actors of a batch start together: each spawn waits for its pre_start.
            let mut spawning = tokio::task::JoinSet::new();
            for record in records.by_ref().take(RESTORE_BATCH) {
                let id = SessionId::parse(&record.id)?;
                let restored = state_at_startup(&record, &state.ctx);
                let entry = Entry::new(restored.view().clone(), state.supervision);
                state.sessions.insert(id.clone(), entry);
                let args = state.args_for(&myself, &id, record, Boot::Restored, restored);
                let parent = myself.get_cell();
                spawning.spawn(async move { (id, Actor::spawn_linked(None, SessionActor, args, parent).await) });
            }
            while let Some(spawned) = spawning.join_next().await {
                let (id, spawned) = spawned?;
                state.register(&id, spawned?.0);
                done += 1;
            }
            if progress.elapsed() >= Duration::from_secs(2) {
                info!(restored = done, total, "restoring sessions");
                progress = Instant::now();
            }
        }
        info!(
            sessions = total,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "sessions restored"
        );
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<RegistryMsg>,
        msg: RegistryMsg,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RegistryMsg::Create {
                id,
                labels,
                request,
                reply,
            } => {
                if is_deleting(state, &id) {
                    let message = format!("session {id} is being deleted: retry in a moment");
                    let _ = reply.send(Err(SessionError::Unavailable(message)));
                    return Ok(());
                }
                if !state.sessions.contains_key(&id) {
                    if state.sessions.len() >= state.ctx.max_sessions {
                        let _ = reply.send(Err(SessionError::session_limit(state.ctx.max_sessions)));
                        return Ok(());
                    }
                    state.create(&myself, &id, labels).await?;
                }
                state.forward(&id, SessionMsg::Get { request, reply });
            }
            RegistryMsg::Forward { id, msg } => {
                if state.wants_fresh_start(&id, &msg) {
                    state.start_afresh(&myself, &id).await?;
                }
                state.forward(&id, msg);
            }
            RegistryMsg::Delete { id, reply } => state.delete(&id, reply).await,
            RegistryMsg::Deleted { id, last, reply } => {
                state.sessions.remove(&id);
                let _ = state.ctx.events.send(SessionEvent {
                    view: *last,
                    deleted: true,
                });
                let _ = reply.send(Ok(()));
            }
            RegistryMsg::WatchAll { reply } => {
                let events = state.ctx.events.subscribe();
                let current = state.sessions.values().map(|e| e.view.borrow().clone()).collect();
                let _ = reply.send(Ok((current, events)));
            }
            RegistryMsg::List {
                status,
                page_size,
                after,
                reply,
            } => {
                let _ = reply.send(Ok(state.page(status, page_size, after.as_ref())));
            }
            RegistryMsg::Restart(id) => state.restart(&myself, &id).await?,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RegistryMsg>,
        event: SupervisionEvent,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, failure) => {
                let Some(id) = state.by_actor.remove(&cell.get_id()) else {
                    return Ok(());
                };
                error!(session_id = %id, error = %failure, "session crashed");
                state.ctx.metrics.session_crashed();
                state.schedule_restart(&myself, &id, &failure.to_string());
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.by_actor.remove(&cell.get_id());
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(&self, myself: ActorRef<RegistryMsg>, _: &mut RegistryState) -> Result<(), ActorProcessingErr> {
        // The caller bounds the whole shutdown by --shutdown-grace.
        myself.stop_children_and_wait(Some("shutdown".into()), None).await;
        Ok(())
    }
}

impl RegistryState {
    async fn create(
        &mut self,
        myself: &ActorRef<RegistryMsg>,
        id: &SessionId,
        labels: BTreeMap<String, String>,
    ) -> Result<(), ActorProcessingErr> {
        // Kept to the millisecond, as stored: the session is created at the same
        // instant before and after a restart.
        let record = SessionRecord {
            id: id.to_string(),
            labels: labels.clone(),
            created_at_ms: unix_ms(SystemTime::now()),
            ..Default::default()
        };
        let view = SessionState::new(id.clone(), labels, record.created_at())
            .view()
            .clone();
        self.sessions.insert(id.clone(), Entry::new(view, self.supervision));
        info!(session_id = %id, "session created");
        self.spawn(myself, id, record, Boot::New).await
    }

    /// Spawns an incarnation of a session's actor, continuing its revisions.
    async fn spawn(
        &mut self,
        myself: &ActorRef<RegistryMsg>,
        id: &SessionId,
        record: SessionRecord,
        boot: Boot,
    ) -> Result<(), ActorProcessingErr> {
        let state = match &boot {
            Boot::New => SessionState::new(id.clone(), record.labels.clone(), record.created_at()),
            Boot::Restored => restored_state(&record, self.ctx.backend.has_credentials(id)),
            Boot::GaveUp(reason) => gave_up_state(&record, reason),
        };
        self.launch(myself, id, record, boot, state).await
    }

    /// Spawns an incarnation from a prepared state, continuing its revisions.
    async fn launch(
        &mut self,
        myself: &ActorRef<RegistryMsg>,
        id: &SessionId,
        record: SessionRecord,
        boot: Boot,
        state: SessionState,
    ) -> Result<(), ActorProcessingErr> {
        if !self.sessions.contains_key(id) {
            return Ok(());
        }
        let args = self.args_for(myself, id, record, boot, state);
        let (actor, _) = Actor::spawn_linked(None, SessionActor, args, myself.get_cell()).await?;
        self.register(id, actor);
        Ok(())
    }

    /// The arguments of a known session's next actor, continuing its revisions.
    fn args_for(
        &self,
        myself: &ActorRef<RegistryMsg>,
        id: &SessionId,
        record: SessionRecord,
        boot: Boot,
        mut state: SessionState,
    ) -> SessionArgs {
        let entry = &self.sessions[id];
        state.continue_revisions(entry.view.borrow().revision);
        SessionArgs {
            state,
            record,
            boot,
            ctx: self.ctx.clone(),
            published: entry.publisher.clone(),
            registry: myself.clone(),
        }
    }

    /// Notes a session's running actor.
    fn register(&mut self, id: &SessionId, actor: ActorRef<SessionMsg>) {
        self.by_actor.insert(actor.get_id(), id.clone());
        if let Some(entry) = self.sessions.get_mut(id) {
            entry.actor = Some(actor);
        }
    }

    /// Sends a request to a session with the caller's reply port.
    fn forward(&self, id: &SessionId, msg: SessionMsg) {
        let Some(entry) = self.sessions.get(id).filter(|e| !e.deleting) else {
            return msg.refuse(SessionError::NotFound(id.to_string()));
        };
        let Some(actor) = &entry.actor else {
            let message = format!("session {id} is restarting after a crash: retry in a moment");
            return msg.refuse(SessionError::Unavailable(message));
        };
        if let Err(ractor::MessagingErr::SendErr(msg)) = actor.cast(msg) {
            warn!(session_id = %id, "session mailbox closed");
            msg.refuse(SessionError::Unavailable(format!(
                "session {id} is stopping: retry in a moment"
            )));
        }
    }

    /// Starts deleting a session; it answers through `Deleted`.
    async fn delete(&mut self, id: &SessionId, reply: RpcReplyPort<Result<(), SessionError>>) {
        let Some(entry) = self.sessions.get_mut(id).filter(|e| !e.deleting) else {
            let _ = reply.send(Err(SessionError::NotFound(id.to_string())));
            return;
        };
        entry.deleting = true;
        if let Some(actor) = &entry.actor {
            if let Err(ractor::MessagingErr::SendErr(SessionMsg::Delete(reply))) = actor.cast(SessionMsg::Delete(reply))
            {
                entry.deleting = false;
                let _ = reply.send(Err(SessionError::Unavailable(format!(
                    "session {id} is stopping: retry"
                ))));
            }
            return;
        }
        // Restarting after a crash: no actor to do it, so forget and wipe here.
        let last = entry.view.borrow().clone();
        if let Err(e) = self.ctx.store.delete(id).await {
            let _ = reply.send(Err(SessionError::Internal(format!(
                "could not delete the session: {e}"
            ))));
            return;
        }
        // Past the tombstone the session is gone, whatever the file system says.
        finish_wipe(&self.ctx.data, &self.ctx.store, id).await;
        self.sessions.remove(id);
        let _ = self.ctx.events.send(SessionEvent {
            view: last,
            deleted: true,
        });
        let _ = reply.send(Ok(()));
    }

    fn page(&self, status: Option<Status>, page_size: usize, after: Option<&SessionId>) -> Page {
        use std::ops::Bound::{Excluded, Unbounded};
        let start = after.map_or(Unbounded, Excluded);
        let mut matching = self
            .sessions
            .range((start, Unbounded))
            .map(|(_, entry)| entry.view.borrow().clone())
            .filter(|view| status.is_none_or(|s| view.status == s));
        let page: Vec<SessionView> = matching.by_ref().take(page_size).collect();
        let more = matching.next().is_some();
        let next = more.then(|| page.last().map(|v| v.id.to_string())).flatten();
        (page, next)
    }

    fn schedule_restart(&mut self, myself: &ActorRef<RegistryMsg>, id: &SessionId, cause: &str) {
        let Some(entry) = self.sessions.get_mut(id).filter(|e| !e.deleting) else {
            return;
        };
        entry.actor = None;
        let delay = entry.crashes.record(Instant::now(), cause);
        let id = id.clone();
        myself.send_after(delay, move || RegistryMsg::Restart(id));
    }

    async fn restart(&mut self, myself: &ActorRef<RegistryMsg>, id: &SessionId) -> Result<(), ActorProcessingErr> {
        let Some(entry) = self.sessions.get(id) else {
            return Ok(());
        };
        let (record, unreadable) = self.stored_record(id).await;
        let gave_up = entry.crashes.exhausted(Instant::now()) || unreadable.is_some();
        let boot = if let Some(why) = unreadable {
            Boot::GaveUp(why)
        } else if gave_up {
            let Supervision { budget, window } = self.supervision;
            Boot::GaveUp(format!(
                "the session crashed {budget} times within {}, last with: {}; see the logs, then call ConnectSession or RefreshQr to start it afresh",
                humantime::format_duration(window),
                entry.crashes.last_cause()
            ))
        } else {
            Boot::Restored
        };
        if let Some(entry) = self.sessions.get_mut(id) {
            entry.gave_up = gave_up;
        }
        info!(session_id = %id, gave_up, "restarting session");
        self.ctx.metrics.session_restarted();
        self.spawn(myself, id, record, boot).await
    }

    /// Whether `msg` asks a session left FAILED after its crashes to start again.
    fn wants_fresh_start(&self, id: &SessionId, msg: &SessionMsg) -> bool {
        let starts = matches!(msg, SessionMsg::Connect { .. } | SessionMsg::RefreshQr { .. });
        starts && self.sessions.get(id).is_some_and(|e| e.gave_up && !e.deleting)
    }

    /// Replaces a given-up session's actor with a fresh one restored from its record,
    /// its crash budget whole again.
    async fn start_afresh(&mut self, myself: &ActorRef<RegistryMsg>, id: &SessionId) -> Result<(), ActorProcessingErr> {
        let Some(entry) = self.sessions.get_mut(id) else {
            return Ok(());
        };
        entry.gave_up = false;
        entry.crashes = CrashBudget::new(self.supervision);
        if let Some(actor) = entry.actor.take() {
            self.by_actor.remove(&actor.get_id());
            actor.stop(Some("started afresh".into()));
        }
        let (record, unreadable) = self.stored_record(id).await;
        let boot = unreadable.map_or(Boot::Restored, Boot::GaveUp);
        info!(session_id = %id, "starting a failed session afresh");
        self.spawn(myself, id, record, boot).await
    }

    /// A session's stored record, and why it could not be read (the registry itself
    /// never fails over one session's record).
    async fn stored_record(&self, id: &SessionId) -> (SessionRecord, Option<String>) {
        let blank = || SessionRecord {
            id: id.to_string(),
            ..Default::default()
        };
        match self.ctx.store.load(id).await {
            Ok(record) => (record.unwrap_or_else(blank), None),
            Err(e) => {
                error!(session_id = %id, error = %e, "the session's record cannot be read");
                let why = format!("its stored record cannot be read ({e}); call ConnectSession to retry");
                (blank(), Some(why))
            }
        }
    }
}

fn is_deleting(state: &RegistryState, id: &SessionId) -> bool {
    state.sessions.get(id).is_some_and(|e| e.deleting)
}
