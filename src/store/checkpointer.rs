//! Checkpoints a WAL database on a thread of its own, so that copying the WAL into
//! the database (and its `fsync`) is not done by the writer thread between two
//! commits: under bulk sends that was a sixth of the event log writer's time.
//!
//! The writer ticks after each batch; the checkpointer then runs a PASSIVE
//! checkpoint (it never waits for, nor blocks, the writer or the readers), at most
//! every [`EVERY`]. The writer keeps SQLite's own checkpoint at [`WRITER_BACKSTOP`]
//! pages: when this thread falls behind, or catches up only while the writer is
//! mid-batch, the writer finishes the copy itself and the WAL starts over, so the
//! WAL stays bounded.

use std::{
    sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError},
    time::Duration,
};

use rusqlite::Connection;
use tracing::debug;

use super::error::DbError;

/// The least time between two checkpoints of this thread.
pub const EVERY: Duration = Duration::from_millis(50);

/// The WAL size, in pages, at which the writer checkpoints after its commit
/// (SQLite's default is 1,000).
pub const WRITER_BACKSTOP: i64 = 4_000;

/// The writer's side: tells the checkpointer there are new frames. Dropping it
/// ends the thread.
#[derive(Debug)]
pub struct Ticker(SyncSender<()>);

impl Ticker {
    /// New frames were committed; never blocks.
    pub fn tick(&self) {
        match self.0.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
}

/// Starts the checkpointer `name` for `writer`'s database (a file in WAL mode) and
/// moves the writer's own checkpoint to [`WRITER_BACKSTOP`]. Blocking.
pub fn spawn(name: &str, writer: &Connection) -> Result<Ticker, DbError> {
    let path = writer
        .path()
        .filter(|path| !path.is_empty())
        .ok_or_else(|| DbError::Io(std::io::Error::other("a checkpointer needs a database file")))?
        .to_owned();
    let conn = Connection::open(&path)?;
    // A checkpoint syncs the WAL before copying it and the database after.
    conn.pragma_update(None, "synchronous", "FULL")?;
    writer.pragma_update(None, "wal_autocheckpoint", WRITER_BACKSTOP)?;
    let (ticks, inbox) = sync_channel(1);
    let label = name.to_owned();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || run(&label, &conn, &inbox))?;
    Ok(Ticker(ticks))
}

/// Checkpoints after each tick, at most every [`EVERY`], until the writer is gone.
fn run(label: &str, conn: &Connection, inbox: &Receiver<()>) {
    while inbox.recv().is_ok() {
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        if let Err(error) = done {
            // The writer's own checkpoint still bounds the WAL.
            debug!(database = label, %error, "a checkpoint failed; the writer's own will do");
        }
        std::thread::sleep(EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_frames_reach_the_database_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = super::super::group_commit::open(&path).unwrap();
        writer
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
            .unwrap();
        let ticker = spawn("test-checkpoint", &writer).unwrap();
        let backstop: i64 = writer
            .pragma_query_value(None, "wal_autocheckpoint", |row| row.get(0))
            .unwrap();
        assert_eq!(backstop, WRITER_BACKSTOP);
        for id in 0..50 {
            writer
                .execute("INSERT INTO t (id, body) VALUES (?1, zeroblob(8192))", [id])
                .unwrap();
        }
        ticker.tick();
        // The database file holds the rows once the checkpointer copied them.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let db_len = || std::fs::metadata(&path).unwrap().len();
        while db_len() < 50 * 8192 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file stayed at {} bytes",
                db_len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
