//! The seam between a session and WhatsApp: a `Backend` opens connections and turns
//! what happens on them into `BackendEvent`s for the session actor.

pub mod emulator;
mod event;
pub mod media;
mod outbound;
pub mod paced;
#[cfg(test)]
pub(crate) mod scripted;
pub mod whatsapp;

pub use event::{Disconnect, Identity, QrCode};
pub use media::{MediaBlob, MediaMessage, MediaTransfer};
pub use outbound::{ChatState, Content, MessageRef, Outbound};

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use crate::{domain::SessionId, events::Inbox};

/// A boxed future, so backends stay object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a connection delivers its events (bound to one session and connection).
pub type EventSink = Arc<dyn Fn(BackendEvent) + Send + Sync>;

/// What happened on a connection.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendEvent {
    /// A QR code of the batch.
    Qr(QrCode),
    /// The batch ran out; the server closed the connection.
    QrExhausted,
    /// The phone scanned a code (pair-success); a 515 follows.
    PairSuccess {
        /// Digits only.
        phone_number: String,
        /// The new device's JID.
        jid: String,
    },
    /// Online with stored credentials.
    Connected(Identity),
    /// The connection ended.
    Disconnected(Disconnect),
    /// The connection could not be opened at all: the cause in words.
    ConnectFailed(String),
}

/// A failure of a backend call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// Not possible in the connection's current state.
    #[error("{0}")]
    Refused(String),
    /// WhatsApp could not be reached or did not answer.
    #[error("{0}")]
    Unreachable(String),
    /// Local storage failed.
    #[error("{0}")]
    Storage(String),
}

/// A message WhatsApp accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// WhatsApp's id of the message.
    pub message_id: String,
}

/// A pairing code WhatsApp issued for linking by phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingCodeIssued {
    /// 8 characters, without the dash.
    pub code: String,
    /// How long the phone may take to enter it.
    pub valid_for: Duration,
}

/// One open connection. It closes when its owner lets it go, however the owner
/// goes: `close` closes it and waits (bounded); dropping it without `close` (a
/// crashed session actor, a cancelled close) mutes it at once and closes it in the
/// background within [`CLOSE_TIMEOUT`], without logging out, so no logged-in socket
/// outlives its owner and a restarted session never meets its own old connection
/// ("replaced"). The futures it returns own what they need (`'static`), so the
/// session actor can await them off its mailbox.
pub trait Connection: Send + Sync {
    /// Closes it without logging out, and waits until it is gone (bounded).
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;

    /// Unlinks the device on WhatsApp's side, then closes.
    fn logout(self: Box<Self>) -> BoxFuture<'static, Result<(), BackendError>>;

    /// Sends `message` (every kind of message goes through here; see [`Outbound`]).
    /// The whole call, waiting for the connection included, ends within [`SEND_BOUND`].
    fn send(&self, message: Outbound) -> BoxFuture<'static, Result<SentMessage, BackendError>>;

    /// Asks WhatsApp for a code to link by phone number (digits only) on this pairing
    /// connection; the QR codes keep working meanwhile. Ends within
    /// [`PAIRING_CODE_BOUND`].
    fn request_pairing_code(&self, phone_number: &str) -> BoxFuture<'static, Result<PairingCodeIssued, BackendError>>;

    /// Which of these user chats (`digits@s.whatsapp.net`) are on WhatsApp, in one
    /// usync contact query (the caller batches): true or false for each chat
    /// WhatsApp answered about; one it did not answer about is absent. Ends within
    /// [`LOOKUP_BOUND`].
    fn registered(&self, chats: Vec<String>) -> BoxFuture<'static, Result<HashMap<String, bool>, BackendError>> {
        let _ = chats;
        Box::pin(async { Err(BackendError::Refused("this backend cannot check numbers".into())) })
    }

    /// Its file transfers (upload, download, re-upload request), or None when this
    /// backend moves no files.
    fn media(&self) -> Option<Arc<dyn MediaTransfer>> {
        None
    }
}

/// A WhatsApp implementation: real or emulated.
pub trait Backend: Send + Sync + 'static {
    /// Its name, for logs.
    fn name(&self) -> &'static str;

    /// The open files one session holds (its socket, its store): what a create
    /// must find room for. 0 when sessions hold none of their own.
    fn files_per_session(&self) -> u64 {
        0
    }

    /// Whether the session has stored credentials (a linked device).
    fn has_credentials(&self, session: &SessionId) -> bool;

    /// Checks a session's stored credentials at restore. A store that cannot be used
    /// (unreadable or half-written: the "Bad MAC" class of trouble) is wiped so
    /// pairing starts clean; returns why, for the session's last_error. Blocking:
    /// startup only.
    fn repair(&self, session: &SessionId) -> Option<String>;

    /// Starts a connection; events arrive on `sink`, and what WhatsApp sends the
    /// account goes to `inbox` (acked to WhatsApp only once the inbox committed it).
    /// Returns at once.
    fn connect(&self, session: &SessionId, sink: EventSink, inbox: Inbox) -> Box<dyn Connection>;

    /// Deletes the session's credentials.
    fn wipe(&self, session: &SessionId) -> BoxFuture<'static, Result<(), BackendError>>;

    /// Unlinks a device that has no open connection, from its stored credentials.
    /// What WhatsApp holds for the device and delivers while it is logged in for
    /// this goes to `inbox` (committed before it is acked), never nowhere.
    fn logout_stored(&self, session: &SessionId, inbox: Inbox) -> BoxFuture<'static, Result<(), BackendError>>;
}

/// The bound on closing a connection.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The most a connection's `send` may take, all of it: a wait for a place at the
/// connect gate or for the client to exist, then WhatsApp's answer. It sits inside
/// the session's bound on a send (25 s), itself inside the door's bound on every
/// call (32 s), so a caller hears the backend's own cause, not a bare timeout.
pub const SEND_BOUND: Duration = Duration::from_secs(20);

/// The most a connection's `registered` (a contact check) may take, all of it (the
/// waits for the gate and the client included), within the session's bound on a
/// check (20 s).
pub const LOOKUP_BOUND: Duration = Duration::from_secs(15);

/// The most a connection's `request_pairing_code` may take, all of it (the waits
/// for the gate, the client and its socket included). It sits inside the session's
/// bound on a pairing-code request (20 s), itself inside the door's (32 s).
pub const PAIRING_CODE_BOUND: Duration = Duration::from_secs(15);
