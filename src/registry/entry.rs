//! What the registry keeps of each session (where its actor is in its life, its
//! latest snapshot, its crash budget, callers of a delete under way), and how it
//! spawns a session's incarnations.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use ractor::{Actor, ActorRef};
use tokio::{sync::watch, task::AbortHandle};
use tracing::error;

use super::{table::Table, DeleteReply, RegistryMsg, RegistryState, Supervision};
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

/// Where a session's actor is in its life, as the registry sees it. A later
/// "hibernated" state is one more case here.
pub(super) enum Life {
    /// Known, its actor not spawned yet (only inside one registry handler).
    Starting,
    /// Its actor runs.
    Running(ActorRef<SessionMsg>),
    /// Its actor crashed; the next incarnation starts when this timer fires.
    Restarting(AbortHandle),
    /// Its crash budget is spent, or its actor could not start: FAILED with the
    /// reason, shown by its actor when one runs. ConnectSession or RefreshQr start it
    /// afresh.
    GaveUp(Option<ActorRef<SessionMsg>>),
}

/// A session the registry knows.
pub(super) struct Entry {
    /// Where its actor is in its life.
    life: Life,
    /// Its latest snapshot.
    view: watch::Receiver<SessionView>,
    /// The publishing side, handed to each incarnation of the actor.
    publisher: watch::Sender<SessionView>,
    /// Whether readers may answer from `view` without the registry (an actor runs
    /// and no delete is under way); shared with the table's row.
    direct: Arc<AtomicBool>,
    /// Its recent crashes.
    pub crashes: CrashBudget,
    /// Callers of a delete under way (empty: not being deleted).
    deletes: Vec<DeleteReply>,
}

impl Entry {
    /// A session first seen as `view`, its actor not spawned yet; listed in `table`.
    pub fn new(id: &SessionId, view: SessionView, supervision: Supervision, table: &Table) -> Self {
        let (publisher, receiver) = watch::channel(view);
        let direct = Arc::new(AtomicBool::new(false));
        table.insert(id.clone(), receiver.clone(), direct.clone());
        Self {
            life: Life::Starting,
            view: receiver,
            publisher,
            direct,
            crashes: CrashBudget::new(supervision),
            deletes: Vec::new(),
        }
    }

    /// Its latest snapshot.
    pub fn view(&self) -> SessionView {
        self.view.borrow().clone()
    }

    /// Where its actor is in its life.
    pub fn life(&self) -> &Life {
        &self.life
    }

    /// Its running actor, if any.
    pub fn actor(&self) -> Option<&ActorRef<SessionMsg>> {
        match &self.life {
            Life::Running(actor) | Life::GaveUp(Some(actor)) => Some(actor),
            Life::Starting | Life::Restarting(_) | Life::GaveUp(None) => None,
        }
    }

    /// Moves it to `life`, cancelling a pending restart it leaves behind.
    pub fn set_life(&mut self, life: Life) {
        if let Life::Restarting(timer) = std::mem::replace(&mut self.life, life) {
            timer.abort();
        }
        self.update_direct();
    }

    /// Whether it was left FAILED after its crashes (or a failed start).
    pub fn gave_up(&self) -> bool {
        matches!(self.life, Life::GaveUp(_))
    }

    /// Whether a delete is under way (requests get NOT_FOUND).
    pub fn is_deleting(&self) -> bool {
        !self.deletes.is_empty()
    }

    /// Adds a delete caller; true when a delete was already under way.
    pub fn add_delete(&mut self, reply: DeleteReply) -> bool {
        let under_way = self.is_deleting();
        self.deletes.push(reply);
        self.update_direct();
        under_way
    }

    /// Answers every caller of the delete (which is then no longer under way).
    pub fn answer_deletes(&mut self, result: Result<(), SessionError>) {
        for reply in self.deletes.drain(..) {
            let _ = reply.send(result.clone());
        }
        self.update_direct();
    }

    /// Cancels a pending restart (the session then waits to be started).
    pub fn cancel_restart(&mut self) {
        if matches!(self.life, Life::Restarting(_)) {
            self.set_life(Life::Starting);
        }
    }

    fn update_direct(&self) {
        let direct = self.actor().is_some() && !self.is_deleting();
        self.direct.store(direct, Ordering::Release);
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
            let life = if entry.gave_up() {
                Life::GaveUp(Some(actor))
            } else {
                Life::Running(actor)
            };
            entry.set_life(life);
        }
    }

    /// A session's actor could not be spawned: FAILED with the cause; ConnectSession
    /// or RefreshQr try again.
    pub(super) fn spawn_failed(&mut self, id: &SessionId, cause: &str) {
        error!(session_id = %id, error = %cause, "a session's actor could not start");
        let Some(entry) = self.sessions.get_mut(id) else {
            return;
        };
        entry.set_life(Life::GaveUp(None));
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
