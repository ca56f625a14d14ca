//! What phones send an emulated account: the phone's side (`DeliverMessage`,
//! `SendReceipt`, `CountPending`) puts items in the server's durable queue; an
//! online connection hands them to the session's inbox in order, in batches, and
//! acks them to the server only once the inbox has them on disk. What was handed
//! over but not acked (a crash, a failed commit) is handed over again.

use std::{sync::Arc, time::SystemTime};

use tokio::sync::Notify;
use tracing::warn;

use super::{
    queue::{ServerQueue, DELIVERY_BATCH},
    refused, Emulator,
};
use crate::{
    domain::SessionId,
    error::SessionError,
    events::{Body, Inbox, Receipt, ReceiptKind},
    store::DbError,
};

/// UNAVAILABLE: the emulated server's queue failed.
fn queue_failed(error: DbError) -> SessionError {
    SessionError::Unavailable(format!("the emulated server's queue failed: {error}; try again"))
}

/// `PHONE@s.whatsapp.net`.
pub(super) fn jid(phone: &str) -> String {
    format!("{phone}@s.whatsapp.net")
}

impl Emulator {
    /// The server's queue, opened on first use.
    pub(super) async fn server_queue(&self) -> Result<&ServerQueue, SessionError> {
        self.inner
            .queue
            .get_or_try_init(|| async {
                let root = self.inner.data.root().to_owned();
                tokio::task::spawn_blocking(move || ServerQueue::open(&root))
                    .await
                    .map_err(|e| DbError::Io(std::io::Error::other(e)))?
            })
            .await
            .map_err(queue_failed)
    }

    /// Wakes the account's online connection when something is queued for it.
    pub(super) async fn inbound_wake(&self, session: &SessionId) -> Arc<Notify> {
        let mut accounts = self.inner.accounts.lock().await;
        accounts.entry(session.clone()).or_default().inbound.clone()
    }

    /// Queues an item for a linked account and wakes its connection.
    pub(super) async fn hold(&self, session: &SessionId, body: Body) -> Result<(), SessionError> {
        self.server_queue()
            .await?
            .push(session.as_str(), body)
            .await
            .map_err(queue_failed)?;
        self.inbound_wake(session).await.notify_one();
        Ok(())
    }

    pub(super) fn require_linked(&self, session: &SessionId) -> Result<(), SessionError> {
        if self.read_device(session).is_none() {
            return Err(refused(format!(
                "session {session} has no linked account on the emulated server: link it first"
            )));
        }
        Ok(())
    }

    /// A phone (`from`, digits) sends the account a text, under `id` (a message
    /// delivered before is logged once) or a new one. Returns its id once the
    /// server holds it.
    pub async fn deliver_message(
        &self,
        session: &SessionId,
        from: &str,
        text: &str,
        id: Option<&str>,
    ) -> Result<String, SessionError> {
        let message = self.phone_message(session, from, text, id)?;
        let id = message.id.clone();
        self.hold(session, Body::Message(message)).await?;
        Ok(id)
    }

    /// The recipient of a message the session sent reports it delivered, read or
    /// played.
    pub async fn send_receipt(
        &self,
        session: &SessionId,
        message_id: &str,
        kind: ReceiptKind,
    ) -> Result<(), SessionError> {
        if kind == ReceiptKind::Unspecified {
            return Err(SessionError::InvalidArgument(
                "kind is required: RECEIPT_KIND_DELIVERED, RECEIPT_KIND_READ or RECEIPT_KIND_PLAYED".into(),
            ));
        }
        let sent = self.sent_messages(session).await;
        let Some(message) = sent.iter().find(|m| m.message_id == message_id) else {
            return Err(SessionError::NotFound(format!(
                "message {message_id} of session {session}"
            )));
        };
        let receipt = Receipt {
            chat: message.to.clone(),
            from: message.to.clone(),
            message_ids: vec![message_id.to_owned()],
            kind: kind as i32,
            at: Some(SystemTime::now().into()),
        };
        self.hold(session, Body::Receipt(receipt)).await
    }

    /// Items the server still holds for the session (queued or not acked).
    pub async fn count_pending(&self, session: &SessionId) -> Result<u64, SessionError> {
        self.server_queue()
            .await?
            .count(session.as_str())
            .await
            .map_err(queue_failed)
    }

    /// The device was removed: the server forgets what it held for it.
    pub(super) async fn forget_held(&self, session: &SessionId) {
        if let Ok(queue) = self.server_queue().await {
            if let Err(error) = queue.clear(session.as_str()).await {
                warn!(session_id = %session, %error, "the emulated server could not forget a removed device's queue");
            }
        }
    }

    /// Hands one batch of held items to the inbox and acks it once committed.
    /// Returns whether a full batch went (more may be waiting).
    pub(super) async fn deliver_batch(&self, session: &SessionId, inbox: &Inbox, online_at_ms: u64) -> bool {
        let Ok(queue) = self.server_queue().await else {
            return false;
        };
        let held = match queue.take(session.as_str(), DELIVERY_BATCH).await {
            Ok(held) => held,
            Err(error) => {
                warn!(session_id = %session, %error, "the emulated server could not read its queue");
                return false;
            }
        };
        let Some(last) = held.last().map(|h| h.n) else {
            return false;
        };
        let full = held.len() == DELIVERY_BATCH;
        let bodies = held
            .into_iter()
            .map(|item| match item.body {
                Body::Message(mut message) => {
                    // Sent while the account's device was away: it comes from the
                    // offline queue.
                    message.offline = item.queued_at_ms < online_at_ms;
                    Body::Message(message)
                }
                other => other,
            })
            .collect::<Vec<_>>();
        // A file's descriptor is kept before its message is committed, so a
        // message in the log can always be downloaded.
        for body in &bodies {
            let Body::Message(message) = body else { continue };
            let Some(blob) = self.inbound_blob(session, message) else {
                continue;
            };
            let json = serde_json::to_string(&blob).unwrap_or_default();
            if let Err(error) = inbox.keep_media(&message.chat, &message.id, json).await {
                warn!(session_id = %session, %error, "the daemon did not keep a file's descriptor; the server keeps the delivery for later");
                return false;
            }
        }
        if let Err(error) = inbox.commit(bodies).await {
            warn!(session_id = %session, %error, "the daemon did not commit a delivery; the server keeps it for later");
            return false;
        }
        if let Err(error) = queue.ack(session.as_str(), last).await {
            warn!(session_id = %session, %error, "the emulated server could not drop acked items; they come again");
            return false;
        }
        full
    }
}
