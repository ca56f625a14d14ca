//! Campaigns as the event log keeps them: the vocabulary of the `campaigns` and
//! `campaign_items` tables (in the log's file, changed on its writer thread), the
//! rules that map an item's outbound status to its campaign status, and the jobs
//! the writer runs for them ([`sql`]; reads in [`read`]). An item's counts live on
//! its campaign's row and change in the same transaction as the item.

pub(super) mod caps;
pub(super) mod items;
pub(super) mod read;
pub(super) mod sql;

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use read::{Next, USER_SERVER};
pub use sql::{Action, Written, MAX_ITEMS};

pub use crate::proto::{CampaignItemStatus as ItemStatus, CampaignState, MessageStatus, PauseReason};

/// How fast a session's campaigns send (PacingPolicy, with the defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pacing {
    /// The shortest gap between two sends of the session, in milliseconds.
    pub min_ms: u64,
    /// The longest gap, in milliseconds.
    pub max_ms: u64,
    /// Sends of the session over a rolling 24 hours (0: no cap).
    pub daily_limit: u32,
    /// Sends to new contacts over a rolling 24 hours (0: no cap).
    pub new_contact_daily_limit: u32,
    /// COMPOSING before each message.
    pub typing: bool,
    /// Check new contacts' numbers with WhatsApp before sending (in batches,
    /// cached in `campaign_numbers`); one not on WhatsApp is SKIPPED.
    pub skip_unregistered: bool,
}

/// What WhatsApp said about a number, as `campaign_numbers` keeps it per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not on WhatsApp: its items are SKIPPED.
    Unregistered = 0,
    /// On WhatsApp.
    Registered = 1,
}

/// An item a lookup may concern: its position, its chat, whether the account
/// never exchanged a message with it, and the chat's cached verdict (and when it
/// was checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    /// The item's position.
    pub seq: u64,
    /// Its chat's JID.
    pub chat: String,
    /// A new contact (only user chats are looked at; groups are false).
    pub new: bool,
    /// The chat's cached verdict and when it was checked.
    pub cached: Option<(Verdict, SystemTime)>,
}

/// What an item sends (the text already has its placeholders filled in). It holds
/// the text: it never leaves the data dir and is never logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ItemContent {
    /// A text.
    Text {
        /// Never logged.
        text: String,
    },
    /// A file uploaded with UploadMedia.
    Media {
        /// UploadMedia's handle.
        media_id: String,
        /// Shown under it (never logged).
        caption: String,
        /// A document's name.
        file_name: String,
        /// Audio sent as a voice note.
        voice_note: bool,
        /// An audio's or video's length.
        duration_seconds: u32,
        /// A voice note's waveform.
        waveform: Vec<u8>,
        /// A small JPEG preview.
        jpeg_thumbnail: Vec<u8>,
    },
}

impl ItemContent {
    /// The text shown (a text, or a caption): how long typing lasts depends on it.
    pub fn shown_text(&self) -> &str {
        match self {
            Self::Text { text } => text,
            Self::Media { caption, .. } => caption,
        }
    }
}

impl std::fmt::Debug for ItemContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Text { text } => write!(f, "Text({} bytes)", text.len()),
            Self::Media { media_id, .. } => write!(f, "Media({media_id})"),
        }
    }
}

/// One item to add.
#[derive(Debug, Clone)]
pub struct NewItem {
    /// Unique in the campaign.
    pub item_id: String,
    /// The chat's JID.
    pub chat: String,
    /// What it sends.
    pub content: ItemContent,
    /// Its WhatsApp id, fixed now and kept on every (re)send.
    pub message_id: String,
}

/// A campaign to create.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    /// Its id.
    pub id: String,
    /// Whose.
    pub session_id: String,
    /// How fast.
    pub pacing: Pacing,
    /// Created PAUSED OPERATOR.
    pub start_paused: bool,
    /// The caller's labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// A hash of the request's content (same id, other content: ALREADY_EXISTS).
    pub fingerprint: String,
    /// Its first items.
    pub items: Vec<NewItem>,
}

