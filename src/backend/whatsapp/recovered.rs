//! Messages the device could not decrypt, on the real backend. whatsapp-rust
//! then asks the account's phone to send the message again (a placeholder
//! resend, "peer data operation"), and acks the undecryptable stanza once the
//! request is out; the phone answers with a message of its own carrying the
//! original (`PeerDataOperationRequestResponseMessage`), and the library hands
//! the recovered message over as an event that skips the durability hook.
//!
//! Here: the placeholder logged for an undecryptable message
//! (`MESSAGE_KIND_UNDECRYPTABLE`, no body), committed from the library's event
//! handler before it returns, which is before the stanza is acked (the library
//! sends its retry receipt, the resend request and the ack from a task it
//! spawns after the event); and the recovered messages read out of the phone's
//! answer, which the durability hook does see, so they are committed before
//! the answer is acked, under the message's own dedupe key and marked
//! `recovered`. The phone's answer is trusted only from the account itself,
//! device 0, as the library does.

use std::{sync::Arc, time::Duration};

use tokio::{
    runtime::{Handle, RuntimeFlavor},
    time::Instant,
};
use tracing::{debug, warn};
use whatsapp_rust::{
    types::{
        events::{Event, EventHandler, EventInterest, EventKind, UndecryptableMessage},
        message::{MessageInfo, MessageSource},
    },
    wacore::time,
    waproto::whatsapp as wa,
    Jid,
};

use crate::{
    events::{Body, InboundMessage, Inbox},
    proto::MessageKind,
};

/// How long the library's event dispatch is held for a placeholder to reach the
/// disk (a refused commit is tried again within it). Past it a placeholder queued
/// is still committed, but not necessarily before the stanza's ack.
pub const PLACEHOLDER_BOUND: Duration = Duration::from_secs(5);

/// The placeholder of a message that could not be decrypted: who, where, when and
/// its id; never a body.
pub fn placeholder(info: &MessageInfo) -> InboundMessage {
    InboundMessage {
        id: info.id.clone(),
        chat: info.source.chat.to_non_ad_string(),
        sender: info.source.sender.to_non_ad_string(),
        from_me: info.source.is_from_me,
        sent_at: Some(std::time::SystemTime::from(info.timestamp).into()),
        push_name: info.push_name.clone(),
        kind: MessageKind::Undecryptable as i32,
        offline: info.is_offline,
        ..Default::default()
    }
}

/// The messages the phone sent again in `message`, each with the info the
/// library would give it, when `message` is the account's own phone answering a
/// placeholder resend request (`info` is that answer's); empty for anything else.
pub fn recovered(message: &wa::Message, info: &MessageInfo) -> Vec<(wa::Message, MessageInfo)> {
    let from_phone = info.source.is_from_me && info.source.sender.device == 0;
    let Some(response) = message
        .protocol_message
        .as_option()
        .and_then(|protocol| protocol.peer_data_operation_request_response_message.as_option())
        .filter(|_| from_phone)
    else {
        return Vec::new();
    };
    response
        .peer_data_operation_result
        .iter()
        .filter_map(|result| result.placeholder_message_resend_response.as_option())
        .filter_map(|resent| resent.web_message_info_bytes.as_deref())
        .filter_map(
            |bytes| match whatsapp_rust::waproto::codec::web_message_info_decode(bytes) {
                Ok(web) => from_web(web, &info.source.sender),
                Err(error) => {
                    warn!(%error, "the phone's resent message could not be read");
                    None
                }
            },
        )
        .collect()
}

/// A resent `WebMessageInfo` as the message and its info (None without a message:
/// the phone could not decrypt it either). `own` is the account's phone.
fn from_web(mut web: wa::WebMessageInfo, own: &Jid) -> Option<(wa::Message, MessageInfo)> {
    let key = web.key.as_option()?;
    let chat: Jid = key.remote_jid.as_deref()?.parse().ok()?;
    let from_me = key.from_me.unwrap_or(false);
    let sender = match key.participant.as_deref() {
        Some(participant) => participant.parse().ok()?,
        None if from_me => own.to_non_ad(),
        None => chat.clone(),
    };
    let id = key.id.clone().filter(|id| !id.is_empty())?;
    let timestamp = web
        .message_timestamp
        .and_then(|t| i64::try_from(t).ok())
        .map_or_else(time::now_utc, time::from_secs_or_now);
    let info = MessageInfo {
        source: MessageSource {
            chat,
            sender,
            is_from_me: from_me,
            ..Default::default()
        },
        id,
        timestamp,
        push_name: web.push_name.clone().unwrap_or_default(),
        ..Default::default()
    };
    let message = web.message.take()?;
    Some((message, info))
}

/// Commits a placeholder for each undecryptable message the library reports,
/// before its dispatch goes on (see the module notes), within
/// [`PLACEHOLDER_BOUND`].
pub struct Placeholders {
    /// The session's inbox.
    pub inbox: Inbox,
}

impl EventHandler for Placeholders {
    fn handle_event(&self, event: Arc<Event>) {
        let Event::UndecryptableMessage(undecryptable) = &*event else {
            return;
        };
        self.log(undecryptable);
    }

    fn interest(&self) -> EventInterest {
        EventInterest::of(&[EventKind::UndecryptableMessage])
    }
}

impl Placeholders {
    fn log(&self, undecryptable: &UndecryptableMessage) {
        let body = vec![Body::Message(placeholder(&undecryptable.info))];
        let id = undecryptable.info.id.clone();
        let inbox = self.inbox.clone();
        let commit = async move {
            let deadline = Instant::now() + PLACEHOLDER_BOUND;
            let mut gap = Duration::from_millis(100);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let error = match tokio::time::timeout(left, inbox.commit(body.clone())).await {
                    Ok(Ok(appended)) => {
                        debug!(%id, added = appended.added, "undecryptable message logged");
                        return;
                    }
                    Ok(Err(error)) => error,
                    Err(_) => {
                        warn!(%id, "an undecryptable message's placeholder took longer than {PLACEHOLDER_BOUND:?}; it may be logged after the ack");
                        return;
                    }
                };
                inbox.commit_failed();
                if Instant::now() + gap >= deadline {
                    warn!(%id, %error, "could not log an undecryptable message's placeholder");
                    return;
                }
                warn!(%id, %error, retry_in = ?gap, "an undecryptable message's placeholder was not logged; trying again");
                tokio::time::sleep(gap).await;
                gap = (gap * 2).min(Duration::from_secs(1));
            }
        };
        match Handle::try_current() {
            // Held here: the library's dispatch waits for the disk, on a worker
            // the runtime can spare.
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| handle.block_on(commit));
            }
            // One thread: holding it would hold the commit too. Queued at once,
            // on disk within the bound, not necessarily before the ack.
            Ok(handle) => drop(handle.spawn(commit)),
            Err(_) => warn!("no runtime to log an undecryptable message on"),
        }
    }
}

#[cfg(test)]
#[path = "recovered_tests.rs"]
mod tests;
