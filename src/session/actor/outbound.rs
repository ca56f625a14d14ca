//! Sending messages (SendMessage; SendTextMessage is the same path without a key):
//! the actor resolves what a reply, reaction, edit or revoke points at, chooses the
//! WhatsApp id, and queues the work on the outbox, which accepts the message into
//! the durable outbound log (or finds the caller's key there), hands it to the
//! connection and answers. Whatever is accepted and not yet acked by the server is
//! sent again, under the same id and in the order accepted, each time the session
//! comes online (`flush_outbound`), until it expires (`--outbound-ttl`).

use std::time::SystemTime;

use ractor::{ActorRef, RpcReplyPort};
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{debug, warn};

use super::{sends::backend_failure, SessionMsg, SessionRun};
use crate::{
    backend::{BoxFuture, Content, MessageRef, Outbound, SentMessage},
    domain::{MessageStatus, SendAnswer, SendContent, SendInput},
    error::SessionError,
    events::{
        campaign::ItemSend,
        outbound::{Accept, Accepted, Update},
        EventLog,
    },
    session::outbox::{Job, Work},
};

/// How long a send may take from being queued to WhatsApp taking it: inside the
/// door's bound (32 s), outside the real backend's own (20 s).
pub(super) const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(25);

type Sending = BoxFuture<'static, Result<SentMessage, crate::backend::BackendError>>;

impl SessionRun {
    /// Accepts and sends `input` (or queues it, offline with `queue_if_offline`).
    pub(super) async fn send_message(
        &mut self,
        input: SendInput,
        item: Option<Box<ItemSend>>,
        reply: RpcReplyPort<Result<SendAnswer, SessionError>>,
    ) {
        let connected = self.state.require_connected();
        let online = connected.is_ok() && self.conn.is_some();
        if !online && !input.queue_if_offline {
            let refused = connected
                .err()
                .unwrap_or_else(|| SessionError::Unavailable("the connection closed while sending: retry".into()));
            self.answer(reply, Err(refused));
            return;
        }
        let content = match self.resolve(&input).await {
            Ok(content) => content,
            Err(error) => {
                self.answer(reply, Err(error));
                return;
            }
        };
        let (preset, campaign) = match item {
            Some(item) => (Some(item.message_id), Some(item.link)),
            None => (None, None),
        };
        let outbound = Outbound {
            id: preset.unwrap_or_else(Outbound::new_id),
            to: input.to.clone(),
            content,
        };
        let accept = Accept {
            session_id: self.state.view().id.to_string(),
            message_id: outbound.id.clone(),
            client_id: input.client_id.clone(),
            chat: input.to.clone(),
            fingerprint: input.fingerprint(),
            payload: serde_json::to_string(&outbound).expect("an outbound message serializes"),
            queued: !online,
            campaign,
        };
        let send = self
            .conn
            .as_ref()
            .filter(|_| online)
            .map(|conn| conn.send(outbound.clone()));
        self.in_flight.insert(outbound.id.clone());
        let done = Done(self.myself.clone(), outbound.id);
        let work = sending(self.ctx.log.clone(), accept, send, Instant::now() + SEND_TIMEOUT, done);
        let stopped = format!(
            "session {} stopped before whatsapp took the message: it stays in the outbound log and is sent when the session is connected again; follow it with GetMessageStatus",
            self.state.view().id
        );
        self.outbox.push(Job::new(work, reply, stopped));
    }

