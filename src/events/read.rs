//! Reading the event log: pages of events after a cursor (filtered by session and
//! kind), consumer positions and the oldest event, on a small pool of read-only
//! connections run off the async workers. WAL lets them read while the writer
//! commits.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use prost::Message as _;
use rusqlite::{types::Value, Connection, OpenFlags, OptionalExtension};

use super::{format_cursor, Event, EventKind};
use crate::store::DbError;

/// Read connections at most: readers beyond it wait their turn (a page read is
/// short), so any number of streams costs at most this many SQLite caches.
const POOL: usize = 4;

/// Each read connection's page cache, in KiB.
const CACHE_KIB: i64 = 1024;

/// Which events a reader wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only these sessions (empty: all).
    pub sessions: Vec<String>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<EventKind>,
    /// Sessions' trims (session, mark) the reader knew of when it started from the
    /// oldest event kept: gaps it accepted. Only a trim past these ends it.
    pub accepted: Vec<(String, u64)>,
}

/// Events read in one snapshot, and how far that snapshot had trimmed the log.
pub(super) struct Page {
    /// The events after the position asked for, in log order.
    pub events: Vec<Event>,
    /// Every event up to this cursor was gone in the snapshot (0: none).
    pub trimmed_through: u64,
    /// The marks of the filter's sessions trimmed past the position, in the snapshot.
    pub session_marks: Vec<(String, u64)>,
}

/// The pool of read connections.
#[derive(Clone)]
pub(super) struct Readers {
    path: Arc<PathBuf>,
    idle: Arc<tokio::sync::Mutex<Vec<Connection>>>,
    /// One permit per connection that may be open.
    turns: Arc<tokio::sync::Semaphore>,
}

