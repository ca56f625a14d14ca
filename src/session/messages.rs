//! A session actor's mailbox: the requests it serves and the events it gets from
//! its timers and its backend connection.

use std::sync::Arc;

use ractor::RpcReplyPort;
use tokio::sync::mpsc;

use super::{state::ConnId, waiters::Reply};
use crate::{
    backend::{BackendEvent, MediaTransfer, Outbound},
    domain::{PairingCodeView, QrRequest, SendAnswer, SendInput, SessionView},
    error::SessionError,
};

/// A session's mailbox.
pub(crate) enum SessionMsg {
    /// Return the session, waiting for (or starting) a QR code as asked.
    Get {
        /// What the caller wants of the QR.
        request: QrRequest,
        /// Answered with the session once a code fits `request` (or at its deadline).
        reply: Reply,
    },
    /// Close the pairing connection and return the first code of a new one.
    RefreshQr {
        /// What the caller wants of the QR.
        request: QrRequest,
        /// Answered with the new connection's first code (or at its deadline).
        reply: Reply,
    },
    /// Something happened on connection `conn`.
    Backend {
        /// The connection it happened on; ignored unless it is still the live one.
        conn: ConnId,
        /// What the library reported.
        event: BackendEvent,
    },
    /// The first code of `conn` is due.
    FirstQrDue(ConnId),
    /// Code `index` of `generation` expired.
    QrExpired {
        /// The generation of the code it was armed for: a newer code ignores it.
        generation: u64,
        /// The code's place in its batch (from 1): with `generation`, which code.
        index: u32,
    },
    /// The earliest waiting caller's deadline passed.
    WaitersDue,
    /// The backoff passed: reconnect.
    Reconnect,
    /// Connection `conn` has been up long enough to reset the backoff.
    Stable(ConnId),
    /// Attach a watch stream.
    Watch {
        /// Regenerate the QR while attached.
        keep_fresh: bool,
        /// Answered with a stream: the current snapshot first, then every change.
        reply: RpcReplyPort<Result<mpsc::Receiver<SessionView>, SessionError>>,
    },
    /// A watcher's client went away.
    WatcherGone(u64),
    /// Close the connection, keep the credentials.
    Disconnect(Reply),
    /// Resume.
    Connect {
        /// What the caller wants of the QR (when not linked).
        request: QrRequest,
        /// Answered once CONNECTED (linked) or with the first code (not linked).
        reply: Reply,
    },
    /// Unlink and wipe.
    Logout(Reply),
    /// Log out if linked, remove every file, stop.
    Delete(RpcReplyPort<Result<(), SessionError>>),
    /// Send a message (SendMessage, SendTextMessage).
    SendMessage {
        /// What to send, to which chat (never logged but by kind).
        input: SendInput,
        /// A campaign item's preset id and link (None: a caller's message).
        item: Option<Box<crate::events::campaign::ItemSend>>,
        /// Answered by the outbox once the message is in the outbound log and
        /// WhatsApp took it (SENT), or queued (QUEUED), or it failed.
        reply: RpcReplyPort<Result<SendAnswer, SessionError>>,
    },
    /// Send what is not a message (a chat state, a read): not logged, not resent.
    SendSignal {
        /// What to send.
        outbound: Outbound,
        /// Answered once WhatsApp took it.
        reply: RpcReplyPort<Result<(), SessionError>>,
    },
    /// Which user chats are on WhatsApp (one usync contact query), when CONNECTED;
    /// answered off the outbox, so sends never wait for it.
    CheckNumbers {
        /// `digits@s.whatsapp.net` each.
        chats: Vec<String>,
        /// True or false for each chat WhatsApp answered about.
        reply: RpcReplyPort<Result<std::collections::HashMap<String, bool>, SessionError>>,
    },
    /// Lend the connection's file transfers (UploadMedia, DownloadMedia), when
    /// CONNECTED.
    Media(RpcReplyPort<Result<Arc<dyn MediaTransfer>, SessionError>>),
    /// A send went through.
    Sent,
    /// A message was queued while offline: send what is pending if online now.
    Flush,
    /// A send or resend of this message id is over (or was dropped unrun).
    SendDone(String),
    /// Ask for a pairing code.
    RequestPairingCode {
        /// The phone number to link, digits only (country code first).
        phone: String,
        /// Answered by the outbox with the code as `ABCD-1234`.
        reply: RpcReplyPort<Result<PairingCodeView, SessionError>>,
    },
    /// Fail on purpose (EmulatorService.CrashSession), to prove supervision: answer,
    /// then return an error from the handler, or panic.
    Crash {
        /// Panic instead of returning an error.
        panic: bool,
        /// Answered before the crash.
        reply: RpcReplyPort<Result<(), SessionError>>,
    },
}

impl SessionMsg {
    /// Answers the request with `error` instead of handling it (unknown session,
    /// restarting, stopping). Messages without a caller are dropped.
    pub(crate) fn refuse(self, error: SessionError) {
        match self {
            SessionMsg::Get { reply, .. }
            | SessionMsg::RefreshQr { reply, .. }
            | SessionMsg::Connect { reply, .. }
            | SessionMsg::Disconnect(reply)
            | SessionMsg::Logout(reply) => {
                let _ = reply.send(Err(error));
            }
            SessionMsg::Watch { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            SessionMsg::SendSignal { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            SessionMsg::CheckNumbers { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            SessionMsg::Media(reply) => {
                let _ = reply.send(Err(error));
            }
            SessionMsg::SendMessage { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            SessionMsg::RequestPairingCode { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            SessionMsg::Delete(reply) | SessionMsg::Crash { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            SessionMsg::Backend { .. }
            | SessionMsg::FirstQrDue(_)
            | SessionMsg::QrExpired { .. }
            | SessionMsg::WaitersDue
            | SessionMsg::Reconnect
            | SessionMsg::Stable(_)
            | SessionMsg::WatcherGone(_)
            | SessionMsg::Sent
            | SessionMsg::Flush
            | SessionMsg::SendDone(_) => {}
        }
    }
}
