//! Messages the emulated device cannot decrypt: the phone's side
//! (`DeliverUndecryptableMessage`) queues the placeholder the device logs for
//! such a message (`MESSAGE_KIND_UNDECRYPTABLE`: id, chat, sender, time, no
//! body) and keeps the message itself, as the account's phone does; when told
//! (`RecoverMessage`) the phone answers the device's resend request and the
//! message is queued under the same id, marked `recovered`. Both go through the
//! server's durable queue like any delivery, so each is committed before it is
//! acked. The phone's copies live in memory: after a daemon restart a message
//! not recovered yet cannot be (its placeholder stays).

use std::{collections::HashMap, time::SystemTime};

use super::{inbound::jid, keys, Emulator};
use crate::{
    domain::{id::is_phone_digits, input, SessionId},
    error::SessionError,
    events::{Body, InboundMessage},
    proto::MessageKind,
};

/// The phone's copies of messages its account's device could not decrypt, by
/// session and message id.
pub type PhoneCopies = tokio::sync::Mutex<HashMap<(SessionId, String), InboundMessage>>;

impl Emulator {
    /// A phone (`from`, digits) sends the account `text`, which its device cannot
    /// decrypt: the placeholder is queued, the message kept for `recover_message`.
    /// Returns its id once the server holds the placeholder.
    pub async fn deliver_undecryptable(
        &self,
        session: &SessionId,
        from: &str,
        text: &str,
    ) -> Result<String, SessionError> {
        let message = self.phone_message(session, from, text, None)?;
        let placeholder = InboundMessage {
            kind: MessageKind::Undecryptable as i32,
            text: String::new(),
            ..message.clone()
        };
        let id = message.id.clone();
        self.inner
            .phone_copies
            .lock()
            .await
            .insert((session.clone(), id.clone()), message);
        self.hold(session, Body::Message(placeholder)).await?;
        Ok(id)
    }

    /// The account's phone answers the device's resend request for `message_id`
    /// (an undecryptable message): the message is queued, marked `recovered`.
    /// NOT_FOUND for an id the phone holds no undecryptable message under.
    pub async fn recover_message(&self, session: &SessionId, message_id: &str) -> Result<(), SessionError> {
        self.require_linked(session)?;
        let key = (session.clone(), message_id.to_owned());
        let Some(message) = self.inner.phone_copies.lock().await.remove(&key) else {
            return Err(SessionError::NotFound(format!(
                "undecryptable message {message_id} of session {session} (none was delivered under this id, it was recovered already, or the daemon restarted since)"
            )));
        };
        let recovered = InboundMessage {
            recovered: true,
            ..message
        };
        self.hold(session, Body::Message(recovered)).await
    }

    /// A text from phone `from` to the account, under `id` or a new one; checked
    /// like any delivery.
    pub(super) fn phone_message(
        &self,
        session: &SessionId,
        from: &str,
        text: &str,
        id: Option<&str>,
    ) -> Result<InboundMessage, SessionError> {
        if !is_phone_digits(from) {
            return Err(SessionError::InvalidArgument(format!(
                "from {from:?} is not a phone number: use 7 to 15 digits with the country code"
            )));
        }
        input::text(text)?;
        self.require_linked(session)?;
        let id = match id.filter(|id| !id.is_empty()) {
            Some(id) => input::message_id(id, "message_id")?,
            None => keys::message_id(),
        };
        Ok(InboundMessage {
            id,
            chat: jid(from),
            sender: jid(from),
            sent_at: Some(SystemTime::now().into()),
            push_name: format!("Phone {from}"),
            text: text.to_owned(),
            kind: MessageKind::Text as i32,
            ..Default::default()
        })
    }
}
