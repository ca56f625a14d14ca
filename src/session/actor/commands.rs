//! The lifecycle requests a session serves besides QR reads: watch, disconnect,
//! connect, logout, delete.

use std::time::SystemTime;

use ractor::RpcReplyPort;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{SessionMsg, SessionRun, DELETED};
use crate::{
    backend::BackendError,
    domain::{QrRequest, SessionView, Status},
    error::SessionError,
    events::Inbox,
    metrics::Logout,
    session::{state::ConnectPlan, timers::Timer, waiters::Reply},
    store::{finish_wipe, write_failed},
};

impl SessionRun {
    /// Attaches a watch stream (current state first).
    pub(super) fn watch(&mut self, keep_fresh: bool) -> mpsc::Receiver<SessionView> {
        let myself = self.myself.clone();
        let gone = move |id| {
            let _ = myself.cast(SessionMsg::WatcherGone(id));
        };
        let metrics = self.ctx.metrics.clone();
        self.watchers.attach(self.state.view(), keep_fresh, metrics, gone)
    }

    /// DISCONNECTED on request: connection closed, credentials kept. Idempotent.
    pub(super) async fn disconnect(&mut self) -> Result<SessionView, SessionError> {
        self.stop_reconnecting();
        if let Some(conn) = self.conn.take() {
            conn.close().await;
        }
        self.state.stop_requested(SystemTime::now());
        if !self.record.stopped {
            self.record.stopped = true;
            self.save().await?;
        }
        Ok(self.state.view().clone())
    }

    /// Resumes: with credentials until CONNECTED, without them until the first QR.
    pub(super) async fn connect_session(&mut self, request: QrRequest, reply: Reply) {
        if self.record.stopped {
            self.record.stopped = false;
            if let Err(e) = self.save().await {
                self.answer(reply, Err(e));
                return;
            }
        }
        let linked = self.ctx.backend.has_credentials(&self.state.view().id);
        match self.state.connect_plan(linked) {
            ConnectPlan::Resume => {
                self.stop_reconnecting();
                self.open_resume(Status::Connecting);
            }
            ConnectPlan::Pair => self.open_pairing(self.ctx.timeouts.qr).await,
            ConnectPlan::Wait => {}
        }
        self.wait(request, reply, self.ctx.timeouts.qr);
    }

    /// LOGGED_OUT: the device unlinked on WhatsApp's side, credentials wiped.
    pub(super) async fn logout(&mut self) -> Result<SessionView, SessionError> {
        self.stop_reconnecting();
        let unlinked = self.unlink().await;
        self.ctx.backend.wipe(&self.state.view().id).await.map_err(internal)?;
        self.state.logged_out(SystemTime::now());
        if let Err(cause) = &unlinked {
            warn!(session_id = %self.state.view().id, %cause,
                "logged out here, but whatsapp did not unlink the device: remove it under Linked devices on the phone");
            self.state.note_error(format!(
                "logged out here, but whatsapp could not be told ({cause}): remove the device under Linked devices on the phone"
            ));
        }
        self.record.logged_out = true;
        self.record.stopped = false;
        self.record.jid.clear();
        self.save().await?;
        self.ctx.metrics.logged_out(Logout::REQUEST);
        info!(session_id = %self.state.view().id, "session logged out");
        Ok(self.state.view().clone())
    }

    /// Tells WhatsApp to unlink the device: over the open connection if there is
    /// one, else from the stored credentials. Closes the connection either way.
    async fn unlink(&mut self) -> Result<(), BackendError> {
        let online = self.state.view().status == Status::Connected;
        self.state.detach_conn();
        let linked = self.ctx.backend.has_credentials(&self.state.view().id);
        match self.conn.take() {
            Some(conn) if online => conn.logout().await,
            Some(conn) => {
                conn.close().await;
                self.logout_stored(linked).await
            }
            None => self.logout_stored(linked).await,
        }
    }

    async fn logout_stored(&self, linked: bool) -> Result<(), BackendError> {
        if !linked {
            return Ok(());
        }
        let id = &self.state.view().id;
        let inbox = Inbox::new(self.ctx.log.clone(), id.as_str());
        self.ctx.backend.logout_stored(id, inbox).await
    }

    /// Logs out if linked, leaves the tombstone, removes every file, then stops with
    /// `DELETED`: the supervisor forgets the session and answers its callers. `done`
    /// hears whether the tombstone was written (a failure leaves the session as it is).
    pub(super) async fn delete(&mut self, done: RpcReplyPort<Result<(), SessionError>>) {
        let id = self.state.view().id.clone();
        self.stop_reconnecting();
        if let Err(cause) = self.unlink().await {
            warn!(session_id = %id, %cause, "whatsapp could not be told of the deletion; the files go anyway");
        }
        let gone = SessionError::NotFound(id.to_string());
        self.fail_waiters(gone);
        // The tombstone is the point of no return: once committed, a restart
        // finishes the wipe and nothing brings the session back.
        if let Err(e) = self.ctx.store.delete(&id).await {
            let error = write_failed(&self.ctx.data, &id, &e);
            self.state.note_error(format!("the delete did not finish: {error}"));
            self.answer(done, Err(error));
            return;
        }
        let mut last = self.state.view().status_change();
        last.deleted = true;
        // Queued now, after every earlier event of the session; not waited for.
        drop(self.ctx.log.delete_session(id.as_str(), last));
        self.ctx.log.media().delete_session(id.as_str());
        finish_wipe(&self.ctx.data, &self.ctx.store, &id).await;
        self.timers.abort_all();
        self.outbox.stop();
        self.watchers.clear();
        self.deleted = true;
        let _ = done.send(Ok(()));
        self.myself.stop(Some(DELETED.into()));
    }

    /// Stops a pending reconnect, and the backoff reset of the connection that ends.
    fn stop_reconnecting(&mut self) {
        self.timers.disarm(Timer::Reconnect);
        self.timers.disarm(Timer::Stable);
    }
}

fn internal(error: BackendError) -> SessionError {
    SessionError::Internal(error.to_string())
}
