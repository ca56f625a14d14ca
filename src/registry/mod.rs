//! The registry actor: routes and supervises, nothing else. It maps session ids to
//! their actors, spawns them linked to itself, forwards each request with the
//! caller's reply port (never awaiting a child, never touching the disk in its
//! handler), and supervises: a session that crashes is restarted with capped
//! exponential backoff and a restart budget (past it, FAILED); a session that stops
//! after deleting itself, or because its record could not be created, is forgotten
//! through the supervision event. Other sessions never notice.
//!
//! Callers reach it only through [`Sessions`], the one door.

mod door;
mod entry;
mod messages;
mod restore;
mod supervision;
mod table;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::SystemTime,
};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::{sync::broadcast, time::Instant};
use tracing::{error, info, warn};

pub use door::Sessions;
pub use supervision::{CrashBudget, Supervision};
pub use table::{Page, Table};

pub(crate) use self::messages::RegistryMsg;
use self::{
    entry::{Entry, Life},
    messages::DeleteReply,
};
use crate::{
    domain::{QrRequest, SessionEvent, SessionId, SessionView},
    error::SessionError,
    session::{
        actor::{Boot, SessionContext, DELETED, NOT_CREATED},
        messages::SessionMsg,
        state::SessionState,
        waiters::Reply,
    },
    store::SessionRecord,
};

/// What the registry starts with.
pub(crate) struct RegistryArgs {
    /// What every session shares.
    pub ctx: Arc<SessionContext>,
    /// The records to restore, read from the session list.
    pub records: Vec<SessionRecord>,
    /// The restart budget.
    pub supervision: Supervision,
    /// The table readers see (the door's: `Sessions::table`).
    pub table: Table,
}

/// Every session's current state and the subscription to their changes.
pub type WatchAll = (Vec<SessionView>, broadcast::Receiver<SessionEvent>);

/// The registry actor.
pub(crate) struct Registry;

/// The registry's state.
pub(crate) struct RegistryState {
    /// What every session shares.
    ctx: Arc<SessionContext>,
    /// Every session, by id.
    sessions: BTreeMap<SessionId, Entry>,
    /// Which session each running actor is.
    by_actor: HashMap<ActorId, SessionId>,
    /// The restart budget.
    supervision: Supervision,
    /// What readers see of every session.
    table: Table,
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
            table: args.table,
        };
        restore::restore_all(&mut state, &myself, args.records).await;
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
            } => state.create(&myself, id, labels, request, reply).await,
            RegistryMsg::Forward { id, msg } => {
                if state.wants_fresh_start(&id, &msg) {
                    state.start_afresh(&myself, &id).await;
                }
                state.forward(&id, msg);
            }
            RegistryMsg::Delete { id, reply } => state.delete(&myself, &id, reply).await,
            RegistryMsg::DeleteFailed { id, error } => {
                if let Some(entry) = state.sessions.get_mut(&id) {
                    warn!(session_id = %id, %error, "the session could not be deleted");
                    entry.answer_deletes(Err(error));
                }
            }
            RegistryMsg::WatchAll { reply } => {
                let events = state.ctx.events.subscribe();
                let current = state.sessions.values().map(Entry::view).collect();
                let _ = reply.send(Ok((current, events)));
            }
            RegistryMsg::Restart(id) => state.restart(&myself, &id).await,
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
                state.crashed(&myself, &id, &failure.to_string());
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let Some(id) = state.by_actor.remove(&cell.get_id()) else {
                    return Ok(());
                };
                match reason.as_deref() {
                    Some(DELETED) => state.forget(&id, true),
                    Some(NOT_CREATED) => state.forget(&id, false),
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<RegistryMsg>,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        for entry in state.sessions.values_mut() {
            entry.cancel_restart();
        }
        // The caller bounds the whole shutdown by --shutdown-grace.
        myself.stop_children_and_wait(Some("shutdown".into()), None).await;
        Ok(())
    }
}

