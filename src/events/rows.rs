//! The event log's rows: its tables, how one event is written (its sequence
//! number, its encoded body, and the dedupe key that keeps a message once), and how
//! a deleted session's past goes (hidden by its removal mark, removed in chunks).

use prost::Message as _;
use rusqlite::{params, OptionalExtension, Transaction};

use super::{Body, Event, InboundMessage, NewEvent};
use crate::proto::MessageKind;
use crate::store::{unix_ms, DbError};

/// Per-row bytes counted beyond the body (keys, columns, index entries).
pub const ROW_OVERHEAD: u64 = 64;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    cursor     INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    time_ms    INTEGER NOT NULL,
    kind       INTEGER NOT NULL,
    dedupe     TEXT,
    body       BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_dedupe ON events (session_id, dedupe) WHERE dedupe IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_session ON events (session_id, cursor);
CREATE TABLE IF NOT EXISTS session_seq (
    session_id TEXT PRIMARY KEY NOT NULL,
    last_seq   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consumers (
    name          TEXT PRIMARY KEY NOT NULL,
    cursor        INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS removals (
    session_id TEXT PRIMARY KEY NOT NULL,
    through    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Writes one event as number `seq` of its session; None when the message is
/// already in the log. Returns its cursor and the bytes it counts for.
pub fn insert(tx: &Transaction<'_>, event: &NewEvent, seq: u64) -> Result<Option<(u64, u64)>, DbError> {
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO events (session_id, seq, time_ms, kind, dedupe, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let body = Event {
        body: Some(event.body.clone()),
        ..Default::default()
    }
    .encode_to_vec();
    if is_placeholder(&event.body) && message_logged(tx, event)? {
        // Recovered (or delivered) already: nothing is missing any more.
        return Ok(None);
    }
    let written = insert.execute(params![
        event.session_id,
        seq as i64,
        unix_ms(event.time) as i64,
        event.kind() as i32,
        dedupe_key(&event.body),
        body,
    ])?;
    if written == 0 {
        return Ok(None);
    }
    Ok(Some((tx.last_insert_rowid() as u64, body.len() as u64 + ROW_OVERHEAD)))
}

/// Removes an event that `event` would duplicate when it belongs to a deleted
/// incarnation of its session (before the session's `deleted` event, not yet
/// removed), so the session created again logs it anew. The bytes freed.
pub fn forget_deleted_duplicate(tx: &Transaction<'_>, event: &NewEvent) -> Result<u64, DbError> {
    let Some(key) = dedupe_key(&event.body) else {
        return Ok(0);
    };
    let freed: Option<i64> = tx
        .prepare_cached(
            "DELETE FROM events WHERE session_id = ?1 AND dedupe = ?2
               AND cursor < (SELECT through FROM removals WHERE session_id = ?1)
             RETURNING length(body)",
        )?
        .query_row(params![event.session_id, key], |row| row.get(0))
        .optional()?;
    Ok(freed.map_or(0, |bytes| bytes as u64 + ROW_OVERHEAD))
}

/// Removes up to `chunk` events of deleted sessions (those before each one's
/// `deleted` event); a session whose events are all gone is done. The number
/// removed and the bytes they counted for, by session.
pub fn remove_deleted(tx: &Transaction<'_>, chunk: usize) -> Result<(usize, Vec<(String, u64)>), DbError> {
    let pending: Vec<(String, i64)> = tx
        .prepare_cached("SELECT session_id, through FROM removals")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let (mut removed, mut freed) = (0usize, Vec::new());
    for (session_id, through) in pending {
        let budget = chunk - removed;
        if budget == 0 {
            break;
        }
        let (rows, bodies, last): (i64, i64, Option<i64>) = tx
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(length(body)), 0), MAX(cursor) FROM
                   (SELECT cursor, body FROM events WHERE session_id = ?1 AND cursor < ?2 ORDER BY cursor LIMIT ?3)",
            )?
            .query_row(params![session_id, through, budget as i64], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?;
        if let Some(last) = last {
            tx.prepare_cached("DELETE FROM events WHERE session_id = ?1 AND cursor <= ?2")?
                .execute(params![session_id, last])?;
        }
        if (rows as usize) < budget {
            tx.prepare_cached("DELETE FROM removals WHERE session_id = ?1")?
                .execute([&session_id])?;
        }
        removed += rows as usize;
        freed.push((session_id, bodies as u64 + rows as u64 * ROW_OVERHEAD));
    }
    Ok((removed, freed))
}

/// Whether `body` is an undecryptable message's placeholder.
fn is_placeholder(body: &Body) -> bool {
    matches!(body, Body::Message(m) if m.kind == MessageKind::Undecryptable as i32)
}

/// Whether the message an undecryptable placeholder stands for is in the log.
fn message_logged(tx: &Transaction<'_>, event: &NewEvent) -> Result<bool, DbError> {
    let Body::Message(m) = &event.body else {
        return Ok(false);
    };
    let found: Option<i64> = tx
        .prepare_cached("SELECT 1 FROM events WHERE session_id = ?1 AND dedupe = ?2")?
        .query_row(params![event.session_id, message_key(m)], |row| row.get(0))
        .optional()?;
    Ok(found.is_some())
}

/// A message's key: (chat, sender, id).
fn message_key(m: &InboundMessage) -> String {
    format!("{}\u{1f}{}\u{1f}{}", m.chat, m.sender, m.id)
}

/// What makes a message the same message: (chat, sender, id) within its session;
/// an undecryptable message's placeholder, the same with a `u` and a separator
/// first (so the message itself, recovered later, is logged after it, and a
/// placeholder delivered again is logged once);
/// and a receipt the same receipt: (chat, from, kind, ids), so a receipt WhatsApp
/// (or the emulated server) delivers again after a crash is logged once. A receipt's
/// key starts with `r` and a separator, which no chat JID is.
fn dedupe_key(body: &Body) -> Option<String> {
    match body {
        Body::Message(m) if is_placeholder(body) => Some(format!("u\u{1f}{}", message_key(m))),
        Body::Message(m) => Some(message_key(m)),
        Body::Receipt(r) => Some(format!(
            "r\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
            r.chat,
            r.from,
            r.kind,
            r.message_ids.join(",")
        )),
        _ => None,
    }
}
