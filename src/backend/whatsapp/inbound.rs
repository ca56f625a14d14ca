//! What WhatsApp delivers to a linked account, into the session's inbox: the
//! conversion of one decrypted whatsapp-rust message into the log's
//! `InboundMessage` (plain code, tested on hand-built messages), and the durability
//! hook that commits each batch to the inbox before whatsapp-rust acks it. The hook
//! is the one path messages take: a batch it did not commit is not acked, so
//! WhatsApp delivers it again, and the log keeps each message once. A commit the
//! log refuses is tried again in place, then handed back with a reconnect
//! (`commit_retry`).
//!
//! Receipts: only those for messages the account sent, from the other party
//! (`delivered`, `read`, `played`). The `-self` kinds (the account read something
//! on another of its devices), retries, `sender` and the account's own devices'
//! receipts are not about what the session sent, so they are not logged.
//!
//! Kept: texts, media (metadata only: the file is never downloaded), edits, revokes,
//! reactions, and anything else with content as `OTHER`. Skipped (acked, not
//! logged): the protocol's own housekeeping (key shares, history-sync notices,
//! ephemeral settings...) and messages that carry nothing but keys. The phone's
//! answer to a resend request is logged as the messages it recovered
//! (`recovered`).

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::{sync::Notify, time::Instant};
use tracing::{debug, warn};
use whatsapp_rust::{
    anyhow, proto_helpers::MessageExt, types::message::MessageInfo, waproto::whatsapp as wa, Client,
    InboundDurabilityHook, Jid,
};

use super::{commit_retry, recovered};
use crate::{
    events::{Body, InboundMessage, Inbox, Receipt, ReceiptKind},
    proto::{Media, MessageKind},
};

/// How long one try of a batch may take to reach the disk before it counts as
/// failed (and is tried again, see [`commit_retry`]).
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The durability hook: commits each batch to the session's inbox, Ok only once it
/// is on disk. A refused commit is tried again in place ([`commit_retry`]); a batch
/// still refused after [`commit_retry::GIVE_UP_AFTER`] is given back unacked and
/// `redeliver` is told, so the connection reconnects and WhatsApp delivers it again.
pub struct InboxHook {
    /// The session's inbox.
    inbox: Inbox,
    /// Told when a batch is given back: the connection then reconnects.
    redeliver: Arc<Notify>,
}

impl InboxHook {
    /// A hook committing to `inbox`, telling `redeliver` when it gives a batch back.
    pub fn new(inbox: Inbox, redeliver: Arc<Notify>) -> Self {
        Self { inbox, redeliver }
    }

    /// The inbox it commits to.
    pub fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    /// Commits the messages of `batch` worth logging, trying again while the log
    /// refuses and the connection is up (`connected`); Err when they are still not on
    /// disk after the retry bound, or the connection went (the next one gets them).
    pub async fn commit(
        &self,
        batch: &[whatsapp_rust::types::events::InboundMessage],
        connected: impl Fn() -> bool,
    ) -> anyhow::Result<()> {
        let bodies: Vec<Body> = batch.iter().flat_map(logged).map(Body::Message).collect();
        let skipped = batch.len() - bodies.len();
        if bodies.is_empty() {
            debug!(skipped, "nothing to log in an inbound batch");
            return Ok(());
        }
        let mut backoff: Option<commit_retry::Backoff> = None;
        loop {
            // A file's descriptor is kept before its message is committed, so a
            // message in the log can always be downloaded.
            let attempt = async {
                for item in batch {
                    if let Some(blob) = super::inbound_media::descriptor(&item.message) {
                        let chat = item.info.source.chat.to_non_ad_string();
                        let json = serde_json::to_string(&blob).unwrap_or_default();
                        self.inbox.keep_media(&chat, &item.info.id, json).await?;
                    }
                }
                self.inbox.commit(bodies.clone()).await
            };
            let failure = match tokio::time::timeout(COMMIT_TIMEOUT, attempt).await {
                Ok(Ok(appended)) => {
                    debug!(
                        added = appended.added,
                        duplicates = appended.duplicates,
                        skipped,
                        "inbound messages committed"
                    );
                    return Ok(());
                }
                Ok(Err(error)) => error.to_string(),
                Err(_) => format!("no commit within {COMMIT_TIMEOUT:?}"),
            };
            self.inbox.commit_failed();
            let now = Instant::now();
            let wait = backoff.get_or_insert_with(|| commit_retry::Backoff::new(now)).next(now);
            let Some(wait) = wait.filter(|_| connected()) else {
                // Given back unacked: the next connection gets it again. When this
                // one is still up, it is closed and opened again for that.
                warn!(%failure, messages = bodies.len(),
                    "inbound messages still not committed; whatsapp delivers them again on the next connection");
                self.redeliver.notify_one();
                return Err(anyhow::anyhow!("the event log did not commit the messages: {failure}"));
            };
            warn!(%failure, messages = bodies.len(), retry_in = ?wait, "inbound messages not committed; trying again");
            tokio::time::sleep(wait).await;
        }
    }
}

