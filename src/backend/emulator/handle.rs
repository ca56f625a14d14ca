//! The session's handle on one emulated connection: close, logout, send, contact
//! checks and pairing-code requests become controls for the connection's task, each answered
//! on a oneshot; a handle dropped without `close` still closes its connection.

use std::{collections::HashMap, sync::Arc};

use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use super::server::Control;
use crate::backend::{
    BackendError, BoxFuture, Connection, MediaTransfer, Outbound, PairingCodeIssued, SentMessage, CLOSE_TIMEOUT,
};

/// A connection to the emulator. Dropped without `close`, it still closes: the
/// drop sends the same `Close` (the emulator's own list of live connections keeps
/// a sender, so the task would not notice the handle going).
pub(super) struct EmulatedConnection {
    /// Steers the connection's task; the emulator's phone controls hold a clone.
    control: mpsc::Sender<Control>,
    /// The task serving the connection; awaited (bounded) by close and logout.
    task: JoinHandle<()>,
    /// The emulated CDN, as this session sees it.
    media: Arc<dyn MediaTransfer>,
}

impl Drop for EmulatedConnection {
    fn drop(&mut self) {
        // After a close or logout the task is gone (or ending) and this is refused.
        if let Err(mpsc::error::TrySendError::Full(close)) = self.control.try_send(Control::Close) {
            let control = self.control.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = control.send(close).await;
                });
            }
        }
    }
}

impl EmulatedConnection {
    /// The handle of the connection `task` serves, steered through `control`.
    pub(super) fn new(control: mpsc::Sender<Control>, task: JoinHandle<()>, media: Arc<dyn MediaTransfer>) -> Self {
        Self { control, task, media }
    }

    /// Asks the connection's task and waits for its answer.
    fn ask<T: Send + 'static>(
        &self,
        build: impl FnOnce(oneshot::Sender<Result<T, BackendError>>) -> Control + Send + 'static,
    ) -> BoxFuture<'static, Result<T, BackendError>> {
        // Lazy: nothing reaches the server until the caller polls it (a send the
        // outbox drops unrun, because the caller's key was used before, never goes).
        let control = self.control.clone();
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            control
                .try_send(build(reply))
                .map_err(|_| BackendError::Refused("the connection is closed".into()))?;
            answer
                .await
                .map_err(|_| BackendError::Refused("the connection closed while asked".into()))?
        })
    }
}

impl Connection for EmulatedConnection {
    fn close(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = self.control.try_send(Control::Close);
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, &mut self.task).await;
        })
    }

    fn logout(mut self: Box<Self>) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(async move {
            let (done, unlinked) = oneshot::channel();
            let sent = self.control.try_send(Control::Logout(done)).is_ok();
            let acknowledged = sent
                && tokio::time::timeout(CLOSE_TIMEOUT, unlinked)
                    .await
                    .is_ok_and(|r| r.is_ok());
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, &mut self.task).await;
            if acknowledged {
                Ok(())
            } else {
                Err(BackendError::Unreachable(
                    "the connection closed before the logout went through".into(),
                ))
            }
        })
    }

    fn send(&self, message: Outbound) -> BoxFuture<'static, Result<SentMessage, BackendError>> {
        self.ask(move |reply| Control::Send { message, reply })
    }

    fn registered(&self, chats: Vec<String>) -> BoxFuture<'static, Result<HashMap<String, bool>, BackendError>> {
        self.ask(move |reply| Control::Registered { chats, reply })
    }

    fn request_pairing_code(&self, phone_number: &str) -> BoxFuture<'static, Result<PairingCodeIssued, BackendError>> {
        let phone = phone_number.to_owned();
        self.ask(move |reply| Control::PairingCode { phone, reply })
    }

    fn media(&self) -> Option<Arc<dyn MediaTransfer>> {
        Some(Arc::clone(&self.media))
    }
}
