//! The daily caps' record: one row per campaign send of a session (when, and
//! whether to a new contact) in `campaign_sent`, a single B-tree keyed by session,
//! kind and time. The writer adds a row with each item's accept and now and then
//! trims what left the 24-hour window (the counts read only the window); the pacer
//! reads how many sends the window holds and when the oldest went.

use std::time::SystemTime;

use rusqlite::{params, Connection, Transaction};

use super::DAY_MS;
use crate::store::{from_unix_ms, unix_ms, DbError};

/// The table, created with the log's own.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS campaign_sent (
    session_id  TEXT NOT NULL,
    new_contact INTEGER NOT NULL,
    at_ms       INTEGER NOT NULL,
    message_id  TEXT NOT NULL,
    PRIMARY KEY (session_id, new_contact, at_ms, message_id)
) WITHOUT ROWID;
";

/// One accept in this many (by its millisecond) trims its session's rows older
/// than a day: a row outside the window is never counted, so trimming only
/// bounds the table.
const TRIM_EVERY: i64 = 64;

/// Creates the table and moves in what the log kept before in `campaign_sends`
/// (a table and an index: two B-trees to write per send). Blocking.
pub fn open(conn: &Connection) -> Result<(), DbError> {
    conn.execute_batch(SCHEMA)?;
    let old: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'campaign_sends')",
        [],
        |r| r.get(0),
    )?;
    if old {
        // Moved whole or not at all (a transaction rolls back on drop unless committed).
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(
            "INSERT OR IGNORE INTO campaign_sent (session_id, new_contact, at_ms, message_id)
                 SELECT session_id, new_contact, at_ms, 'before-' || rowid FROM campaign_sends;
             DROP TABLE campaign_sends;",
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// A campaign item's message of `session_id` was accepted at `now_ms`: it counts
/// against the session's daily caps.
pub fn record(
    tx: &Transaction<'_>,
    session_id: &str,
    message_id: &str,
    new_contact: bool,
    now_ms: i64,
) -> Result<(), DbError> {
    if now_ms % TRIM_EVERY == 0 {
        trim(tx, session_id, now_ms)?;
    }
    tx.prepare_cached(
        "INSERT OR IGNORE INTO campaign_sent (session_id, new_contact, at_ms, message_id) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![session_id, new_contact, now_ms, message_id])?;
    Ok(())
}

/// Removes the session's rows that left the window before `now_ms`; how many.
fn trim(tx: &Transaction<'_>, session_id: &str, now_ms: i64) -> Result<usize, DbError> {
    Ok(tx
        .prepare_cached("DELETE FROM campaign_sent WHERE session_id = ?1 AND new_contact IN (0, 1) AND at_ms < ?2")?
        .execute(params![session_id, now_ms - DAY_MS])?)
}

/// A deleted session's record goes with it.
pub fn delete_session(tx: &Transaction<'_>, session_id: &str) -> Result<(), DbError> {
    tx.prepare_cached("DELETE FROM campaign_sent WHERE session_id = ?1")?
        .execute([session_id])?;
    Ok(())
}

/// The session's campaign sends since `since` (only to new contacts with
/// `new_contacts`): how many, and when the oldest of them was.
pub fn since(
    conn: &Connection,
    session_id: &str,
    new_contacts: bool,
    since: SystemTime,
) -> Result<(u64, Option<SystemTime>), DbError> {
    let since = unix_ms(since) as i64;
    let kinds: &[i64] = if new_contacts { &[1, 1] } else { &[0, 1] };
    let (count, oldest): (i64, Option<i64>) = conn
        .prepare_cached(
            "SELECT COUNT(*), MIN(at_ms) FROM campaign_sent WHERE session_id = ?1 AND new_contact IN (?2, ?3) AND at_ms >= ?4",
        )?
        .query_row(params![session_id, kinds[0], kinds[1], since], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((count as u64, oldest.map(|ms| from_unix_ms(ms.max(0) as u64))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_kept_before_moves_in_and_is_counted_in_the_window() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE campaign_sends (session_id TEXT NOT NULL, at_ms INTEGER NOT NULL, new_contact INTEGER NOT NULL);
             CREATE INDEX campaign_sends_by_session ON campaign_sends (session_id, new_contact, at_ms);",
        )
        .unwrap();
        let now = unix_ms(SystemTime::now()) as i64;
        // Two sends at the same millisecond (one to a new contact), one a day ago,
        // and another session's.
        for (session, at, new) in [
            ("s", now - 10, 0),
            ("s", now - 10, 1),
            ("s", now - DAY_MS - 5, 0),
            ("t", now, 1),
        ] {
            conn.execute(
                "INSERT INTO campaign_sends (session_id, at_ms, new_contact) VALUES (?1, ?2, ?3)",
                params![session, at, new],
            )
            .unwrap();
        }
        open(&conn).unwrap();
        open(&conn).unwrap();
        let window = from_unix_ms((now - DAY_MS) as u64);
        assert_eq!(
            since(&conn, "s", false, window).unwrap(),
            (2, Some(from_unix_ms((now - 10) as u64)))
        );
        assert_eq!(since(&conn, "s", true, window).unwrap().0, 1);
        let tx = conn.transaction().unwrap();
        record(&tx, "s", "m1", true, now).unwrap();
        delete_session(&tx, "t").unwrap();
        // Only the row a day old leaves; the window's count is the same after.
        assert_eq!(trim(&tx, "s", now).unwrap(), 1);
        tx.commit().unwrap();
        assert_eq!(since(&conn, "s", false, window).unwrap().0, 3);
        assert_eq!(since(&conn, "s", true, window).unwrap().0, 2);
        assert_eq!(since(&conn, "t", true, window).unwrap(), (0, None));
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM campaign_sent", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 3, "the two moved in within the window and the one recorded");
        let old: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'campaign_sends')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!old, "the old table is gone once moved");
    }
}
