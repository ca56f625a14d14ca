//! What the registry keeps of each session (its actor, its latest snapshot, its
//! crash budget, a pending restart, callers of a delete under way), and how it
//! spawns a session's incarnations.

use ractor::{Actor, ActorRef};
use tokio::{sync::watch, task::AbortHandle};
use tracing::error;

use super::{DeleteReply, RegistryMsg, RegistryState, Supervision};
use crate::{
    domain::{SessionEvent, SessionId, SessionView},
    error::SessionError,
    registry::CrashBudget,
    session::{
        actor::{Boot, SessionActor, SessionArgs},
        messages::SessionMsg,
        state::SessionState,
    },
    store::SessionRecord,
};

/// A session the registry knows.
pub(super) struct Entry {
    /// Its actor; None while a restart is pending.
    pub actor: Option<ActorRef<SessionMsg>>,
    /// Its latest snapshot.
    view: watch::Receiver<SessionView>,
    /// The publishing side, handed to each incarnation of the actor.
    publisher: watch::Sender<SessionView>,
    /// Its recent crashes.
    pub crashes: CrashBudget,
    /// Callers of a delete under way (empty: not being deleted).
    deletes: Vec<DeleteReply>,
    /// Left FAILED after too many crashes: ConnectSession or RefreshQr start it afresh.
    pub gave_up: bool,
    /// The pending restart after a crash.
    pub restart_timer: Option<AbortHandle>,
}

impl Entry {
    /// A session first seen as `view`.
    pub fn new(view: SessionView, supervision: Supervision) -> Self {
        let (publisher, receiver) = watch::channel(view);
        Self {
            actor: None,
            view: receiver,
            publisher,
            crashes: CrashBudget::new(supervision),
            deletes: Vec::new(),
            gave_up: false,
            restart_timer: None,
        }
    }

    /// Its latest snapshot.
    pub fn view(&self) -> SessionView {
        self.view.borrow().clone()
    }

    /// Whether a delete is under way (requests get NOT_FOUND).
    pub fn is_deleting(&self) -> bool {
        !self.deletes.is_empty()
    }

    /// Adds a delete caller; true when a delete was already under way.
    pub fn add_delete(&mut self, reply: DeleteReply) -> bool {
        let under_way = self.is_deleting();
        self.deletes.push(reply);
        under_way
    }

    /// Answers every caller of the delete (which is then no longer under way).
    pub fn answer_deletes(&mut self, result: Result<(), SessionError>) {
        for reply in self.deletes.drain(..) {
            let _ = reply.send(result.clone());
        }
    }

    /// Cancels a pending restart.
    pub fn cancel_restart(&mut self) {
        if let Some(timer) = self.restart_timer.take() {
            timer.abort();
        }
    }
}

impl RegistryState {
    /// Spawns an incarnation of a known session, continuing its revisions. Returns
    /// whether it runs; a failed spawn is logged and leaves the session FAILED with
    /// the cause (the registry goes on).
    pub(super) async fn launch(
        &mut self,
        myself: &ActorRef<RegistryMsg>,
        id: &SessionId,
        record: SessionRecord,
        boot: Boot,
        state: SessionState,
    ) -> bool {
        let Some(args) = self.args_for(id, record, boot, state) else {
            return false;
        };
        match Actor::spawn_linked(None, SessionActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                self.register(id, actor);
                true
            }
            Err(e) => {
                self.spawn_failed(id, &e.to_string());
                false
            }
        }
    }

    /// The arguments of a known session's next actor, continuing its revisions.
    pub(super) fn args_for(
        &self,
        id: &SessionId,
        record: SessionRecord,
        boot: Boot,
        mut state: SessionState,
    ) -> Option<SessionArgs> {
        let entry = self.sessions.get(id)?;
        state.continue_from(&entry.view.borrow());
        Some(SessionArgs {
            state,
            record,
            boot,
            ctx: self.ctx.clone(),
            published: entry.publisher.clone(),
        })
    }

    /// Notes a session's running actor.
    pub(super) fn register(&mut self, id: &SessionId, actor: ActorRef<SessionMsg>) {
        self.by_actor.insert(actor.get_id(), id.clone());
        if let Some(entry) = self.sessions.get_mut(id) {
            entry.actor = Some(actor);
        }
    }

    /// A session's actor could not be spawned: FAILED with the cause; ConnectSession
    /// or RefreshQr try again.
    pub(super) fn spawn_failed(&mut self, id: &SessionId, cause: &str) {
        error!(session_id = %id, error = %cause, "a session's actor could not start");
        let Some(entry) = self.sessions.get_mut(id) else {
            return;
        };
        entry.actor = None;
        entry.gave_up = true;
        let view = entry.view();
        let mut state = SessionState::new(id.clone(), view.labels.clone(), view.created_at);
        state.continue_from(&view);
        state.give_up(&format!(
            "the session could not start ({cause}): call ConnectSession or RefreshQr to try again"
        ));
        entry.publisher.send_replace(state.view().clone());
        let _ = self.ctx.events.send(SessionEvent {
            view: state.view().clone(),
            deleted: false,
        });
    }
}