    /// Sends what is not a message (a chat state, a read) when CONNECTED: in the
    /// outbox's order, not logged, not sent again.
    pub(super) fn send_signal(&mut self, outbound: Outbound, reply: RpcReplyPort<Result<(), SessionError>>) {
        let conn = match (self.state.require_connected(), self.conn.as_ref()) {
            (Ok(()), Some(conn)) => conn,
            (Err(refused), _) => return self.answer(reply, Err(refused)),
            (Ok(()), None) => {
                let closed = SessionError::Unavailable("the connection closed while sending: retry".into());
                return self.answer(reply, Err(closed));
            }
        };
        let kind = outbound.content.kind();
        let send = conn.send(outbound);
        let deadline = Instant::now() + SEND_TIMEOUT;
        let work: Work<()> = Box::pin(async move {
            match timeout_at(deadline, send).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => Err(backend_failure(&format!("the {kind} was not sent"), error)),
                Err(_) => Err(SessionError::DeadlineExceeded(format!(
                    "whatsapp did not take the {kind} in time: retry"
                ))),
            }
        });
        let stopped = format!("session {} stopped while sending a {kind}: retry", self.state.view().id);
        self.outbox.push(Job::new(work, reply, stopped));
    }

    /// Queues every accepted message not yet acked by the server (and not already
    /// on its way) for sending, in the order accepted; expires the ones too old.
    pub(super) async fn flush_outbound(&mut self) {
        let Some(conn) = self.conn.as_ref().filter(|_| self.state.require_connected().is_ok()) else {
            return;
        };
        let session_id = self.state.view().id.to_string();
        let rows = match self.ctx.log.pending_outbound(&session_id).await {
            Ok(rows) => rows,
            Err(error) => {
                warn!(%session_id, %error, "could not read the messages still to send; they go at the next connection");
                return;
            }
        };
        let now = SystemTime::now();
        let mut resent = 0usize;
        for row in rows {
            if self.in_flight.contains(&row.message_id) {
                continue;
            }
            let expired = row.accepted_at + self.ctx.timeouts.outbound_ttl <= now;
            let outbound = match serde_json::from_str::<Outbound>(&row.payload) {
                Ok(outbound) if !expired => outbound,
                unsendable => {
                    let why = if unsendable.is_ok() { "EXPIRED" } else { "UNREADABLE" };
                    let failed = Update::failed(&session_id, &row.message_id, 0, why);
                    self.ctx.log.update_detached(failed);
                    continue;
                }
            };
            let done = Done(self.myself.clone(), row.message_id.clone());
            let work = resending(self.ctx.log.clone(), session_id.clone(), conn.send(outbound), done);
            self.in_flight.insert(row.message_id.clone());
            if !self.outbox.push_background(work) {
                // Full: what is left goes once a place frees (see `send_done`).
                self.flush_owed = true;
                break;
            }
            resent += 1;
        }
        if resent > 0 {
            debug!(%session_id, resent, "messages accepted earlier are being sent again");
        }
    }

    /// A send (or resend) finished, or was dropped unrun.
    pub(super) async fn send_done(&mut self, message_id: String) {
        self.in_flight.remove(&message_id);
        if std::mem::take(&mut self.flush_owed) {
            self.flush_outbound().await;
        }
    }

    /// The backend's content for `input`, with what it points at looked up in the log.
    async fn resolve(&self, input: &SendInput) -> Result<Content, SessionError> {
        Ok(match &input.content {
            SendContent::Text { text, reply_to } => Content::Text {
                text: text.clone(),
                reply_to: match reply_to {
                    Some(id) => Some(self.find(&input.to, id, "reply_to_message_id", false).await?),
                    None => None,
                },
            },
            SendContent::Reaction { target, emoji } => Content::Reaction {
                target: self.find(&input.to, target, "reaction.message_id", false).await?,
                emoji: emoji.clone(),
            },
            SendContent::Edit { target, text } => Content::Edit {
                target: self.find(&input.to, target, "edit.message_id", true).await?,
                text: text.clone(),
            },
            SendContent::Revoke { target } => Content::Revoke {
                target: self.find(&input.to, target, "revoke.message_id", true).await?,
            },
            SendContent::Media(media) => Content::Media {
                reply_to: match &media.reply_to {
                    Some(id) => Some(self.find(&input.to, id, "reply_to_message_id", false).await?),
                    None => None,
                },
                media: Box::new(super::media::message(&self.ctx.log, &self.state.view().id, media).await?),
            },
        })
    }

    /// A message of `chat` the log knows, sent by this session or received;
    /// `own_only` for what only its author may do (edit, revoke).
    async fn find(&self, chat: &str, id: &str, field: &str, own_only: bool) -> Result<MessageRef, SessionError> {
        let session_id = self.state.view().id.to_string();
        let log = &self.ctx.log;
        let unreadable = |e: crate::store::DbError| {
            SessionError::Unavailable(format!(
                "could not read the event log to find {field} {id:?} ({e}): retry"
            ))
        };
        if let Some(row) = log.outbound(&session_id, id, false).await.map_err(unreadable)? {
            if row.chat == chat {
                let text = serde_json::from_str::<Outbound>(&row.payload)
                    .ok()
                    .map(|o| o.content.text().to_owned())
                    .unwrap_or_default();
                return Ok(MessageRef {
                    id: id.to_owned(),
                    from_me: true,
                    sender: own_user_jid(&self.state.view().jid),
                    text,
                });
            }
        }
        let received = log.received(&session_id, chat, id).await.map_err(unreadable)?;
        match received {
            Some(message) if own_only && !message.from_me => Err(SessionError::InvalidArgument(format!(
                "{field} {id:?} was sent by {}, not by this account: only the account's own messages can be edited or deleted",
                message.sender
            ))),
            Some(message) => Ok(MessageRef {
                id: id.to_owned(),
                from_me: message.from_me,
                sender: message.sender,
                text: message.text,
            }),
            None => Err(SessionError::Missing(format!(
                "{field} {id:?} is not a message of chat {chat} in session {session_id}'s log (sent or received): check the id and the chat"
            ))),
        }
    }
}