/// Each item counted once, under its current status (SENDING counts as pending).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub pending: u64,
    pub sending: u64,
    pub sent: u64,
    pub server_ack: u64,
    pub delivered: u64,
    pub read: u64,
    pub failed: u64,
    pub skipped: u64,
    pub cancelled: u64,
}

/// One campaign as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRow {
    /// The internal key its items hang on (never reused).
    pub n: i64,
    pub id: String,
    pub session_id: String,
    pub state: CampaignState,
    pub pause_reason: PauseReason,
    /// When an automatic pause ends (None: not by itself).
    pub resume_at: Option<SystemTime>,
    pub pacing: Pacing,
    pub labels: std::collections::BTreeMap<String, String>,
    pub fingerprint: String,
    pub created_at: SystemTime,
    pub counts: Counts,
}

/// One item as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    /// Its position in the campaign (0-based).
    pub seq: u64,
    pub item_id: String,
    pub chat: String,
    pub status: ItemStatus,
    pub message_id: String,
    pub error_code: u32,
    pub error: String,
    pub sent_at: Option<SystemTime>,
    /// Its serialized [`ItemContent`] (only read when it is sent).
    pub content: String,
}

/// What links an outbound message to its campaign item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The campaign's id.
    pub campaign_id: String,
    /// The item's id.
    pub item_id: String,
    /// The campaign's key and the item's position in it (where its row is).
    pub campaign: i64,
    pub seq: u64,
    /// Sent to a chat the account never exchanged a message with (counted against
    /// the new-contact daily cap).
    pub new_contact: bool,
}

/// A campaign item's send through the session's normal send path: its preset
/// WhatsApp id and what links it to its item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemSend {
    /// The id fixed when the item was added.
    pub message_id: String,
    /// The item.
    pub link: Link,
}

/// What the daemon (not an operator) decided about a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auto {
    /// Sending.
    Run,
    /// Paused for this reason until then (None: until the cause goes).
    Pause(PauseReason, Option<SystemTime>),
}

/// The item status an outbound status means.
pub fn item_status(status: MessageStatus) -> ItemStatus {
    match status {
        MessageStatus::Unspecified | MessageStatus::Queued => ItemStatus::Sending,
        MessageStatus::Sent => ItemStatus::Sent,
        MessageStatus::ServerAck => ItemStatus::ServerAck,
        MessageStatus::Delivered => ItemStatus::Delivered,
        MessageStatus::Read | MessageStatus::Played => ItemStatus::Read,
        MessageStatus::Failed => ItemStatus::Failed,
    }
}

/// The column of `campaigns` that counts items of `status`.
pub(crate) fn count_column(status: ItemStatus) -> &'static str {
    match status {
        ItemStatus::Unspecified | ItemStatus::Pending => "pending",
        ItemStatus::Sending => "sending",
        ItemStatus::Sent => "sent",
        ItemStatus::ServerAck => "server_ack",
        ItemStatus::Delivered => "delivered",
        ItemStatus::Read => "read",
        ItemStatus::Failed => "failed",
        ItemStatus::Skipped => "skipped",
        ItemStatus::Cancelled => "cancelled",
    }
}

/// How far back the daily caps count, in milliseconds.
pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// Now, in unix milliseconds (as the tables keep times).
pub(crate) fn now_ms() -> i64 {
    crate::store::unix_ms(SystemTime::now()) as i64
}

/// Whether an automatic pause of this reason is the daemon's to end.
pub fn is_automatic(reason: PauseReason) -> bool {
    !matches!(reason, PauseReason::Operator | PauseReason::Unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_items_status_follows_its_message_and_played_counts_as_read() {
        assert_eq!(item_status(MessageStatus::Queued), ItemStatus::Sending);
        assert_eq!(item_status(MessageStatus::ServerAck), ItemStatus::ServerAck);
        assert_eq!(item_status(MessageStatus::Played), ItemStatus::Read);
        assert_eq!(item_status(MessageStatus::Failed), ItemStatus::Failed);
        let text = ItemContent::Text { text: "secret".into() };
        assert!(!format!("{text:?}").contains("secret"), "the text stays out of logs");
    }
}