#[whatsapp_rust::async_trait]
impl InboundDurabilityHook for InboxHook {
    async fn on_messages(
        &self,
        client: Arc<Client>,
        batch: &[whatsapp_rust::types::events::InboundMessage],
    ) -> anyhow::Result<()> {
        self.commit(batch, || client.is_connected()).await
    }
}

/// What one delivered message puts in the log: itself, or, for the phone's
/// answer to a resend request, the messages it recovered (marked `recovered`).
fn logged(item: &whatsapp_rust::types::events::InboundMessage) -> Vec<InboundMessage> {
    let resent = recovered::recovered(&item.message, &item.info);
    if resent.is_empty() {
        return inbound_message(&item.message, &item.info).into_iter().collect();
    }
    resent
        .iter()
        .filter_map(|(message, info)| inbound_message(message, info))
        .map(|message| InboundMessage {
            recovered: true,
            ..message
        })
        .collect()
}

/// The log's form of a decrypted message; None for what is not worth logging.
pub fn inbound_message(message: &wa::Message, info: &MessageInfo) -> Option<InboundMessage> {
    let content = content(message.get_base_message())?;
    Some(InboundMessage {
        id: info.id.clone(),
        chat: info.source.chat.to_non_ad_string(),
        sender: info.source.sender.to_non_ad_string(),
        from_me: info.source.is_from_me,
        sent_at: Some(SystemTime::from(info.timestamp).into()),
        push_name: info.push_name.clone(),
        text: content.text,
        media: content.media,
        quoted_id: content.quoted_id,
        kind: content.kind as i32,
        offline: info.is_offline,
        recovered: false,
    })
}

/// The log's form of a receipt for messages the session sent; None for the rest
/// (see the module notes). `own` are the account's JIDs (phone number and LID).
pub fn receipt(receipt: &whatsapp_rust::types::events::Receipt, own: &[Jid]) -> Option<Receipt> {
    use whatsapp_rust::types::presence::ReceiptType;
    let kind = match receipt.r#type {
        ReceiptType::Delivered => ReceiptKind::Delivered,
        ReceiptType::Read => ReceiptKind::Read,
        ReceiptType::Played => ReceiptKind::Played,
        _ => return None,
    };
    let sender = &receipt.source.sender;
    if own
        .iter()
        .any(|me| me.user == sender.user && me.server == sender.server)
    {
        return None;
    }
    if receipt.message_ids.is_empty() {
        return None;
    }
    Some(Receipt {
        chat: receipt.source.chat.to_non_ad_string(),
        from: sender.to_non_ad_string(),
        message_ids: receipt.message_ids.clone(),
        kind: kind as i32,
        at: Some(SystemTime::from(receipt.timestamp).into()),
    })
}

/// What a message says, whoever sent it.
#[derive(Debug, Default)]
struct Content {
    kind: MessageKind,
    text: String,
    media: Option<Media>,
    quoted_id: String,
}

impl Content {
    fn new(kind: MessageKind) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }

    fn text(mut self, text: Option<&str>) -> Self {
        self.text = text.unwrap_or_default().to_owned();
        self
    }

    fn quoting(mut self, id: Option<&str>) -> Self {
        self.quoted_id = id.unwrap_or_default().to_owned();
        self
    }
}

