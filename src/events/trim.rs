//! Trimming the log, on the writer's transaction: the age rule (the oldest events
//! of the whole log go, a prefix marked by `trimmed_through`) and the fair byte
//! cap. While the log keeps more than `--event-retention-bytes`, the sessions
//! keeping the most lose their oldest events first, down to a common level (the
//! water level: every session under it keeps all it has), so one account flooded
//! by outsiders cannot push out the other sessions' events. A session trimmed that
//! way gets a mark of its own (every event of it up to there is gone), which tells
//! its readers what they missed; when the events gone are the log's oldest, the
//! log's mark moves too. The bytes each session keeps are counted as its events
//! come and go.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::rows::ROW_OVERHEAD;
use crate::store::DbError;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS session_bytes (
    session_id TEXT PRIMARY KEY NOT NULL,
    bytes      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS session_trims (
    session_id TEXT PRIMARY KEY NOT NULL,
    through    INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Creates the tables; a log written before them has its sessions' bytes counted
/// once. Blocking.
pub fn open(conn: &Connection) -> Result<(), DbError> {
    conn.execute_batch(SCHEMA)?;
    let counted: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = 'session_bytes'", [], |row| {
            row.get(0)
        })
        .optional()?;
    if counted.is_none() {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;
             DELETE FROM session_bytes;
             INSERT INTO session_bytes (session_id, bytes)
               SELECT session_id, SUM(length(body)) + COUNT(*) * {ROW_OVERHEAD} FROM events GROUP BY session_id;
             INSERT INTO meta (key, value) VALUES ('session_bytes', 1);
             COMMIT;"
        ))?;
    }
    Ok(())
}

/// `session_id` keeps `delta` more bytes (fewer when negative).
pub fn count(tx: &Transaction<'_>, session_id: &str, delta: i64) -> Result<(), DbError> {
    if delta == 0 {
        return Ok(());
    }
    tx.prepare_cached(
        "INSERT INTO session_bytes (session_id, bytes) VALUES (?1, ?2)
         ON CONFLICT(session_id) DO UPDATE SET bytes = bytes + excluded.bytes",
    )?
    .execute(params![session_id, delta])?;
    Ok(())
}

/// A deleted session's mark goes with its past (hidden from the delete on).
pub fn forget_mark(tx: &Transaction<'_>, session_id: &str) -> Result<(), DbError> {
    tx.prepare_cached("DELETE FROM session_trims WHERE session_id = ?1")?
        .execute([session_id])?;
    Ok(())
}

/// What one trim removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Trimmed {
    /// Events removed.
    pub removed: usize,
    /// The bytes they counted for.
    pub freed: u64,
    /// The log's new mark, when the oldest events of all went.
    pub through: Option<u64>,
}

