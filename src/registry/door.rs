//! The one door into the actors: `Sessions`, a cloneable handle with one bounded
//! async method per capability. Every edge (gRPC services, the link page, tests)
//! goes through it; the actor messages stay private to the crate. The call bound and
//! the one mapping of an actor-call failure to a `SessionError` live here. Reads that
//! act on nothing (a peek, a CONNECTED session's GetSession, a list) are answered
//! from the registry's table without a mailbox round trip; the rest go to the actors.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use ractor::{rpc::CallResult, ActorRef, ActorStatus, RpcReplyPort};
use tokio::sync::mpsc;

use super::{
    table::{Found, Page, Table},
    RegistryMsg, WatchAll,
};
use crate::{
    backend::{Content, MediaTransfer, Outbound},
    domain::{
        PairingCodeView, QrRequest, SendAnswer, SendContent, SendInput, SendReceipt, SessionId, SessionView, Status,
    },
    error::SessionError,
    events::campaign::ItemSend,
    session::messages::SessionMsg,
};

/// Slack on top of the longest server-side wait, so a session's own answer (its
/// DEADLINE_EXCEEDED with a message) wins over the door's bound.
const CALL_SLACK: Duration = Duration::from_secs(2);

/// The door into the sessions. Empty until the restore is done: calls meanwhile are
/// refused as UNAVAILABLE (safe to retry).
#[derive(Debug, Clone)]
pub struct Sessions {
    /// The registry, once it runs.
    registry: Arc<std::sync::OnceLock<ActorRef<RegistryMsg>>>,
    /// The bound of every call.
    call_bound: Duration,
    /// What the registry publishes of every session, for reads.
    table: Table,
}

impl Sessions {
    /// A door whose calls wait at most `longest_wait` (the larger of the QR and
    /// refresh timeouts) plus a little slack.
    pub fn new(longest_wait: Duration) -> Self {
        Self {
            registry: Arc::default(),
            call_bound: longest_wait + CALL_SLACK,
            table: Table::default(),
        }
    }

    /// The table the registry keeps up to date for this door's reads (goes into
    /// `RegistryArgs`).
    pub fn table(&self) -> Table {
        self.table.clone()
    }

    /// The registry is up: calls go through from now on.
    pub(crate) fn open(&self, registry: ActorRef<RegistryMsg>) {
        let _ = self.registry.set(registry);
    }

    /// Creates a session (or returns the existing one as it is), waiting for its
    /// first QR code as `request` says.
    pub async fn create(
        &self,
        id: SessionId,
        labels: BTreeMap<String, String>,
        request: QrRequest,
    ) -> Result<SessionView, SessionError> {
        self.ask(|reply| RegistryMsg::Create {
            id,
            labels,
            request,
            reply,
        })
        .await
    }

    /// A session, with a QR code as fresh as `request` asks. A peek, or a CONNECTED
    /// session (which has no code to refresh), is answered from the table: the
    /// snapshot its actor published before it last answered anyone.
    pub async fn get(&self, id: SessionId, request: QrRequest) -> Result<SessionView, SessionError> {
        self.registry()?;
        match self.table.find(&id) {
            Found::Live(view) if !request.may_refresh || view.status == Status::Connected => return Ok(view),
            Found::Missing => return Err(SessionError::NotFound(id.to_string())),
            Found::Live(_) | Found::AskRegistry => {}
        }
        self.forward(id, |reply| SessionMsg::Get { request, reply }).await
    }

    /// A session as it is: nothing started, nothing waited for.
    pub async fn peek(&self, id: SessionId) -> Result<SessionView, SessionError> {
        self.get(id, QrRequest::PEEK).await
    }

    /// A session as it is, answered by its actor after everything queued before it
    /// (tests use it to know the session has handled what they sent it).
    #[cfg(test)]
    pub(crate) async fn settled(&self, id: SessionId) -> Result<SessionView, SessionError> {
        let request = QrRequest::PEEK;
        self.forward(id, |reply| SessionMsg::Get { request, reply }).await
    }

    /// One page of sessions ordered by id, after `after`, only `status` if set.
    pub async fn list(
        &self,
        status: Option<Status>,
        page_size: usize,
        after: Option<SessionId>,
    ) -> Result<Page, SessionError> {
        self.registry()?;
        Ok(self.table.page(status, page_size, after.as_ref()))
    }

    /// Closes the pairing connection and returns the first code of a new one.
    pub async fn refresh_qr(&self, id: SessionId, request: QrRequest) -> Result<SessionView, SessionError> {
        self.forward(id, |reply| SessionMsg::RefreshQr { request, reply }).await
    }

    /// A session's changes, its current state first; `keep_fresh` regenerates the
    /// QR while attached.
    pub async fn watch(&self, id: SessionId, keep_fresh: bool) -> Result<mpsc::Receiver<SessionView>, SessionError> {
        self.forward(id, |reply| SessionMsg::Watch { keep_fresh, reply }).await
    }

    /// Every session's current state and a subscription to their changes.
    pub async fn watch_all(&self) -> Result<WatchAll, SessionError> {
        self.ask(|reply| RegistryMsg::WatchAll { reply }).await
    }