/// The content of an unwrapped message (no ephemeral/view-once/device-sent
/// wrapper left).
fn content(base: &wa::Message) -> Option<Content> {
    if let Some(protocol) = base.protocol_message.as_option() {
        return protocol_content(protocol);
    }
    if let Some(reaction) = base.reaction_message.as_option() {
        let content = Content::new(MessageKind::Reaction)
            .text(reaction.text.as_deref())
            .quoting(key_id(&reaction.key));
        return Some(content);
    }
    if let Some(text) = base.conversation.as_deref().filter(|t| !t.is_empty()) {
        return Some(Content::new(MessageKind::Text).text(Some(text)));
    }
    if let Some(extended) = base.extended_text_message.as_option() {
        let content = Content::new(MessageKind::Text)
            .text(extended.text.as_deref())
            .quoting(stanza_id(&extended.context_info));
        return Some(content);
    }
    if let Some((media, quoted)) = media(base) {
        let mut content = Content::new(MessageKind::Media).quoting(quoted);
        content.media = Some(media);
        return Some(content);
    }
    if carries_nothing(base) {
        return None;
    }
    Some(Content::new(MessageKind::Other).quoting(other_quoted_id(base)))
}

/// Edits and revokes; the protocol's housekeeping is not logged.
fn protocol_content(protocol: &wa::message::ProtocolMessage) -> Option<Content> {
    use wa::message::protocol_message::Type;
    let target = key_id(&protocol.key);
    match protocol.r#type? {
        Type::REVOKE => Some(Content::new(MessageKind::Revoke).quoting(target)),
        Type::MESSAGE_EDIT => {
            let edited = protocol.edited_message.as_option();
            let text = edited.and_then(|m| m.text_content().or_else(|| m.get_caption()));
            Some(Content::new(MessageKind::Edit).text(text).quoting(target))
        }
        _ => None,
    }
}

/// Media metadata (never the file) and the id it quotes.
fn media(base: &wa::Message) -> Option<(Media, Option<&str>)> {
    /// One media kind's metadata; the field names are the same in each.
    macro_rules! metadata {
        ($kind:literal, $message:expr, $caption:expr) => {{
            let message = $message;
            let media = Media {
                kind: $kind.to_owned(),
                mime: message.mimetype.clone().unwrap_or_default(),
                size: message.file_length.unwrap_or_default(),
                caption: $caption.unwrap_or_default(),
                sha256: hex::encode(message.file_sha256.as_deref().unwrap_or_default()),
                downloadable: message.media_key.is_some() && message.direct_path.is_some(),
                file_name: String::new(),
            };
            Some((media, stanza_id(&message.context_info)))
        }};
    }
    if let Some(m) = base.image_message.as_option() {
        return metadata!("image", m, m.caption.clone());
    }
    if let Some(m) = base.video_message.as_option().or(base.ptv_message.as_option()) {
        return metadata!("video", m, m.caption.clone());
    }
    if let Some(m) = base.audio_message.as_option() {
        return metadata!("audio", m, None::<String>);
    }
    if let Some(m) = base.document_message.as_option() {
        let found: Option<(Media, Option<&str>)> = metadata!("document", m, m.caption.clone());
        return found.map(|(media, quoted)| {
            let file_name = m.file_name.clone().unwrap_or_default();
            (Media { file_name, ..media }, quoted)
        });
    }
    if let Some(m) = base.sticker_message.as_option() {
        return metadata!("sticker", m, None::<String>);
    }
    None
}

/// The id a message of another kind quotes, for the kinds people reply with.
fn other_quoted_id(base: &wa::Message) -> Option<&str> {
    /// The first of these fields that is set and quotes something.
    macro_rules! first_quoted {
        ($($field:ident),+) => {
            None$(.or_else(|| base.$field.as_option().and_then(|m| stanza_id(&m.context_info))))+
        };
    }
    first_quoted!(
        location_message,
        live_location_message,
        contact_message,
        contacts_array_message,
        poll_creation_message,
        poll_creation_message_v2,
        poll_creation_message_v3
    )
}

/// Whether a message holds nothing but keys and metadata for the protocol.
fn carries_nothing(base: &wa::Message) -> bool {
    let mut rest = base.clone();
    rest.sender_key_distribution_message = Default::default();
    rest.fast_ratchet_key_sender_key_distribution_message = Default::default();
    rest.message_context_info = Default::default();
    rest == wa::Message::default()
}

fn key_id(key: &whatsapp_rust::waproto::buffa::MessageField<wa::MessageKey>) -> Option<&str> {
    key.as_option().and_then(|k| k.id.as_deref())
}

fn stanza_id(context: &whatsapp_rust::waproto::buffa::MessageField<wa::ContextInfo>) -> Option<&str> {
    context.as_option().and_then(|c| c.stanza_id.as_deref())
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;