impl RegistryState {
    /// Creates a session (its actor stores the record, then answers the caller), or
    /// forwards to the existing one.
    async fn create(
        &mut self,
        myself: &ActorRef<RegistryMsg>,
        id: SessionId,
        labels: BTreeMap<String, String>,
        request: QrRequest,
        reply: Reply,
    ) {
        if let Some(entry) = self.sessions.get(&id) {
            if entry.is_deleting() {
                let message = format!("session {id} is being deleted: retry in a moment");
                let _ = reply.send(Err(SessionError::Unavailable(message)));
                return;
            }
            return self.forward(&id, SessionMsg::Get { request, reply });
        }
        if self.sessions.len() >= self.ctx.max_sessions {
            let _ = reply.send(Err(SessionError::session_limit(self.ctx.max_sessions)));
            return;
        }
        if let Err(no_room) = self.room_for_files() {
            warn!(session_id = %id, %no_room, "create refused: no room for its open files");
            let _ = reply.send(Err(SessionError::ResourceExhausted(no_room.to_string())));
            return;
        }
        let record = SessionRecord::new(&id, labels.clone(), SystemTime::now());
        // As stored (whole milliseconds), so it reads the same after a restart.
        let state = SessionState::new(id.clone(), labels, record.created_at());
        let entry = Entry::new(&id, state.view().clone(), self.supervision, &self.table);
        self.sessions.insert(id.clone(), entry);
        info!(session_id = %id, "session created");
        let boot = Boot::New {
            first: Some((request, reply)),
        };
        self.launch(myself, &id, record, boot, state).await;
    }

    /// Whether one more session's open files fit under the process's limit.
    fn room_for_files(&self) -> Result<(), crate::files::NoRoom> {
        let per_session = self.ctx.backend.files_per_session();
        let (Some(open), Some(limit)) = (crate::files::open_now(), crate::files::limit()) else {
            return Ok(());
        };
        if per_session == 0 {
            return Ok(());
        }
        crate::files::room_for_one(self.sessions.len() as u64, per_session, open, limit)
    }

