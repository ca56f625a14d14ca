//! The campaign tables' reads, on the log's read-only connections (and inside the
//! writer's transactions): a campaign, a page of campaigns or items, the next
//! pending items in order, whether a chat is a new contact, the sends the daily
//! caps count, and the numbers' cached verdicts (`skip_unregistered`).

use std::time::SystemTime;

use rusqlite::{params, Connection, OptionalExtension};

use super::{
    item_status,
    items::{is_under_way, UNDER_WAY},
    CampaignRow, CampaignState, CheckRow, Counts, ItemRow, ItemStatus, MessageStatus, PauseReason, Verdict,
};
use crate::store::{from_unix_ms, DbError};

const CAMPAIGN: &str = "n, id, session_id, state, pause_reason, resume_at_ms, pacing, labels, fingerprint, created_ms,
    total, pending, sending, sent, server_ack, delivered, read, failed, skipped, cancelled";

const ITEM: &str = "seq, item_id, chat, status, message_id, error_code, error, sent_ms, content";

/// A campaign by id.
pub fn campaign(conn: &Connection, id: &str) -> Result<Option<CampaignRow>, DbError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {CAMPAIGN} FROM campaigns WHERE id = ?1"))?
        .query_row([id], campaign_row)
        .optional()?)
}

/// Campaigns ordered by id after `after`, of one session (None: all), at most `limit`.
pub fn list(
    conn: &Connection,
    session_id: Option<&str>,
    after: &str,
    limit: usize,
) -> Result<Vec<CampaignRow>, DbError> {
    let sql = match session_id {
        Some(_) => format!("SELECT {CAMPAIGN} FROM campaigns WHERE session_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"),
        None => format!("SELECT {CAMPAIGN} FROM campaigns WHERE ?1 IS NULL AND id > ?2 ORDER BY id LIMIT ?3"),
    };
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params![session_id, after, limit as i64], campaign_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A session's campaigns that are not over (RUNNING or PAUSED), in id order.
pub fn live(conn: &Connection, session_id: &str) -> Result<Vec<CampaignRow>, DbError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {CAMPAIGN} FROM campaigns WHERE session_id = ?1 AND state IN (1, 2) ORDER BY id"
    ))?;
    let rows = statement.query_map([session_id], campaign_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Sessions with a campaign that is not over.
pub fn sessions(conn: &Connection) -> Result<Vec<String>, DbError> {
    let mut statement = conn.prepare_cached("SELECT DISTINCT session_id FROM campaigns WHERE state IN (1, 2)")?;
    let rows = statement.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A campaign's items after position `after` (-1: from the start), in order, of one
/// status (None: any), at most `limit`. An item under way has its message's status
/// (the outbound log's), which its own row does not follow ([`super::items::follow`]).
pub fn items(
    conn: &Connection,
    n: i64,
    status: Option<ItemStatus>,
    after: i64,
    limit: usize,
) -> Result<Vec<ItemRow>, DbError> {
    // Statuses are written into the statements (a cached statement per status):
    // SQLite plans each for its status.
    let sql = match status {
        Some(status) if !is_under_way(status) => format!(
            "SELECT {ITEM} FROM campaign_items WHERE campaign = ?1 AND {}status = {} AND seq > ?2 ORDER BY seq LIMIT ?3",
            ended_index(status),
            status as i32
        ),
        Some(status) => format!(
            "SELECT {} WHERE i.campaign = ?1 AND i.status IN ({}) AND {} = {} AND i.seq > ?2 ORDER BY i.seq LIMIT ?3",
            items_now(),
            under_way_list(),
            status_now(),
            status as i32
        ),
        None => format!(
            "SELECT {} WHERE i.campaign = ?1 AND i.seq > ?2 ORDER BY i.seq LIMIT ?3",
            items_now()
        ),
    };
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params![n, after, limit as i64], item_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What a query of items of `status` says for SQLite to use the index of the
/// statuses items end in unsent or failed (`campaign_items_ended`, partial: a
/// query must name its condition).
fn ended_index(status: ItemStatus) -> &'static str {
    match status {
        ItemStatus::Failed | ItemStatus::Skipped | ItemStatus::Cancelled => "status IN (7, 8, 9) AND ",
        _ => "",
    }
}

/// The item columns, and what they are read from, with each item's status now.
fn items_now() -> String {
    format!(
        "i.seq, i.item_id, i.chat, {}, i.message_id, i.error_code, i.error, i.sent_ms, i.content
         FROM campaign_items i LEFT JOIN campaigns c ON c.n = i.campaign
         LEFT JOIN outbound o ON o.session_id = c.session_id AND o.message_id = i.message_id",
        status_now()
    )
}

/// An item's status now, in SQL: its message's while it is under way, else its own.
fn status_now() -> String {
    let statuses = [
        MessageStatus::Unspecified,
        MessageStatus::Queued,
        MessageStatus::Sent,
        MessageStatus::ServerAck,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Played,
        MessageStatus::Failed,
    ];
    let arms: String = statuses
        .iter()
        .map(|&m| format!(" WHEN {} THEN {}", m as i32, item_status(m) as i32))
        .collect();
    format!(
        "(CASE WHEN i.status IN ({}) AND o.status IS NOT NULL THEN (CASE o.status{arms} ELSE i.status END) ELSE i.status END)",
        under_way_list()
    )
}

/// The statuses under way, as an SQL list.
fn under_way_list() -> String {
    UNDER_WAY.map(|status| (status as i32).to_string()).join(", ")
}

/// The next PENDING items of a campaign after position `after`, in order.
pub fn pending(conn: &Connection, n: i64, after: i64, limit: usize) -> Result<Vec<ItemRow>, DbError> {
    items(conn, n, Some(ItemStatus::Pending), after, limit)
}

/// What a campaign sends next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// This item (true: to a new contact).
    Item(Box<ItemRow>, bool),
    /// Only items to new contacts are pending (among the first `scan`).
    OnlyNew,
    /// Nothing is pending.
    Nothing,
}

/// The first PENDING item of a campaign, skipping those to new contacts with
/// `skip_new` (looking at most `scan` items ahead).
pub fn next(conn: &Connection, session_id: &str, n: i64, skip_new: bool, scan: usize) -> Result<Next, DbError> {
    let items = pending(conn, n, -1, if skip_new { scan } else { 1 })?;
    if items.is_empty() {
        return Ok(Next::Nothing);
    }
    for item in items {
        let new = is_new_contact(conn, session_id, &item.chat)?;
        if !(skip_new && new) {
            return Ok(Next::Item(Box::new(item), new));
        }
    }
    Ok(Next::OnlyNew)
}

/// The first `limit` PENDING items of a campaign, each with whether its chat is
/// a new contact: what the pacer sends next while nothing restricts new contacts.
pub fn next_batch(conn: &Connection, session_id: &str, n: i64, limit: usize) -> Result<Vec<(ItemRow, bool)>, DbError> {
    let items = pending(conn, n, -1, limit)?;
    let mut batch = Vec::with_capacity(items.len());
    for item in items {
        let new = is_new_contact(conn, session_id, &item.chat)?;
        batch.push((item, new));
    }
    Ok(batch)
}

/// Whether the account never exchanged a message with `chat`: nothing received
/// from it in the log, nothing sent to it that the server took.
pub fn is_new_contact(conn: &Connection, session_id: &str, chat: &str) -> Result<bool, DbError> {
    let (from, to) = (format!("{chat}\u{1f}"), format!("{chat}\u{20}"));
    let received = conn
        .prepare_cached("SELECT 1 FROM events WHERE session_id = ?1 AND dedupe >= ?2 AND dedupe < ?3 LIMIT 1")?
        .exists(params![session_id, from, to])?;
    if received {
        return Ok(false);
    }
    // The statuses are written into the statement (see `items`).
    let taken = [
        MessageStatus::ServerAck,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Played,
    ]
    .map(|s| (s as i32).to_string())
    .join(", ");
    let sql = format!("SELECT 1 FROM outbound WHERE session_id = ?1 AND chat = ?2 AND status IN ({taken}) LIMIT 1");
    let sent = conn.prepare_cached(&sql)?.exists(params![session_id, chat])?;
    Ok(!sent)
}

/// A chat's cached verdict for the session, and when it was checked.
pub fn verdict(conn: &Connection, session_id: &str, chat: &str) -> Result<Option<(Verdict, SystemTime)>, DbError> {
    let found: Option<(i32, i64)> = conn
        .prepare_cached("SELECT verdict, checked_ms FROM campaign_numbers WHERE session_id = ?1 AND chat = ?2")?
        .query_row(params![session_id, chat], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(found.map(|(verdict, ms)| {
        let verdict = if verdict == Verdict::Registered as i32 {
            Verdict::Registered
        } else {
            Verdict::Unregistered
        };
        (verdict, from_unix_ms(ms.max(0) as u64))
    }))
}

/// The first `limit` PENDING items of a campaign, each with whether its chat is a
/// new contact (user chats only) and its cached verdict: what one lookup covers.
pub fn check_batch(conn: &Connection, session_id: &str, n: i64, limit: usize) -> Result<Vec<CheckRow>, DbError> {
    let mut rows = Vec::with_capacity(limit);
    for item in pending(conn, n, -1, limit)? {
        let user = item.chat.ends_with(USER_SERVER);
        let new = user && is_new_contact(conn, session_id, &item.chat)?;
        let cached = if new {
            verdict(conn, session_id, &item.chat)?
        } else {
            None
        };
        rows.push(CheckRow {
            seq: item.seq,
            chat: item.chat,
            new,
            cached,
        });
    }
    Ok(rows)
}

/// The server of a person's chat (groups are `@g.us`).
pub const USER_SERVER: &str = "@s.whatsapp.net";

/// How many campaigns are in each state and pause reason.
pub type ByState = Vec<(CampaignState, PauseReason, i64)>;

/// Campaigns by state and pause reason, and every campaign's counts summed.
pub fn gauges(conn: &Connection) -> Result<(ByState, Counts), DbError> {
    let mut statement =
        conn.prepare_cached("SELECT state, pause_reason, COUNT(*) FROM campaigns GROUP BY state, pause_reason")?;
    let rows = statement.query_map([], |r| {
        Ok((
            CampaignState::try_from(r.get::<_, i32>(0)?).unwrap_or(CampaignState::Unspecified),
            PauseReason::try_from(r.get::<_, i32>(1)?).unwrap_or(PauseReason::Unspecified),
            r.get::<_, i64>(2)?,
        ))
    })?;
    let by_state = rows.collect::<Result<_, _>>()?;
    let counts = conn.query_row(
        "SELECT COALESCE(SUM(total), 0), COALESCE(SUM(pending), 0),
         COALESCE(SUM(sending), 0), COALESCE(SUM(sent), 0), COALESCE(SUM(server_ack), 0), COALESCE(SUM(delivered), 0),
         COALESCE(SUM(read), 0), COALESCE(SUM(failed), 0), COALESCE(SUM(skipped), 0), COALESCE(SUM(cancelled), 0)
         FROM campaigns",
        [],
        |r| counts_from(r, 0),
    )?;
    Ok((by_state, counts))
}

/// The ten counts (total first) from column `first` of `r` on.
fn counts_from(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Counts> {
    let count = |i: usize| r.get::<_, i64>(first + i).map(|v| v.max(0) as u64);
    Ok(Counts {
        total: count(0)?,
        pending: count(1)?,
        sending: count(2)?,
        sent: count(3)?,
        server_ack: count(4)?,
        delivered: count(5)?,
        read: count(6)?,
        failed: count(7)?,
        skipped: count(8)?,
        cancelled: count(9)?,
    })
}

fn campaign_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CampaignRow> {
    let resume_ms: i64 = r.get(5)?;
    let pacing: String = r.get(6)?;
    let labels: String = r.get(7)?;
    let bad = |e: serde_json::Error| rusqlite::Error::ToSqlConversionFailure(Box::new(e));
    Ok(CampaignRow {
        n: r.get(0)?,
        id: r.get(1)?,
        session_id: r.get(2)?,
        state: CampaignState::try_from(r.get::<_, i32>(3)?).unwrap_or(CampaignState::Unspecified),
        pause_reason: PauseReason::try_from(r.get::<_, i32>(4)?).unwrap_or(PauseReason::Unspecified),
        resume_at: (resume_ms > 0).then(|| from_unix_ms(resume_ms as u64)),
        pacing: serde_json::from_str(&pacing).map_err(bad)?,
        labels: serde_json::from_str(&labels).map_err(bad)?,
        fingerprint: r.get(8)?,
        created_at: from_unix_ms(r.get::<_, i64>(9)?.max(0) as u64),
        counts: counts_from(r, 10)?,
    })
}

fn item_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ItemRow> {
    let sent_ms: i64 = r.get(7)?;
    Ok(ItemRow {
        seq: r.get::<_, i64>(0)?.max(0) as u64,
        item_id: r.get(1)?,
        chat: r.get(2)?,
        status: ItemStatus::try_from(r.get::<_, i32>(3)?).unwrap_or(ItemStatus::Unspecified),
        message_id: r.get(4)?,
        error_code: r.get(5)?,
        error: r.get(6)?,
        sent_at: (sent_ms > 0).then(|| from_unix_ms(sent_ms as u64)),
        content: r.get(8)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partial_indexes_name_the_statuses_they_cover() {
        // campaign_items_to_send covers status 1, campaign_items_ended 7, 8 and 9
        // (the schema and the queries write them as numbers).
        let ended = [ItemStatus::Failed, ItemStatus::Skipped, ItemStatus::Cancelled];
        assert_eq!(ItemStatus::Pending as i32, 1);
        assert_eq!(ended.map(|s| s as i32), [7, 8, 9]);
        assert!(ended.iter().all(|s| !ended_index(*s).is_empty()));
        assert!(ended_index(ItemStatus::Pending).is_empty() && ended_index(ItemStatus::ServerAck).is_empty());
    }
}
