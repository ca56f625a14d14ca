//! The lifecycle requests a session actor serves besides QR reads: watch, disconnect,
//! connect, logout, delete, send, pairing code.

use std::time::{Duration, SystemTime};

use ractor::RpcReplyPort;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{actor::DELETED, state::ConnectPlan};
use super::{
    actor::{SessionMsg, SessionRun},
    state::Purpose,
    waiters::Reply,
};
use crate::{
    backend::BackendError,
    domain::{PairingCodeView, QrRequest, SendReceipt, SessionView, Status},
    error::SessionError,
    metrics::Logout,
    store::{finish_wipe, write_failed},
};

/// How long a send may take before the caller hears it timed out.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long asking for a pairing code may take.
const PAIRING_CODE_TIMEOUT: Duration = Duration::from_secs(20);

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
        self.cancel_reconnect();
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
                let _ = reply.send(Err(e));
                return;
            }
        }
        let linked = self.ctx.backend.has_credentials(&self.state.view().id);
        match self.state.connect_plan(linked) {
            ConnectPlan::Resume => {
                self.cancel_reconnect();
                self.open_resume(Status::Connecting);
            }
            ConnectPlan::Pair => self.open_pairing(self.ctx.timeouts.qr).await,
            ConnectPlan::Wait => {}
        }
        self.wait(request, reply, self.ctx.timeouts.qr);
    }

    /// LOGGED_OUT: the device unlinked on WhatsApp's side, credentials wiped.
    pub(super) async fn logout(&mut self) -> Result<SessionView, SessionError> {
        self.cancel_reconnect();
        let unlinked = self.unlink().await;
        self.ctx.backend.wipe(&self.state.view().id).await.map_err(internal)?;
        self.state.logged_out(SystemTime::now());
        if let Err(cause) = unlinked {
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
        self.ctx.backend.logout_stored(&self.state.view().id).await
    }

    /// Logs out if linked, leaves the tombstone, removes every file, then stops with
    /// `DELETED`: the supervisor forgets the session and answers its callers. `done`
    /// hears whether the tombstone was written (a failure leaves the session as it is).
    pub(super) async fn delete(&mut self, done: RpcReplyPort<Result<(), SessionError>>) {
        let id = self.state.view().id.clone();
        self.cancel_reconnect();
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
            let _ = done.send(Err(error));
            return;
        }
        let mut last = self.state.view().status_change();
        last.deleted = true;
        // Queued now, after every earlier event of the session; not waited for.
        drop(self.ctx.log.delete_session(id.as_str(), last));
        finish_wipe(&self.ctx.data, &self.ctx.store, &id).await;
        self.watchers.clear();
        self.deleted = true;
        let _ = done.send(Ok(()));
        self.myself.stop(Some(DELETED.into()));
    }

    /// Sends a text when CONNECTED; the send itself runs off the mailbox.
    pub(super) fn send_text(
        &mut self,
        to: String,
        text: String,
        reply: RpcReplyPort<Result<SendReceipt, SessionError>>,
    ) {
        let conn = match (self.state.require_connected(), self.conn.as_ref()) {
            (Ok(()), Some(conn)) => conn,
            (Err(refused), _) => {
                let _ = reply.send(Err(refused));
                return;
            }
            (Ok(()), None) => {
                let message = "the connection closed while sending: retry".to_owned();
                let _ = reply.send(Err(SessionError::Unavailable(message)));
                return;
            }
        };
        let sending = conn.send(crate::backend::Outbound::Text { to, text });
        let myself = self.myself.clone();
        tokio::spawn(async move {
            let result = match tokio::time::timeout(SEND_TIMEOUT, sending).await {
                Ok(Ok(sent)) => {
                    let _ = myself.cast(SessionMsg::Sent);
                    Ok(SendReceipt {
                        message_id: sent.message_id,
                        sent_at: SystemTime::now(),
                    })
                }
                Ok(Err(e)) => Err(backend_failure("the message was not sent", e)),
                Err(_) => Err(SessionError::DeadlineExceeded(
                    "whatsapp did not accept the message in time: it may or may not arrive; check before resending"
                        .into(),
                )),
            };
            let _ = reply.send(result);
        });
    }

    /// Issues a pairing code on the pairing connection (opening one if needed).
    pub(super) async fn request_pairing_code(
        &mut self,
        phone: String,
        reply: RpcReplyPort<Result<PairingCodeView, SessionError>>,
    ) {
        if let Err(linked) = self.state.refuse_if_linked("a pairing code") {
            let _ = reply.send(Err(linked));
            return;
        }
        let pairing = self.state.conn().is_some_and(|c| c.purpose == Purpose::Pair);
        if !pairing {
            self.open_pairing(self.ctx.timeouts.qr).await;
        }
        let Some(conn) = self.conn.as_ref() else {
            let _ = reply.send(Err(SessionError::Unavailable(
                "the pairing connection closed: retry".into(),
            )));
            return;
        };
        let asking = conn.request_pairing_code(&phone);
        tokio::spawn(async move {
            let result = match tokio::time::timeout(PAIRING_CODE_TIMEOUT, asking).await {
                Ok(Ok(issued)) => Ok(PairingCodeView {
                    code: format!("{}-{}", &issued.code[..4], &issued.code[4..]),
                    expires_at: SystemTime::now() + issued.valid_for,
                }),
                Ok(Err(e)) => Err(backend_failure("no pairing code", e)),
                Err(_) => Err(SessionError::DeadlineExceeded(
                    "whatsapp did not issue a pairing code in time: retry".into(),
                )),
            };
            let _ = reply.send(result);
        });
    }
}

fn backend_failure(what: &str, error: BackendError) -> SessionError {
    match error {
        BackendError::Refused(why) => SessionError::Unavailable(format!("{what}: {why}; retry")),
        BackendError::Unreachable(why) => {
            SessionError::Unavailable(format!("{what}: whatsapp unreachable ({why}); retry"))
        }
        BackendError::Storage(why) => SessionError::Internal(format!("{what}: {why}")),
    }
}

fn internal(error: BackendError) -> SessionError {
    SessionError::Internal(error.to_string())
}