    /// Resumes a session: linked, until CONNECTED; else until its first QR.
    pub async fn connect(&self, id: SessionId, request: QrRequest) -> Result<SessionView, SessionError> {
        self.forward(id, |reply| SessionMsg::Connect { request, reply }).await
    }

    /// Closes the connection, keeps the credentials.
    pub async fn disconnect(&self, id: SessionId) -> Result<SessionView, SessionError> {
        self.forward(id, SessionMsg::Disconnect).await
    }

    /// Unlinks the device and wipes the credentials.
    pub async fn logout(&self, id: SessionId) -> Result<SessionView, SessionError> {
        self.forward(id, SessionMsg::Logout).await
    }

    /// Logs out if linked, removes every file, forgets the session.
    pub async fn delete(&self, id: SessionId) -> Result<(), SessionError> {
        self.ask(|reply| RegistryMsg::Delete { id, reply }).await
    }

    /// Sends a message (or queues it, offline with `queue_if_offline`).
    pub async fn send_message(&self, id: SessionId, input: SendInput) -> Result<SendAnswer, SessionError> {
        self.forward(id, |reply| SessionMsg::SendMessage {
            input,
            item: None,
            reply,
        })
        .await
    }

    /// Sends a campaign item: the same path as `send_message`, under the item's
    /// preset id; an id the outbound log has already answers that message.
    pub async fn send_item(&self, id: SessionId, input: SendInput, item: ItemSend) -> Result<SendAnswer, SessionError> {
        let item = Some(Box::new(item));
        self.forward(id, |reply| SessionMsg::SendMessage { input, item, reply })
            .await
    }

    /// Shows a chat state, or marks messages read: what is not a message.
    pub async fn send_signal(&self, id: SessionId, to: String, content: Content) -> Result<(), SessionError> {
        let outbound = Outbound {
            id: Outbound::new_id(),
            to,
            content,
        };
        self.forward(id, |reply| SessionMsg::SendSignal { outbound, reply })
            .await
    }

    /// Which user chats (`digits@s.whatsapp.net`) are on WhatsApp, in one usync
    /// contact query, when the session is CONNECTED; a chat WhatsApp did not answer
    /// about is absent. Never queued behind sends.
    pub async fn check_numbers(
        &self,
        id: SessionId,
        chats: Vec<String>,
    ) -> Result<std::collections::HashMap<String, bool>, SessionError> {
        self.forward(id, |reply| SessionMsg::CheckNumbers { chats, reply })
            .await
    }

    /// The session's file transfers, when it is CONNECTED (FAILED_PRECONDITION
    /// SESSION_NOT_CONNECTED otherwise).
    pub async fn media(&self, id: SessionId) -> Result<Arc<dyn MediaTransfer>, SessionError> {
        self.forward(id, SessionMsg::Media).await
    }

    /// Sends a text to a chat: the same path as `send_message`, without a key.
    pub async fn send_text(&self, id: SessionId, to: String, text: String) -> Result<SendReceipt, SessionError> {
        let input = SendInput {
            to,
            client_id: None,
            queue_if_offline: false,
            content: SendContent::Text { text, reply_to: None },
        };
        let answer = self.send_message(id, input).await?;
        Ok(SendReceipt {
            message_id: answer.message_id,
            sent_at: answer.accepted_at,
        })
    }

    /// An 8-character code to link by phone number (digits only).
    pub async fn request_pairing_code(&self, id: SessionId, phone: String) -> Result<PairingCodeView, SessionError> {
        self.forward(id, |reply| SessionMsg::RequestPairingCode { phone, reply })
            .await
    }

    /// Makes a session's actor fail on purpose (an error, or a panic), to prove
    /// supervision (EmulatorService.CrashSession).
    pub async fn crash(&self, id: SessionId, panic: bool) -> Result<(), SessionError> {
        self.forward(id, |reply| SessionMsg::Crash { panic, reply }).await
    }

    /// Sends a request to one session through the registry.
    async fn forward<T: Send + 'static>(
        &self,
        id: SessionId,
        build: impl FnOnce(RpcReplyPort<Result<T, SessionError>>) -> SessionMsg,
    ) -> Result<T, SessionError> {
        self.ask(|reply| RegistryMsg::Forward { id, msg: build(reply) }).await
    }

    /// Sends a request to the registry and waits (bounded) for the answer.
    async fn ask<T: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<Result<T, SessionError>>) -> RegistryMsg,
    ) -> Result<T, SessionError> {
        let registry = self.registry()?;
        match registry.call(build, Some(self.call_bound)).await {
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

    /// The registry, once the restore is done; UNAVAILABLE before it and once it
    /// stopped (shutting down), as a call to it would answer.
    fn registry(&self) -> Result<&ActorRef<RegistryMsg>, SessionError> {
        let registry = self.registry.get().ok_or_else(|| {
            SessionError::Unavailable("wa-sessiond is starting and restoring its sessions: retry in a moment".into())
        })?;
        if matches!(
            registry.get_status(),
            ActorStatus::Draining | ActorStatus::Stopping | ActorStatus::Stopped
        ) {
            return Err(SessionError::Unavailable(
                "wa-sessiond is shutting down: retry on another instance".into(),
            ));
        }
        Ok(registry)
    }
}
