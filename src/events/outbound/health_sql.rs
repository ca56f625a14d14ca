//! The account's health as the log keeps it (`health` table): WhatsApp's
//! restrictions on each session's account, changed on the writer thread together
//! with the EVENT_KIND_HEALTH event that reports the change; the sends WhatsApp
//! refused over the last 24 hours are counted from the outbound log when read.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use rusqlite::{params, Connection, OptionalExtension};

use super::{HealthSignal, MessageStatus};
use crate::{
    events::{Body, NewEvent},
    proto::{AccountHealth, TempBan},
    store::{from_unix_ms, unix_ms, DbError},
};

/// The table, created with the log's own.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS health (
    session_id        TEXT PRIMARY KEY NOT NULL,
    reachout_until_ms INTEGER NOT NULL DEFAULT 0,
    ban_code          INTEGER NOT NULL DEFAULT 0,
    ban_until_ms      INTEGER NOT NULL DEFAULT 0,
    rate_until_ms     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
";

/// How far back refused sends are counted.
const NACK_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// One session's stored restrictions, in unix milliseconds (0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stored {
    reachout_until: i64,
    ban_code: u32,
    ban_until: i64,
    rate_until: i64,
}

/// Applies `signal`; the health event to log when it changed anything.
pub fn apply(conn: &Connection, session_id: &str, signal: &HealthSignal) -> Result<Option<NewEvent>, DbError> {
    let before = stored(conn, session_id)?;
    let ms = |t: SystemTime| unix_ms(t) as i64;
    let mut after = before;
    match signal {
        HealthSignal::Reachout { until } => after.reachout_until = until.map(ms).unwrap_or(0),
        HealthSignal::TempBan { code, until } => {
            after.ban_code = *code;
            after.ban_until = ms(*until);
        }
        HealthSignal::BanLifted => {
            after.ban_code = 0;
            after.ban_until = 0;
        }
        HealthSignal::RateLimited { until } => after.rate_until = ms(*until),
    }
    if after == before {
        return Ok(None);
    }
    conn.prepare_cached(
        "INSERT INTO health (session_id, reachout_until_ms, ban_code, ban_until_ms, rate_until_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(session_id) DO UPDATE SET reachout_until_ms = excluded.reachout_until_ms, ban_code = excluded.ban_code,
         ban_until_ms = excluded.ban_until_ms, rate_until_ms = excluded.rate_until_ms",
    )?
    .execute(params![session_id, after.reachout_until, after.ban_code, after.ban_until, after.rate_until])?;
    Ok(Some(event(conn, session_id)?))
}

/// The health event to log after WhatsApp refused a send (its counts changed).
pub fn event(conn: &Connection, session_id: &str) -> Result<NewEvent, DbError> {
    Ok(NewEvent::now(session_id, Body::Health(read(conn, session_id)?)))
}

/// The account's health now: restrictions still in force, and the refused sends
/// of the last 24 hours by code.
pub fn read(conn: &Connection, session_id: &str) -> Result<AccountHealth, DbError> {
    let now = SystemTime::now();
    let mut health = restrictions(conn, session_id)?;
    let since = unix_ms(now - NACK_WINDOW) as i64;
    let mut nacks = HashMap::new();
    // The status is written into the statement: compared with a bound parameter,
    // the partial index on unsent messages would have SQLite prepare it each time.
    let sql = format!(
        "SELECT error_code, COUNT(*) FROM outbound WHERE session_id = ?1 AND status = {} AND error_code != 0 AND updated_ms >= ?2 GROUP BY error_code",
        MessageStatus::Failed as i32
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(params![session_id, since])?;
    while let Some(row) = rows.next()? {
        nacks.insert(row.get::<_, u32>(0)?, row.get::<_, u32>(1)?);
    }
    health.nacks = nacks;
    Ok(health)
}

/// The restrictions in force now, without the refused sends (a pacer's read
/// before each item: one row, whatever the session sent).
pub fn restrictions(conn: &Connection, session_id: &str) -> Result<AccountHealth, DbError> {
    let now_ms = unix_ms(SystemTime::now()) as i64;
    let s = stored(conn, session_id)?;
    let at = |ms: i64| (ms > now_ms).then(|| from_unix_ms(ms as u64).into());
    Ok(AccountHealth {
        reachout_restricted_until: at(s.reachout_until),
        temp_ban: at(s.ban_until).map(|until| TempBan {
            reason_code: s.ban_code,
            until: Some(until),
        }),
        rate_limited_until: at(s.rate_until),
        nacks: HashMap::new(),
    })
}

/// Forgets a deleted session's health.
pub fn delete_session(conn: &Connection, session_id: &str) -> Result<(), DbError> {
    conn.execute("DELETE FROM health WHERE session_id = ?1", [session_id])?;
    Ok(())
}

fn stored(conn: &Connection, session_id: &str) -> Result<Stored, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT reachout_until_ms, ban_code, ban_until_ms, rate_until_ms FROM health WHERE session_id = ?1",
        )?
        .query_row([session_id], |row| {
            Ok(Stored {
                reachout_until: row.get(0)?,
                ban_code: row.get(1)?,
                ban_until: row.get(2)?,
                rate_until: row.get(3)?,
            })
        })
        .optional()?
        .unwrap_or_default())
}
