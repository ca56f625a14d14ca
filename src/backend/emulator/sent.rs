//! The emulated server's side of what a session sends: it takes each message once
//! per id (`sent_log`), acks it to the device (`Inbox::server_ack`) unless the
//! account's acks are held, or nacks it with a code when told to
//! (`EmulatorService.RejectSends`), as WhatsApp does with 463.

use tracing::warn;

use super::{
    sent_log::{EmulatedMessage, Taken},
    server::Control,
    Emulator,
};
use crate::{
    backend::{BackendError, Content, Outbound, SentMessage},
    domain::SessionId,
    error::SessionError,
    events::Inbox,
};

impl Emulator {
    /// The server takes `message` from the session's online device.
    pub(super) async fn take_sent(
        &self,
        session: &SessionId,
        message: Outbound,
        inbox: &Inbox,
    ) -> Result<SentMessage, BackendError> {
        let id = message.id.clone();
        let is_message = !matches!(message.content, Content::ChatState { .. } | Content::Read { .. });
        if !is_message {
            // A chat state or a read: recorded as the phone sees it, never acked.
            let queue = self
                .server_queue()
                .await
                .map_err(|e| BackendError::Unreachable(e.to_string()))?;
            queue
                .record(session.as_str(), EmulatedMessage::of(&message), false)
                .await
                .map_err(|e| BackendError::Unreachable(format!("the emulated server failed: {e}")))?;
            return Ok(SentMessage { message_id: id });
        }
        if let Some(code) = self.next_rejection(session).await {
            inbox.server_ack(id.clone(), Some(code));
            return Ok(SentMessage { message_id: id });
        }
        let queue = self
            .server_queue()
            .await
            .map_err(|e| BackendError::Unreachable(e.to_string()))?;
        let barred = self.new_chats_barred(session).await;
        let mut taken = EmulatedMessage::of(&message);
        if let (Content::Media { media, .. }, Some(seen)) = (&message.content, taken.media.as_mut()) {
            // As the recipient gets it: read back from the CDN.
            let (size, sha256) = self.read_back(&media.blob).await.unwrap_or_default();
            seen.size = size;
            seen.sha256 = sha256;
        }
        let taken = queue
            .record(session.as_str(), taken, barred)
            .await
            .map_err(|e| BackendError::Unreachable(format!("the emulated server failed: {e}")))?;
        match taken {
            Taken::Acked => inbox.server_ack(id.clone(), None),
            Taken::Held => {}
            // WhatsApp's 463: the account may not start new chats.
            Taken::NewChatBarred => inbox.server_ack(id.clone(), Some(463)),
        }
        Ok(SentMessage { message_id: id })
    }

    /// Messages the session sent, once per id, in the order the server took them.
    pub async fn sent_messages(&self, session: &SessionId) -> Vec<EmulatedMessage> {
        let Ok(queue) = self.server_queue().await else {
            return Vec::new();
        };
        queue.sent(session.as_str()).await.unwrap_or_else(|error| {
            warn!(session_id = %session, %error, "the emulated server could not list what it received");
            Vec::new()
        })
    }

    /// Nacks the session's next `count` sends with `code` (e.g. 463).
    pub async fn reject_sends(&self, session: &SessionId, code: u32, count: u32) -> Result<(), SessionError> {
        if code == 0 {
            return Err(SessionError::InvalidArgument(
                "code is required: WhatsApp's nack code, e.g. 463".into(),
            ));
        }
        let mut accounts = self.inner.accounts.lock().await;
        accounts.entry(session.clone()).or_default().reject = (count > 0).then_some((code, count));
        Ok(())
    }

    /// Holds (or releases) the server's acks of the session's sends; a release acks
    /// every held one on the live connection (or, without one, when the device
    /// sends it again).
    pub async fn hold_acks(&self, session: &SessionId, hold: bool) -> Result<(), SessionError> {
        let queue = self.server_queue().await?;
        let released = queue
            .hold_acks(session.as_str(), hold)
            .await
            .map_err(|e| SessionError::Unavailable(format!("the emulated server failed: {e}; try again")))?;
        if released.is_empty() {
            return Ok(());
        }
        let accounts = self.inner.accounts.lock().await;
        if let Some(live) = accounts.get(session).and_then(|a| a.live.as_ref()) {
            let _ = live.control.try_send(Control::Acks(released));
        }
        Ok(())
    }

    async fn next_rejection(&self, session: &SessionId) -> Option<u32> {
        let mut accounts = self.inner.accounts.lock().await;
        let account = accounts.get_mut(session)?;
        let (code, count) = account.reject?;
        account.reject = (count > 1).then_some((code, count - 1));
        Some(code)
    }
}
