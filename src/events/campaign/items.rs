//! Campaign items following the outbound log, on the writer thread inside its
//! transactions: an item's message accepted (it leaves PENDING and counts against
//! the daily caps), forgotten (PENDING again), or moved to a new status (the counts
//! follow; the item's status is its message's), an item that cannot be sent, and
//! one whose number is not on WhatsApp (SKIPPED); each moves its campaign's counts
//! in the same transaction, and a campaign with nothing left to send is DONE.

use rusqlite::{params, OptionalExtension, Transaction};

use super::{caps, count_column, item_status, now_ms, CampaignState, ItemStatus, Link, MessageStatus};
use crate::store::DbError;

/// The outbound log accepted an item's message: it leaves PENDING (SENDING) and is
/// counted against the session's daily caps. False when the item was not PENDING.
pub fn accepted(tx: &Transaction<'_>, session_id: &str, message_id: &str, link: &Link) -> Result<bool, DbError> {
    let now = now_ms();
    let sql = format!(
        "UPDATE campaign_items SET status = ?4, sent_ms = ?5 WHERE campaign = ?1 AND seq = ?2 AND message_id = ?3 AND status = {}",
        ItemStatus::Pending as i32
    );
    let changed = tx.prepare_cached(&sql)?.execute(params![
        link.campaign,
        link.seq as i64,
        message_id,
        ItemStatus::Sending as i32,
        now
    ])?;
    if changed == 0 {
        return Ok(false);
    }
    move_count(tx, link.campaign, ItemStatus::Pending, ItemStatus::Sending)?;
    caps::record(tx, session_id, message_id, link.new_contact, now)?;
    Ok(true)
}

/// The item's message was never handed over and was forgotten: PENDING again.
pub fn forgotten(tx: &Transaction<'_>, session_id: &str, message_id: &str) -> Result<bool, DbError> {
    let Some(Item { n, seq, status, .. }) = item_of(tx, session_id, message_id)? else {
        return Ok(false);
    };
    if status != ItemStatus::Sending {
        return Ok(false);
    }
    tx.prepare_cached("UPDATE campaign_items SET status = ?3, sent_ms = 0 WHERE campaign = ?1 AND seq = ?2")?
        .execute(params![n, seq, ItemStatus::Pending as i32])?;
    move_count(tx, n, ItemStatus::Sending, ItemStatus::Pending)?;
    Ok(true)
}

/// The item's message moved from `before` to `status` in the outbound log: the
/// campaign's counts follow. The item's row keeps SENDING while its message is
/// under way (readers take the message's status, [`super::read`]), so that
/// SENT, SERVER_ACK and the receipts write nothing more of the item than its
/// campaign's counts; a FAILED message fails the item in its row, with the error.
/// The campaign and item ids, for the event.
pub fn follow(
    tx: &Transaction<'_>,
    item: Item,
    (before, status): (MessageStatus, MessageStatus),
    error_code: u32,
    error: &str,
) -> Result<(String, String), DbError> {
    if is_under_way(item.status) {
        let (from, to) = (item_status(before), item_status(status));
        if to == ItemStatus::Failed {
            tx.prepare_cached(
                "UPDATE campaign_items SET status = ?3, error_code = ?4, error = ?5 WHERE campaign = ?1 AND seq = ?2",
            )?
            .execute(params![item.n, item.seq, to as i32, error_code, error])?;
        }
        move_count(tx, item.n, from, to)?;
    }
    Ok((item.campaign_id, item.item_id))
}

/// An item's own status that stands for a message under way, whose status the
/// outbound log has (SENDING; the later ones only in rows written before the
/// rows kept SENDING).
pub(crate) const UNDER_WAY: [ItemStatus; 5] = [
    ItemStatus::Sending,
    ItemStatus::Sent,
    ItemStatus::ServerAck,
    ItemStatus::Delivered,
    ItemStatus::Read,
];

/// Whether the item's status comes from its message's.
pub(crate) fn is_under_way(status: ItemStatus) -> bool {
    UNDER_WAY.contains(&status)
}

