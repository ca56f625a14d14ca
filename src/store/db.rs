//! The session list on disk: one SQLite database, `<data-dir>/sessions.db` (0600),
//! with every session's record and a tombstone for every deleted id. One writer
//! thread owns the connection and commits whatever is queued in one transaction
//! (group commit); a write is acknowledged only once committed (WAL,
//! `synchronous=FULL`), so a kill -9 at any moment loses nothing acknowledged.
//!
//! A tombstone makes deletion final: a late save of a deleted id is ignored, and a
//! restart finishes wiping the files of a delete that was cut short. Only a new
//! CreateSession of the same id clears it.
//!
//! It links the same bundled SQLite as whatsapp-rust (one `libsqlite3-sys`).

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use rusqlite::{params, Connection, OptionalExtension, Row};
#[cfg(test)]
use tokio::sync::oneshot;
use tracing::warn;

use super::{error::DbError, group_commit, record::SessionRecord, time::unix_ms};
use crate::domain::SessionId;

/// The database's file name under the data dir.
pub const DB_FILE: &str = "sessions.db";

/// The schema version this code writes.
const SCHEMA_VERSION: i64 = 1;

/// Writes committed together at most.
const MAX_BATCH: usize = 512;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id              TEXT PRIMARY KEY NOT NULL,
    labels          TEXT NOT NULL DEFAULT '{}',
    created_at_ms   INTEGER NOT NULL,
    desired         TEXT NOT NULL DEFAULT 'running' CHECK (desired IN ('running', 'stopped')),
    logged_out      INTEGER NOT NULL DEFAULT 0,
    phone_number    TEXT NOT NULL DEFAULT '',
    jid             TEXT NOT NULL DEFAULT '',
    push_name       TEXT NOT NULL DEFAULT '',
    connected_at_ms INTEGER,
    updated_at_ms   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tombstones (
    id            TEXT PRIMARY KEY NOT NULL,
    deleted_at_ms INTEGER NOT NULL,
    files_wiped   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
";

const COLUMNS: &str =
    "id, labels, created_at_ms, desired, logged_out, phone_number, jid, push_name, connected_at_ms, updated_at_ms";

/// A record that could not be read at startup: reported and skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The id as stored (may itself be the broken part).
    pub id: String,
    /// Why it was skipped.
    pub why: String,
}

/// What the list held at startup.
#[derive(Debug, Default)]
pub struct Restored {
    /// Every readable record, ordered by id.
    pub records: Vec<SessionRecord>,
    /// Records that could not be read.
    pub skipped: Vec<Skipped>,
    /// Deleted ids whose files may still be on disk (a delete cut short); a
    /// tombstone whose id does not parse is logged and left out.
    pub unwiped: Vec<SessionId>,
}

/// The most pages the session list may grow to, shared with its writer thread (0:
/// no limit of our own, only the disk's). SQLite's `max_page_count` answers past it
/// exactly as a full disk does (SQLITE_FULL), so tests use it to fill the disk and
/// to give the space back, without a small file system of their own.
#[derive(Debug, Clone, Default)]
pub struct PageQuota(Arc<AtomicU64>);

