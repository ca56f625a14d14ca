//! Named consumers' positions, written on the log's writer thread: an ack keeps
//! the newer of the stored position and the new one, and a new consumer beyond the
//! bound is refused.

use rusqlite::{params, Transaction};

use crate::store::{unix_ms, DbError};

/// Stores `consumer`'s position (`max`: the most consumers kept, 0 no bound); the
/// position stored, or None for a new consumer beyond the bound.
pub(super) fn ack(tx: &Transaction<'_>, consumer: &str, cursor: u64, max: usize) -> Result<Option<u64>, DbError> {
    if max > 0 {
        let known: i64 = tx
            .prepare_cached("SELECT COUNT(*) FROM consumers WHERE name = ?1")?
            .query_row([consumer], |row| row.get(0))?;
        let count: i64 = tx
            .prepare_cached("SELECT COUNT(*) FROM consumers")?
            .query_row([], |row| row.get(0))?;
        if known == 0 && count as usize >= max {
            return Ok(None);
        }
    }
    let now = unix_ms(std::time::SystemTime::now()) as i64;
    let stored: i64 = tx
        .prepare_cached(
            "INSERT INTO consumers (name, cursor, updated_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET cursor = max(cursor, excluded.cursor), updated_at_ms = excluded.updated_at_ms
             RETURNING cursor",
        )?
        .query_row(params![consumer, cursor as i64, now], |row| row.get(0))?;
    Ok(Some(stored as u64))
}