/// An item that cannot be sent (its media is gone, its content unreadable): FAILED.
pub fn fail(tx: &Transaction<'_>, n: i64, seq: u64, error: &str) -> Result<bool, DbError> {
    finish_pending(tx, n, seq, ItemStatus::Failed, error)
}

/// What a SKIPPED item's error says.
pub const NOT_ON_WHATSAPP: &str = "not on WhatsApp: the number has no WhatsApp account (skip_unregistered)";

/// An item whose number is not on WhatsApp: SKIPPED, never sent. False when the
/// item was not PENDING.
pub fn skip(tx: &Transaction<'_>, n: i64, seq: u64) -> Result<bool, DbError> {
    finish_pending(tx, n, seq, ItemStatus::Skipped, NOT_ON_WHATSAPP)
}

/// A PENDING item ends unsent as `status`, saying `error`; false when it was not
/// PENDING.
fn finish_pending(tx: &Transaction<'_>, n: i64, seq: u64, status: ItemStatus, error: &str) -> Result<bool, DbError> {
    let sql = format!(
        "UPDATE campaign_items SET status = ?3, error = ?4 WHERE campaign = ?1 AND seq = ?2 AND status = {}",
        ItemStatus::Pending as i32
    );
    let changed = tx
        .prepare_cached(&sql)?
        .execute(params![n, seq as i64, status as i32, error])?;
    if changed > 0 {
        move_count(tx, n, ItemStatus::Pending, status)?;
    }
    Ok(changed > 0)
}

/// A campaign item as a message names it.
pub struct Item {
    /// The campaign's key and the item's position in it.
    n: i64,
    seq: i64,
    status: ItemStatus,
    /// The ids its events name.
    campaign_id: String,
    item_id: String,
}

impl Item {
    /// The item an outbound row names: its message is in the log, so the item
    /// left PENDING and is under way (a FAILED message is never followed again;
    /// a forgotten one leaves the log; a cancel takes only PENDING items).
    pub fn under_way(n: i64, seq: i64, campaign_id: String, item_id: String) -> Self {
        Self {
            n,
            seq,
            status: ItemStatus::Sending,
            campaign_id,
            item_id,
        }
    }
}

/// The item a message of `session_id` belongs to, in one read (for a message
/// whose outbound row does not name it).
pub fn item_of(tx: &Transaction<'_>, session_id: &str, message_id: &str) -> Result<Option<Item>, DbError> {
    Ok(tx
        .prepare_cached(
            "SELECT i.campaign, i.seq, i.status, c.id, i.item_id FROM campaign_items i JOIN campaigns c ON c.n = i.campaign
             WHERE i.message_id = ?1 AND c.session_id = ?2",
        )?
        .query_row(params![message_id, session_id], |r| {
            Ok(Item {
                n: r.get(0)?,
                seq: r.get(1)?,
                status: ItemStatus::try_from(r.get::<_, i32>(2)?).unwrap_or(ItemStatus::Unspecified),
                campaign_id: r.get(3)?,
                item_id: r.get(4)?,
            })
        })
        .optional()?)
}

/// Moves one item's count from `from` to `to`, in one statement; the campaign is
/// DONE once nothing is left to send (every expression reads the row as it was).
fn move_count(tx: &Transaction<'_>, n: i64, from: ItemStatus, to: ItemStatus) -> Result<(), DbError> {
    let (from, to) = (count_column(from), count_column(to));
    if from == to {
        return Ok(());
    }
    let after = |column: &str| {
        let delta = i32::from(column == to) - i32::from(column == from);
        format!("({column} + {delta})")
    };
    let done = format!(
        "{} = 0 AND {} = 0 AND state IN ({}, {})",
        after("pending"),
        after("sending"),
        CampaignState::Running as i32,
        CampaignState::Paused as i32
    );
    tx.prepare_cached(&format!(
        "UPDATE campaigns SET {from} = {from} - 1, {to} = {to} + 1,
         state = CASE WHEN {done} THEN {} ELSE state END,
         pause_reason = CASE WHEN {done} THEN 0 ELSE pause_reason END,
         resume_at_ms = CASE WHEN {done} THEN 0 ELSE resume_at_ms END
         WHERE n = ?1",
        CampaignState::Done as i32
    ))?
    .execute([n])?;
    Ok(())
}