/// The account's user JID from its device JID (`15551234567:12@s.whatsapp.net` →
/// `15551234567@s.whatsapp.net`).
fn own_user_jid(device_jid: &str) -> String {
    match device_jid.split_once('@') {
        Some((user, server)) => format!("{}@{server}", user.split(':').next().unwrap_or(user)),
        None => device_jid.to_owned(),
    }
}

/// Tells the actor a send is over (or was dropped unrun) when it goes.
struct Done(ActorRef<SessionMsg>, String);

impl Drop for Done {
    fn drop(&mut self) {
        let _ = self.0.cast(SessionMsg::SendDone(std::mem::take(&mut self.1)));
    }
}

/// A caller's send: accept (or find the key), hand over, answer.
fn sending(log: EventLog, accept: Accept, send: Option<Sending>, deadline: Instant, done: Done) -> Work<SendAnswer> {
    Box::pin(async move {
        // Held to the end: its drop tells the actor this send is over.
        let done = done;
        if Instant::now() >= deadline {
            return Err(SessionError::DeadlineExceeded(
                "the message waited too long behind earlier sends and was not sent: retry".into(),
            ));
        }
        let (session_id, message_id) = (accept.session_id.clone(), accept.message_id.clone());
        let key = accept.client_id.clone().unwrap_or_default();
        let accepted = log.accept(accept).await.map_err(|e| {
            SessionError::Unavailable(format!(
                "the message could not be recorded ({e}): nothing was sent; retry"
            ))
        })?;
        let accepted_at = match accepted {
            Accepted::Existing(row) => {
                return Ok(SendAnswer {
                    message_id: row.message_id,
                    status: row.first_status.unwrap_or(row.status),
                    accepted_at: row.accepted_at,
                })
            }
            Accepted::Conflict { message_id } => {
                return Err(SessionError::AlreadyExists(format!(
                    "client_message_id {key:?} was already used on this session for other content (message {message_id}): use a new key for a new message"
                )))
            }
            Accepted::Withdrawn => {
                return Err(SessionError::FailedPrecondition {
                    message: format!("campaign item message {message_id} is no longer pending (cancelled or sent): nothing was sent"),
                    status: None,
                    reason: "CAMPAIGN_ITEM_NOT_PENDING",
                })
            }
            Accepted::New { accepted_at } => accepted_at,
        };
        let answer = |status| SendAnswer {
            message_id: message_id.clone(),
            status,
            accepted_at,
        };
        let Some(send) = send else {
            // Queued: the actor sends it once connected (if it connected meanwhile,
            // this flush is what sends it).
            let _ = done.0.cast(SessionMsg::Flush);
            return Ok(answer(MessageStatus::Queued));
        };
        match timeout_at(deadline, send).await {
            Ok(Ok(_)) => {
                if let Err(error) = log.mark_sent(&session_id, &message_id).await {
                    warn!(%session_id, %message_id, %error, "a sent message could not be marked SENT");
                }
                let _ = done.0.cast(SessionMsg::Sent);
                Ok(answer(MessageStatus::Sent))
            }
            Ok(Err(error)) => {
                let _ = log.forget(&session_id, &message_id).await;
                Err(backend_failure("the message was not sent", error))
            }
            Err(_) => Err(SessionError::DeadlineExceeded(format!(
                "whatsapp did not take message {message_id} in time: it stays in the outbound log and is sent again under the same id when the session reconnects; follow it with GetMessageStatus"
            ))),
        }
    })
}

/// A resend of an accepted message: no caller; what fails stays pending.
fn resending(log: EventLog, session_id: String, send: Sending, done: Done) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let message_id = done.1.clone();
        let _done = done;
        match timeout(SEND_TIMEOUT, send).await {
            Ok(Ok(_)) => {
                if let Err(error) = log.mark_sent(&session_id, &message_id).await {
                    warn!(%session_id, %message_id, %error, "a resent message could not be marked SENT");
                }
            }
            Ok(Err(error)) => {
                debug!(%session_id, %message_id, %error, "a resend failed; it goes at the next connection")
            }
            Err(_) => debug!(%session_id, %message_id, "a resend timed out; it goes at the next connection"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::own_user_jid;

    #[test]
    fn the_accounts_user_jid_drops_the_device() {
        assert_eq!(
            own_user_jid("15551234567:12@s.whatsapp.net"),
            "15551234567@s.whatsapp.net"
        );
        assert_eq!(own_user_jid("15551234567@s.whatsapp.net"), "15551234567@s.whatsapp.net");
    }
}