    /// Sends a request to a session with the caller's reply port.
    fn forward(&self, id: &SessionId, msg: SessionMsg) {
        let Some(entry) = self.sessions.get(id).filter(|e| !e.is_deleting()) else {
            return msg.refuse(SessionError::NotFound(id.to_string()));
        };
        let Some(actor) = entry.actor() else {
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

    /// Starts deleting a session: its actor (a fresh one if it was restarting) does
    /// the work and stops; the supervision event answers the callers.
    async fn delete(&mut self, myself: &ActorRef<RegistryMsg>, id: &SessionId, reply: DeleteReply) {
        let Some(entry) = self.sessions.get_mut(id) else {
            let _ = reply.send(Err(SessionError::NotFound(id.to_string())));
            return;
        };
        if entry.add_delete(reply) {
            return; // already under way: answered with the first
        }
        entry.cancel_restart();
        let (done, outcome) = ractor::concurrency::oneshot();
        let sent = match entry.actor() {
            Some(actor) => actor.cast(SessionMsg::Delete(done.into())).is_ok(),
            None => {
                let view = entry.view();
                let state = SessionState::new(id.clone(), view.labels.clone(), view.created_at);
                let record = SessionRecord::new(id, view.labels, view.created_at);
                self.launch(myself, id, record, Boot::Delete(done.into()), state).await
            }
        };
        if !sent {
            if let Some(entry) = self.sessions.get_mut(id) {
                let message = format!("session {id} is stopping: retry the delete in a moment");
                entry.answer_deletes(Err(SessionError::Unavailable(message)));
            }
            return;
        }
        let (myself, id) = (myself.clone(), id.clone());
        tokio::spawn(async move {
            if let Ok(Err(error)) = outcome.await {
                let _ = myself.cast(RegistryMsg::DeleteFailed { id, error });
            }
        });
    }

    /// Forgets a session whose actor stopped for good; `deleted`: announce it and
    /// answer the callers of Delete.
    fn forget(&mut self, id: &SessionId, deleted: bool) {
        let Some(mut entry) = self.sessions.remove(id) else {
            return;
        };
        self.table.remove(id);
        entry.cancel_restart();
        if deleted {
            info!(session_id = %id, "session deleted");
            let _ = self.ctx.events.send(SessionEvent {
                view: entry.view(),
                deleted: true,
            });
            entry.answer_deletes(Ok(()));
        }
    }

    /// A session's actor failed: restart it after the backoff. A delete under way
    /// is answered UNAVAILABLE (the session comes back; retry).
    fn crashed(&mut self, myself: &ActorRef<RegistryMsg>, id: &SessionId, cause: &str) {
        let Some(entry) = self.sessions.get_mut(id) else {
            return;
        };
        if entry.is_deleting() {
            let message = format!("session {id} crashed while being deleted: retry the delete");
            entry.answer_deletes(Err(SessionError::Unavailable(message)));
        }
        let delay = entry.crashes.record(Instant::now(), cause);
        let id = id.clone();
        let timer = myself.send_after(delay, move || RegistryMsg::Restart(id));
        entry.set_life(Life::Restarting(timer.abort_handle()));
    }

    /// The backoff passed: a new incarnation loads its own record (FAILED with the
    /// budget's reason once it is spent).
    async fn restart(&mut self, myself: &ActorRef<RegistryMsg>, id: &SessionId) {
        let Some(entry) = self.sessions.get_mut(id) else {
            return;
        };
        if !matches!(entry.life(), Life::Restarting(_)) || entry.is_deleting() {
            return;
        }
        let gave_up = entry.crashes.exhausted(Instant::now()).then(|| {
            let Supervision { budget, window } = self.supervision;
            format!(
                "the session crashed {budget} times within {}, last with: {}; see the logs, then call ConnectSession or RefreshQr to start it afresh",
                humantime::format_duration(window),
                entry.crashes.last_cause()
            )
        });
        let given_up = gave_up.is_some();
        entry.set_life(if given_up { Life::GaveUp(None) } else { Life::Starting });
        info!(session_id = %id, gave_up = given_up, "restarting session");
        self.ctx.metrics.session_restarted();
        self.relaunch(myself, id, Boot::Reload { gave_up }).await;
    }

    /// Whether `msg` asks a session left FAILED after its crashes to start again.
    fn wants_fresh_start(&self, id: &SessionId, msg: &SessionMsg) -> bool {
        let starts = matches!(msg, SessionMsg::Connect { .. } | SessionMsg::RefreshQr { .. });
        starts && self.sessions.get(id).is_some_and(|e| e.gave_up() && !e.is_deleting())
    }

    /// Replaces a given-up session's actor with a fresh one that loads its record,
    /// its crash budget whole again.
    async fn start_afresh(&mut self, myself: &ActorRef<RegistryMsg>, id: &SessionId) {
        let Some(entry) = self.sessions.get_mut(id) else {
            return;
        };
        entry.crashes = CrashBudget::new(self.supervision);
        if let Some(actor) = entry.actor() {
            self.by_actor.remove(&actor.get_id());
            actor.stop(Some("started afresh".into()));
        }
        entry.set_life(Life::Starting);
        info!(session_id = %id, "starting a failed session afresh");
        self.relaunch(myself, id, Boot::Reload { gave_up: None }).await;
    }

    /// Spawns a known session's next incarnation, which loads its own record.
    async fn relaunch(&mut self, myself: &ActorRef<RegistryMsg>, id: &SessionId, boot: Boot) {
        let Some(entry) = self.sessions.get(id) else {
            return;
        };
        let view = entry.view();
        let state = SessionState::new(id.clone(), view.labels.clone(), view.created_at);
        let record = SessionRecord::new(id, view.labels, view.created_at);
        self.launch(myself, id, record, boot, state).await;
    }
}

#[cfg(test)]
mod tests;