impl PageQuota {
    /// Caps the session list at `pages` (0: no cap), from its next write on.
    pub fn set(&self, pages: u64) {
        self.0.store(pages, Ordering::Release);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// A write or read queued for the writer thread.
enum Op {
    /// A new session: clears a tombstone of the same id.
    Create(SessionRecord),
    /// An update: ignored when the id has a tombstone.
    Save(SessionRecord),
    /// Forget the record, leave a tombstone with its files not yet wiped.
    Delete(SessionId),
    /// The files of a deleted id are gone.
    Wiped(SessionId),
    /// Read one record.
    Load(SessionId),
}

#[cfg(test)]
type Job = group_commit::Job<Op, Option<SessionRecord>>;

/// The session list (cheap to clone; every clone talks to the one writer thread).
#[derive(Debug, Clone)]
pub struct SessionDb {
    /// Where its reads and writes run.
    runner: Runner,
}

/// Where a `SessionDb` runs its reads and writes.
#[derive(Debug, Clone)]
enum Runner {
    /// The writer thread's queue.
    Thread(group_commit::Queue<Writer>),
    /// Tests on a paused clock: one connection, each operation run in place (see
    /// [`SessionDb::open_inline`]).
    #[cfg(test)]
    Inline(std::sync::Arc<tokio::sync::Mutex<Connection>>),
}

impl SessionDb {
    /// Opens (or creates) `<root>/sessions.db`, reads every record, and starts the
    /// writer thread. Blocking: call from `spawn_blocking`. A database SQLite cannot
    /// read at all is an error (never silently replaced).
    pub fn open(root: &Path) -> Result<(Self, Restored), DbError> {
        Self::open_with_quota(root, PageQuota::default())
    }

    /// `open`, with the session list capped by `quota`.
    pub fn open_with_quota(root: &Path, quota: PageQuota) -> Result<(Self, Restored), DbError> {
        let (conn, restored) = open_connection(root)?;
        let writer = Writer { quota, applied: 0 };
        let runner = Runner::Thread(group_commit::spawn("session-db", conn, writer, MAX_BATCH)?);
        Ok((Self { runner }, restored))
    }

    /// The same list, for tests on tokio's paused clock: no writer thread; each read
    /// or write runs in place, inside the async call, in a transaction of its own.
    ///
    /// Why: with `start_paused`, tokio moves virtual time forward whenever every task
    /// waits. A task awaiting the writer thread's answer is waiting on something tokio
    /// cannot see (unlike `spawn_blocking`, which holds the clock), so timers would
    /// fire "early" in virtual time while a write is in flight, and a test would
    /// prove nothing about timing. Run in place, a write takes no virtual time, and
    /// the clock moves only when the test lets it. Same schema, same SQL, same
    /// commit and error mapping as the writer thread; only the group commit is gone.
    #[cfg(test)]
    pub(crate) fn open_inline(root: &Path) -> Result<(Self, Restored), DbError> {
        let (conn, restored) = open_connection(root)?;
        let runner = Runner::Inline(std::sync::Arc::new(tokio::sync::Mutex::new(conn)));
        Ok((Self { runner }, restored))
    }

    /// Stores a new session's record (clearing a tombstone of its id).
    pub async fn create(&self, record: SessionRecord) -> Result<(), DbError> {
        self.run(Op::Create(record)).await.map(drop)
    }

    /// Stores a changed record; a deleted id stays deleted.
    pub async fn save(&self, record: SessionRecord) -> Result<(), DbError> {
        self.run(Op::Save(record)).await.map(drop)
    }

    /// Forgets a session for good; its files are to be wiped next.
    pub async fn delete(&self, id: &SessionId) -> Result<(), DbError> {
        self.run(Op::Delete(id.clone())).await.map(drop)
    }

    /// Notes that a deleted session's files are gone.
    pub async fn wiped(&self, id: &SessionId) -> Result<(), DbError> {
        self.run(Op::Wiped(id.clone())).await.map(drop)
    }

    /// Reads one record (None for an unknown or deleted id).
    pub async fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, DbError> {
        self.run(Op::Load(id.clone())).await
    }

    /// Resolves once the writer thread has ended, with how; a list run in place
    /// (tests) has no thread and never ends.
    pub fn writer_ended(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let ended = match &self.runner {
            Runner::Thread(jobs) => Some(jobs.ended()),
            #[cfg(test)]
            Runner::Inline(_) => None,
        };
        async move {
            match ended {
                Some(ended) => ended.await,
                None => std::future::pending().await,
            }
        }
    }

    async fn run(&self, op: Op) -> Result<Option<SessionRecord>, DbError> {
        match &self.runner {
            Runner::Thread(jobs) => jobs.call(op).await,
            #[cfg(test)]
            Runner::Inline(conn) => {
                let (done, answer) = oneshot::channel();
                let job = Job { op, done: Some(done) };
                let mut writer = Writer::default();
                group_commit::commit("session-db", &mut *conn.lock().await, &mut writer, vec![job]);
                answer.await.map_err(|_| DbError::Closed)?
            }
        }
    }
}

/// Opens (or creates) `<root>/sessions.db` and reads every record. Blocking.
fn open_connection(root: &Path) -> Result<(Connection, Restored), DbError> {
    let conn = group_commit::open(&root.join(DB_FILE))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    conn.execute_batch(SCHEMA)?;
    let mut restored = Restored::default();
    if version == 0 {
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    read_all(&conn, &mut restored)?;
    Ok((conn, restored))
}

/// The session list's side of the writer thread: applies the page quota before
/// each batch, then each write.
#[derive(Default)]
struct Writer {
    /// The cap a test may set at any time; read before each batch.
    quota: PageQuota,
    /// The quota last applied.
    applied: u64,
}

impl group_commit::Apply for Writer {
    type Op = Op;
    type Out = Option<SessionRecord>;

    fn before_batch(&mut self, conn: &Connection) {
        let pages = self.quota.get();
        if pages != self.applied {
            // Unlimited again: SQLite's own ceiling.
            let cap = if pages == 0 {
                i64::from(u32::MAX - 1)
            } else {
                pages as i64
            };
            if let Err(e) = conn.pragma_update(None, "max_page_count", cap) {
                warn!(error = %e, "could not apply the session list's page quota");
            }
            self.applied = pages;
        }
    }

    fn apply(&mut self, tx: &rusqlite::Transaction<'_>, op: &Op) -> Result<Option<SessionRecord>, DbError> {
        apply(tx, op)
    }
}

fn apply(conn: &Connection, op: &Op) -> Result<Option<SessionRecord>, DbError> {
    let now = unix_ms(std::time::SystemTime::now()) as i64;
    match op {
        Op::Create(record) => {
            conn.execute("DELETE FROM tombstones WHERE id = ?1", [record.id.as_str()])?;
            upsert(conn, record, now, false)?;
        }
        Op::Save(record) => upsert(conn, record, now, true)?,
        Op::Delete(id) => {
            conn.execute("DELETE FROM sessions WHERE id = ?1", [id.as_str()])?;
            conn.execute(
                "INSERT INTO tombstones (id, deleted_at_ms, files_wiped) VALUES (?1, ?2, 0)
                 ON CONFLICT(id) DO UPDATE SET deleted_at_ms = excluded.deleted_at_ms, files_wiped = 0",
                params![id.as_str(), now],
            )?;
        }
        Op::Wiped(id) => {
            conn.execute("UPDATE tombstones SET files_wiped = 1 WHERE id = ?1", [id.as_str()])?;
        }
        Op::Load(id) => {
            let sql = format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1");
            let row = conn
                .query_row(&sql, [id.as_str()], |row| Ok(parse_row(row)))
                .optional()?;
            return Ok(row.and_then(Result::ok));
        }
    }
    Ok(None)
}

/// Inserts or updates a record; with `unless_deleted`, nothing happens to an id that
/// has a tombstone.
fn upsert(conn: &Connection, record: &SessionRecord, now: i64, unless_deleted: bool) -> Result<(), DbError> {
    let labels = serde_json::to_string(&record.labels).map_err(std::io::Error::other)?;
    let desired = if record.stopped { "stopped" } else { "running" };
    let guard = if unless_deleted {
        "WHERE NOT EXISTS (SELECT 1 FROM tombstones WHERE id = ?1)"
    } else {
        "WHERE true"
    };
    let sql = format!(
        "INSERT INTO sessions ({COLUMNS}) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 {guard}
         ON CONFLICT(id) DO UPDATE SET labels = excluded.labels, desired = excluded.desired,
             logged_out = excluded.logged_out, phone_number = excluded.phone_number, jid = excluded.jid,
             push_name = excluded.push_name, connected_at_ms = excluded.connected_at_ms,
             updated_at_ms = excluded.updated_at_ms"
    );
    conn.execute(
        &sql,
        params![
            record.id.as_str(),
            labels,
            record.created_at_ms as i64,
            desired,
            record.logged_out,
            record.phone_number,
            record.jid,
            record.push_name,
            record.connected_at_ms.map(|ms| ms as i64),
            now,
        ],
    )?;
    Ok(())
}

/// Reads every record; a row that cannot be read is reported and skipped.
fn read_all(conn: &Connection, restored: &mut Restored) -> Result<(), DbError> {
    let mut statement = conn.prepare(&format!("SELECT {COLUMNS} FROM sessions ORDER BY id"))?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        match parse_row(row) {
            Ok(record) => restored.records.push(record),
            Err(skipped) => restored.skipped.push(skipped),
        }
    }
    let mut statement = conn.prepare("SELECT id FROM tombstones WHERE files_wiped = 0")?;
    let unwiped: Vec<String> = statement
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    for raw_id in unwiped {
        match SessionId::parse(&raw_id) {
            Ok(id) => restored.unwiped.push(id),
            Err(e) => {
                warn!(id = %raw_id, error = %e, "skipping the tombstone of an invalid id: its files, if any, stay")
            }
        }
    }
    Ok(())
}

fn parse_row(row: &Row<'_>) -> Result<SessionRecord, Skipped> {
    let raw_id = row.get::<_, String>(0).unwrap_or_else(|_| "<unreadable id>".to_owned());
    let skipped = |why: String| Skipped {
        id: raw_id.clone(),
        why,
    };
    let id = SessionId::parse(&raw_id).map_err(|e| skipped(format!("invalid id: {e}")))?;
    let column = |e: rusqlite::Error| skipped(format!("unreadable column: {e}"));
    let labels: String = row.get(1).map_err(column)?;
    let labels: BTreeMap<String, String> =
        serde_json::from_str(&labels).map_err(|e| skipped(format!("labels are not a json object of strings: {e}")))?;
    let desired: String = row.get(3).map_err(column)?;
    let stopped = match desired.as_str() {
        "running" => false,
        "stopped" => true,
        other => return Err(skipped(format!("unknown desired state {other:?}"))),
    };
    Ok(SessionRecord {
        id,
        labels,
        created_at_ms: row.get::<_, i64>(2).map_err(column)?.max(0) as u64,
        stopped,
        logged_out: row.get(4).map_err(column)?,
        phone_number: row.get(5).map_err(column)?,
        jid: row.get(6).map_err(column)?,
        push_name: row.get(7).map_err(column)?,
        connected_at_ms: row.get::<_, Option<i64>>(8).map_err(column)?.map(|ms| ms.max(0) as u64),
    })
}

#[cfg(test)]
#[path = "db_tests.rs"]
mod tests;
