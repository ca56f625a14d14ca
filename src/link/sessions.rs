//! The link page's one door to the sessions: get, watch, refresh the QR, ask for a
//! pairing code, each bounded and answering `Result<_, SessionError>`. Nothing else
//! in `link/` knows how sessions are run.
//!
//! For now it asks the registry the way the gRPC service does; it has exactly the
//! shape of the typed handle into the actors (`registry::Sessions`) and is replaced
//! by it.

use std::time::Duration;

use ractor::{rpc::CallResult, RpcReplyPort};
use tokio::sync::mpsc;

use crate::{
    error::SessionError,
    registry::{RegistryHandle, RegistryMsg},
    session::{actor::SessionMsg, commands::PairingCodeView, input, waiters::QrRequest, SessionId, SessionView},
};

/// A cloneable handle on the sessions.
#[derive(Clone)]
pub struct Sessions {
    /// Where requests go (once sessions are restored).
    registry: RegistryHandle,
    /// The bound of every call: the longest a session may wait server-side, plus slack.
    call_bound: Duration,
}

impl Sessions {
    /// `longest_wait`: the larger of the QR and refresh timeouts.
    pub fn new(registry: RegistryHandle, longest_wait: Duration) -> Self {
        Self {
            registry,
            call_bound: longest_wait + Duration::from_secs(2),
        }
    }

    /// The session, waiting for (or starting) a QR code as `request` asks.
    pub async fn get(&self, id: &SessionId, request: QrRequest) -> Result<SessionView, SessionError> {
        let msg = |reply| SessionMsg::Get { request, reply };
        self.ask(id, msg).await
    }

    /// The session's current state, then every change; `keep_fresh` regenerates the
    /// QR while the receiver is held.
    pub async fn watch(&self, id: &SessionId, keep_fresh: bool) -> Result<mpsc::Receiver<SessionView>, SessionError> {
        self.ask(id, |reply| SessionMsg::Watch { keep_fresh, reply }).await
    }

    /// Closes the pairing connection and returns the first code of a new one.
    pub async fn refresh_qr(&self, id: &SessionId, request: QrRequest) -> Result<SessionView, SessionError> {
        self.ask(id, |reply| SessionMsg::RefreshQr { request, reply }).await
    }

    /// An 8-character code to link `phone` (`+15551234567` or digits) by number.
    pub async fn request_pairing_code(&self, id: &SessionId, phone: String) -> Result<PairingCodeView, SessionError> {
        let phone = input::phone_number(&phone)?;
        self.ask(id, |reply| SessionMsg::RequestPairingCode { phone, reply })
            .await
    }

    async fn ask<T: Send + 'static>(
        &self,
        id: &SessionId,
        build: impl FnOnce(RpcReplyPort<Result<T, SessionError>>) -> SessionMsg,
    ) -> Result<T, SessionError> {
        let registry = self.registry.get()?;
        let id = id.clone();
        let forward = |reply| RegistryMsg::Forward { id, msg: build(reply) };
        match registry.call(forward, Some(self.call_bound)).await {
            Ok(CallResult::Success(result)) => result,
            Ok(CallResult::Timeout) => Err(SessionError::DeadlineExceeded(
                "the session did not answer in time: retry".into(),
            )),
            Ok(CallResult::SenderError) => Err(SessionError::Unavailable(
                "the session stopped while answering (restarting or shutting down): retry".into(),
            )),
            Err(_) => Err(SessionError::Unavailable(
                "wa-sessiond is shutting down: retry on another instance".into(),
            )),
        }
    }
}