/// Removes up to `chunk` of the log's oldest events, those logged before
/// `before_ms` (in log order: it stops at the first one that is not).
pub fn by_age(tx: &Transaction<'_>, before_ms: i64, chunk: usize) -> Result<Trimmed, DbError> {
    let mut freed_by: HashMap<String, u64> = HashMap::new();
    let mut trimmed = Trimmed::default();
    let mut last = None;
    {
        let mut oldest =
            tx.prepare_cached("SELECT cursor, time_ms, session_id, length(body) FROM events ORDER BY cursor LIMIT ?1")?;
        let mut rows = oldest.query([chunk as i64])?;
        while let Some(row) = rows.next()? {
            let (cursor, time_ms, session_id, size): (i64, i64, String, i64) =
                (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
            if time_ms >= before_ms {
                break;
            }
            let bytes = size as u64 + ROW_OVERHEAD;
            *freed_by.entry(session_id).or_default() += bytes;
            trimmed.freed += bytes;
            trimmed.removed += 1;
            last = Some(cursor);
        }
    }
    let Some(last) = last else { return Ok(trimmed) };
    tx.prepare_cached("DELETE FROM events WHERE cursor <= ?1")?
        .execute([last])?;
    for (session_id, freed) in freed_by {
        count(tx, &session_id, -(freed as i64))?;
    }
    mark_log(tx, last)?;
    trimmed.through = Some(last as u64);
    Ok(trimmed)
}

/// When the log keeps `kept` bytes, more than `max_bytes` (0: no bound): removes
/// up to `chunk` of the oldest events of the session keeping the most, down to the
/// water level (at least one event), and marks it.
pub fn by_size(tx: &Transaction<'_>, kept: u64, max_bytes: u64, chunk: usize) -> Result<Trimmed, DbError> {
    let mut trimmed = Trimmed::default();
    if max_bytes == 0 || kept <= max_bytes {
        return Ok(trimmed);
    }
    let sizes: Vec<(String, u64)> = tx
        .prepare_cached("SELECT session_id, bytes FROM session_bytes WHERE bytes > 0 ORDER BY bytes DESC")?
        .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)?.max(0) as u64)))?
        .collect::<Result<_, _>>()?;
    let Some((session_id, biggest)) = sizes.first() else {
        return Ok(trimmed);
    };
    let level = water_level(&sizes.iter().map(|(_, bytes)| *bytes).collect::<Vec<_>>(), max_bytes);
    let (over, mut left) = (kept - max_bytes, *biggest);
    let mut last = None;
    {
        let mut oldest = tx
            .prepare_cached("SELECT cursor, length(body) FROM events WHERE session_id = ?1 ORDER BY cursor LIMIT ?2")?;
        let mut rows = oldest.query(params![session_id, chunk as i64])?;
        while let Some(row) = rows.next()? {
            if trimmed.removed > 0 && (trimmed.freed >= over || left <= level) {
                break;
            }
            let (cursor, size): (i64, i64) = (row.get(0)?, row.get(1)?);
            let bytes = size as u64 + ROW_OVERHEAD;
            trimmed.freed += bytes;
            left = left.saturating_sub(bytes);
            trimmed.removed += 1;
            last = Some(cursor);
        }
    }
    let Some(last) = last else { return Ok(trimmed) };
    tx.prepare_cached("DELETE FROM events WHERE session_id = ?1 AND cursor <= ?2")?
        .execute(params![session_id, last])?;
    count(tx, session_id, -(trimmed.freed as i64))?;
    tx.prepare_cached(
        "INSERT INTO session_trims (session_id, through) VALUES (?1, ?2)
         ON CONFLICT(session_id) DO UPDATE SET through = max(through, excluded.through)",
    )?
    .execute(params![session_id, last])?;
    let oldest_kept: Option<i64> = tx
        .prepare_cached("SELECT MIN(cursor) FROM events")?
        .query_row([], |row| row.get(0))?;
    if oldest_kept.is_none_or(|oldest| oldest > last) {
        mark_log(tx, last)?;
        trimmed.through = Some(last as u64);
    }
    Ok(trimmed)
}

/// Every event up to `last` is gone.
fn mark_log(tx: &Transaction<'_>, last: i64) -> Result<(), DbError> {
    tx.prepare_cached(
        "INSERT INTO meta (key, value) VALUES ('trimmed_through', ?1)
         ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
    )?
    .execute([last])?;
    Ok(())
}

/// The most bytes each session may keep so that all of them keep at most `cap`
/// together, taking nothing from a session under it (max-min fairness). `sizes`
/// are the sessions' bytes, biggest first.
pub fn water_level(sizes: &[u64], cap: u64) -> u64 {
    let total: u64 = sizes.iter().sum();
    if total <= cap {
        return sizes.first().copied().unwrap_or(0);
    }
    // The `capped` biggest sessions share what the others leave of the cap.
    let mut capped_sum = 0u64;
    for (capped, size) in sizes.iter().enumerate() {
        capped_sum += size;
        let rest = total - capped_sum;
        let level = cap.saturating_sub(rest) / (capped as u64 + 1);
        let next = sizes.get(capped + 1).copied().unwrap_or(0);
        if level >= next {
            return level;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::water_level;

    #[test]
    fn the_water_level_takes_only_from_sessions_above_it() {
        assert_eq!(water_level(&[], 100), 0);
        assert_eq!(water_level(&[60, 30], 100), 60, "under the cap: nobody loses anything");
        assert_eq!(water_level(&[1000, 10, 5], 100), 85, "the flood alone pays");
        assert_eq!(
            water_level(&[500, 400, 10], 110),
            50,
            "the two big ones share what is left"
        );
        assert_eq!(water_level(&[50, 50, 50], 90), 30, "equals share equally");
        assert_eq!(water_level(&[500, 300], 0), 0);
    }

    #[test]
    fn sessions_at_the_level_keep_the_cap_between_them() {
        for (sizes, cap) in [
            (vec![900u64, 200, 90, 3], 400u64),
            (vec![7, 7, 7, 7], 20),
            (vec![1000], 10),
        ] {
            let level = water_level(&sizes, cap);
            let kept: u64 = sizes.iter().map(|s| (*s).min(level)).sum();
            assert!(kept <= cap, "{sizes:?} at {level} keep {kept} > {cap}");
            assert!(
                kept + sizes.len() as u64 > cap,
                "{sizes:?} at {level} keep only {kept} of {cap}"
            );
        }
    }
}
