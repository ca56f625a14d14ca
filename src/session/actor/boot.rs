//! How a session incarnation starts: a new session stores its record and answers
//! its creator, a restored one resumes if linked, a restarted one reloads its own
//! record (or stays FAILED when its restart budget is spent), and one deleted while
//! restarting finishes the delete.

use tracing::warn;

use super::{Boot, SessionRun, NOT_CREATED};
use crate::{
    domain::{QrRequest, SessionId, Status},
    session::{state::SessionState, waiters::Reply},
    store::write_failed,
};

impl SessionRun {
    /// The first step after (re)start.
    pub(super) async fn boot(&mut self) {
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
}
