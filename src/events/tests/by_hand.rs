//! The event log's writer driven by hand, without its thread: batches committed
//! one at a time on a connection the test holds, and what the log keeps in memory
//! (head, trim mark, size, sequence numbers) compared with what is on disk.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};
use tokio::sync::{oneshot, watch};

use crate::events::{db, rows::ROW_OVERHEAD, Shared, EVENTS_FILE};
use crate::store::{group_commit, DbError};

/// A writer and the connection it writes on.
pub struct Hand {
    pub conn: Connection,
    pub writer: db::Writer,
    /// The head the writer publishes.
    pub head: watch::Receiver<u64>,
    /// The trim mark and size it publishes.
    pub shared: Arc<Shared>,
}

/// What is on disk.
#[derive(Debug, PartialEq, Eq)]
pub struct Disk {
    /// Every event: (cursor, session, seq).
    pub events: Vec<(u64, String, u64)>,
    /// The trim mark stored.
    pub trimmed_through: u64,
    /// The bytes the log counts for its events.
    pub bytes: u64,
}

impl Hand {
    /// The log in `dir`, with its writer not started.
    pub fn open(dir: &tempfile::TempDir) -> Self {
        let conn = group_commit::open(&dir.path().join(EVENTS_FILE)).unwrap();
        let shared = Arc::new(Shared::default());
        let (writer, head) = db::Writer::new(&conn, Arc::clone(&shared), Arc::default()).unwrap();
        Self {
            conn,
            writer,
            head,
            shared,
        }
    }

    /// Commits `ops` as one batch; each job's answer.
    pub fn batch(&mut self, ops: Vec<db::Op>) -> Vec<Result<db::Out, DbError>> {
        let (jobs, answers): (Vec<_>, Vec<_>) = ops
            .into_iter()
            .map(|op| {
                let (done, answer) = oneshot::channel();
                (group_commit::Job { op, done: Some(done) }, answer)
            })
            .unzip();
        group_commit::commit("event-log", &mut self.conn, &mut self.writer, jobs);
        answers
            .into_iter()
            .map(|mut answer| answer.try_recv().expect("every job is answered"))
            .collect()
    }

    /// Caps the file at a few pages more than it holds now (0: no cap).
    pub fn room_for_pages(&self, pages: i64) {
        let cap = if pages == 0 {
            i64::from(u32::MAX - 1)
        } else {
            let now: i64 = self
                .conn
                .pragma_query_value(None, "page_count", |row| row.get(0))
                .unwrap();
            now + pages
        };
        self.conn.pragma_update(None, "max_page_count", cap).unwrap();
    }

    pub fn disk(&self) -> Disk {
        let events = self
            .conn
            .prepare("SELECT cursor, session_id, seq FROM events ORDER BY cursor")
            .unwrap()
            .query_map([], |row| {
                Ok((row.get::<_, i64>(0)? as u64, row.get(1)?, row.get::<_, i64>(2)? as u64))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let trimmed_through: i64 = self
            .conn
            .query_row(
                "SELECT COALESCE(MAX(value), 0) FROM meta WHERE key = 'trimmed_through'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        let (bodies, rows): (i64, i64) = self
            .conn
            .query_row(
                "SELECT COALESCE(SUM(length(body)), 0), COUNT(*) FROM events",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        Disk {
            events,
            trimmed_through: trimmed_through as u64,
            bytes: bodies as u64 + rows as u64 * ROW_OVERHEAD,
        }
    }

    /// Asserts the writer's memory is what is on disk: the head is the newest
    /// cursor, the trim mark and size are the stored ones, and each session's
    /// numbers run on without a gap to its stored last number (a deleted session has
    /// none).
    pub fn assert_memory_matches_disk(&self) {
        use std::sync::atomic::Ordering;
        let disk = self.disk();
        let newest = disk.events.last().map_or(0, |(cursor, _, _)| *cursor);
        assert_eq!(
            *self.head.borrow(),
            newest,
            "the head is the newest cursor on disk: {disk:?}"
        );
        assert_eq!(
            self.shared.trimmed_through.load(Ordering::Acquire),
            disk.trimmed_through,
            "the trim mark is the one on disk"
        );
        assert_eq!(
            self.shared.bytes.load(Ordering::Relaxed),
            disk.bytes,
            "the size is the one on disk"
        );
        let sessions: std::collections::BTreeSet<&str> = disk.events.iter().map(|(_, s, _)| s.as_str()).collect();
        for session in sessions {
            let seqs: Vec<u64> = disk
                .events
                .iter()
                .filter(|(_, s, _)| s == session)
                .map(|e| e.2)
                .collect();
            assert!(
                seqs.windows(2).all(|pair| pair[1] == pair[0] + 1),
                "{session}'s numbers run on: {seqs:?}"
            );
            let stored: Option<i64> = self
                .conn
                .query_row(
                    "SELECT last_seq FROM session_seq WHERE session_id = ?1",
                    [session],
                    |row| row.get(0),
                )
                .optional()
                .unwrap();
            // None: a deleted session, whose numbers start again at 1.
            if let Some(stored) = stored {
                assert_eq!(
                    seqs.last().copied(),
                    Some(stored as u64),
                    "{session}'s stored last number"
                );
            }
        }
    }
}