impl Readers {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path: Arc::new(path),
            idle: Arc::default(),
            turns: Arc::new(tokio::sync::Semaphore::new(POOL)),
        }
    }

    /// Runs `read` on a pooled connection, off the async workers.
    pub(super) async fn with<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let pool = self.clone();
        let turn = self.turns.clone().acquire_owned().await.map_err(|_| DbError::Closed)?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let conn = match pool.idle.blocking_lock().pop() {
                Some(conn) => conn,
                None => open_reader(&pool.path)?,
            };
            let result = read(&conn);
            pool.idle.blocking_lock().push(conn);
            result
        })
        .await
        .map_err(|e| DbError::Io(std::io::Error::other(e)))?
    }

    pub async fn page(&self, after: u64, filter: Filter, limit: usize) -> Result<Vec<Event>, DbError> {
        self.with(move |conn| read_page(conn, after, &filter, limit)).await
    }

    /// A page, with the trim mark of the same snapshot: a trim deletes its events and
    /// moves the mark in one transaction, so a page missing trimmed events always
    /// comes with the mark that says so (the mark the writer publishes comes later).
    pub async fn page_and_mark(&self, after: u64, filter: Filter, limit: usize) -> Result<Page, DbError> {
        self.with(move |conn| {
            let snapshot = conn.unchecked_transaction()?;
            let trimmed_through: Option<i64> = snapshot
                .prepare_cached("SELECT value FROM meta WHERE key = 'trimmed_through'")?
                .query_row([], |row| row.get(0))
                .optional()?;
            let events = read_page(&snapshot, after, &filter, limit)?;
            let session_marks = read_marks(&snapshot, after, &filter.sessions)?;
            snapshot.commit()?;
            Ok(Page {
                events,
                trimmed_through: trimmed_through.unwrap_or(0) as u64,
                session_marks,
            })
        })
        .await
    }

    /// The marks of `sessions` (empty: all) trimmed past `after`.
    pub async fn session_marks(&self, after: u64, sessions: Vec<String>) -> Result<Vec<(String, u64)>, DbError> {
        self.with(move |conn| read_marks(conn, after, &sessions)).await
    }

    pub async fn position(&self, consumer: String) -> Result<Option<u64>, DbError> {
        self.with(move |conn| {
            let cursor: Option<i64> = conn
                .query_row("SELECT cursor FROM consumers WHERE name = ?1", [&consumer], |row| {
                    row.get(0)
                })
                .optional()?;
            Ok(cursor.map(|c| c as u64))
        })
        .await
    }

    pub async fn oldest(&self) -> Result<Option<(u64, SystemTime)>, DbError> {
        self.with(|conn| {
            let row: Option<(i64, i64)> = conn
                .query_row(
                    &format!("SELECT cursor, time_ms FROM events WHERE {NOT_DELETED} ORDER BY cursor LIMIT 1"),
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            Ok(row.map(|(cursor, ms)| (cursor as u64, at_ms(ms))))
        })
        .await
    }

    pub async fn consumers(&self) -> Result<Vec<(String, u64)>, DbError> {
        self.with(|conn| {
            let mut statement = conn.prepare_cached("SELECT name, cursor FROM consumers ORDER BY name")?;
            let rows = statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}

fn open_reader(path: &std::path::Path) -> Result<Connection, DbError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(crate::store::group_commit::STATEMENT_CACHE);
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    Ok(conn)
}

fn at_ms(ms: i64) -> SystemTime {
    crate::store::from_unix_ms(ms.max(0) as u64)
}

/// An event not of a deleted session's past (before its `deleted` event): those
/// are hidden from the moment of the delete, while they are removed in chunks.
pub(super) const NOT_DELETED: &str =
    "NOT EXISTS (SELECT 1 FROM removals r WHERE r.session_id = events.session_id AND events.cursor < r.through)";

/// Adds `AND column IN (...)` for `items` to `sql` (nothing for no items: all).
fn one_of(sql: &mut String, values: &mut Vec<Value>, column: &str, items: impl ExactSizeIterator<Item = Value>) {
    if items.len() == 0 {
        return;
    }
    sql.push_str(&format!(" AND {column} IN ("));
    sql.push_str(&vec!["?"; items.len()].join(","));
    sql.push(')');
    values.extend(items);
}

/// The sessions (of `sessions`; empty: all) whose fairness trims went past `after`,
/// with their marks.
fn read_marks(conn: &Connection, after: u64, sessions: &[String]) -> Result<Vec<(String, u64)>, DbError> {
    let mut sql = "SELECT session_id, through FROM session_trims WHERE through > ?".to_owned();
    let mut values = vec![Value::Integer(after as i64)];
    one_of(
        &mut sql,
        &mut values,
        "session_id",
        sessions.iter().map(|s| Value::Text(s.clone())),
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(values), |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The events after `after` that pass `filter`, in log order.
fn read_page(conn: &Connection, after: u64, filter: &Filter, limit: usize) -> Result<Vec<Event>, DbError> {
    let mut sql =
        format!("SELECT cursor, session_id, seq, time_ms, body FROM events WHERE cursor > ? AND {NOT_DELETED}");
    let mut values = vec![Value::Integer(after as i64)];
    let sessions = filter.sessions.iter().map(|s| Value::Text(s.clone()));
    one_of(&mut sql, &mut values, "session_id", sessions);
    let kinds = filter.kinds.iter().map(|k| Value::Integer(*k as i64));
    one_of(&mut sql, &mut values, "kind", kinds);
    sql.push_str(" ORDER BY cursor LIMIT ?");
    values.push(Value::Integer(limit as i64));
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(values))?;
    let mut page = Vec::new();
    while let Some(row) = rows.next()? {
        let body: Vec<u8> = row.get(4)?;
        let mut event = Event::decode(body.as_slice())
            .map_err(|e| DbError::Io(std::io::Error::other(format!("event body: {e}"))))?;
        event.cursor = format_cursor(row.get::<_, i64>(0)? as u64);
        event.session_id = row.get(1)?;
        event.seq = row.get::<_, i64>(2)? as u64;
        event.time = Some(at_ms(row.get(3)?).into());
        page.push(event);
    }
    Ok(page)
}
