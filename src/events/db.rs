//! The event log's tables and its writer thread's side: appends (with per-session
//! sequence numbers and the message dedupe), consumer acks, deletion of a session's
//! events, and trimming. The head is published only after a batch committed, so a
//! reader that sees head H finds every event up to H on disk.

use std::{
    collections::{HashMap, HashSet},
    sync::{atomic::Ordering, Arc},
};

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::watch;

use super::rows::{insert, ROW_OVERHEAD, SCHEMA};
use super::{
    metrics::EventMetrics,
    outbound::{self, sql as outbound_sql},
    Appended, Body, EventKind, NewEvent, Shared,
};
use crate::store::{group_commit::Apply, unix_ms, DbError};

/// Jobs committed together at most.
pub const MAX_BATCH: usize = 1024;

/// Event kinds (message, receipt, status, outbound, health), counted per batch.
const KINDS: usize = 5;

/// A job of the writer thread.
#[derive(Debug)]
pub enum Op {
    /// Append in order.
    Append(Vec<NewEvent>),
    /// A consumer's position.
    Ack {
        /// Its name.
        consumer: String,
        /// Its newest processed event.
        cursor: u64,
        /// The most consumers kept (0: no bound): a new one beyond it is refused.
        max: usize,
    },
    /// Forget a consumer.
    DeleteConsumer(String),
    /// Append the session's last event, then remove its earlier ones.
    DeleteSession(Box<NewEvent>),
    /// Accept a message into the outbound log.
    Accept(Box<outbound::Accept>),
    /// A message was handed to the connection.
    Sent {
        /// Whose.
        session_id: String,
        /// WhatsApp's id.
        message_id: String,
    },
    /// A message was not sent and nobody heard of it: forget it.
    Forget {
        /// Whose.
        session_id: String,
        /// WhatsApp's id.
        message_id: String,
    },
    /// A message's status changed (the server's ack, an expiry).
    Update(outbound::Update),
    /// WhatsApp said something about the account's health.
    Health {
        /// Whose account.
        session_id: String,
        /// What it said.
        signal: outbound::HealthSignal,
    },
    /// Remove one chunk of the oldest events that are too old or too many.
    Trim {
        /// Events logged before this go.
        before_ms: i64,
        /// While more bytes than this are kept (0: no bound), the oldest go.
        max_bytes: u64,
        /// At most this many per job.
        chunk: usize,
    },
}

/// A job's answer.
#[derive(Debug)]
pub enum Out {
    /// What an append did.
    Appended(Appended),
    /// A consumer's stored position (None: a new consumer beyond the bound).
    Position(Option<u64>),
    /// Whether the consumer existed.
    Deleted(bool),
    /// Events trimmed.
    Trimmed(usize),
    /// What accepting a message did.
    Accepted(outbound::Accepted),
    /// Done.
    Done,
}

/// The writer thread's state.
pub struct Writer {
    /// Each session's last sequence number (a cache of `session_seq`).
    seqs: HashMap<String, u64>,
    /// Sessions whose cached number the current batch changed.
    touched: HashSet<String>,
    /// The newest cursor committed, and the newest written in this batch.
    head: u64,
    pending_head: u64,
    /// Bytes added (or removed) by this batch; trimmed_through set by it.
    pending_bytes: i64,
    pending_trimmed: Option<u64>,
    /// Events added by this batch, by kind.
    pending_kinds: [u64; KINDS],
    /// Outbound statuses reached in this batch (status, nack code), for metrics.
    pending_outbound: Vec<(i32, u32)>,
    published: watch::Sender<u64>,
    shared: Arc<Shared>,
    metrics: Arc<EventMetrics>,
}

impl Writer {
    /// Creates the tables and reads where the log stands. Blocking.
    pub fn new(
        conn: &Connection,
        shared: Arc<Shared>,
        metrics: Arc<EventMetrics>,
    ) -> Result<(Self, watch::Receiver<u64>), DbError> {
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(outbound_sql::SCHEMA)?;
        conn.execute_batch(outbound::health_sql::SCHEMA)?;
        let head: i64 = conn
            .query_row("SELECT seq FROM sqlite_sequence WHERE name = 'events'", [], |row| {
                row.get(0)
            })
            .optional()?
            .unwrap_or(0);
        let trimmed: i64 = conn
            .query_row("SELECT value FROM meta WHERE key = 'trimmed_through'", [], |row| {
                row.get(0)
            })
            .optional()?
            .unwrap_or(0);
        let (bodies, rows): (i64, i64) = conn.query_row(
            "SELECT COALESCE(SUM(length(body)), 0), COUNT(*) FROM events",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let bytes = bodies as u64 + rows as u64 * ROW_OVERHEAD;
        shared.trimmed_through.store(trimmed as u64, Ordering::Release);
        shared.bytes.store(bytes, Ordering::Relaxed);
        metrics.set_bytes(bytes);
        let head = head as u64;
        let (published, receiver) = watch::channel(head);
        let writer = Self {
            seqs: HashMap::new(),
            touched: HashSet::new(),
            head,
            pending_head: head,
            pending_bytes: 0,
            pending_trimmed: None,
            pending_kinds: [0; KINDS],
            pending_outbound: Vec::new(),
            published,
            shared,
            metrics,
        };
        Ok((writer, receiver))
    }

    /// The session's last sequence number, from the cache or the table.
    fn last_seq(&mut self, tx: &Transaction<'_>, session_id: &str) -> Result<u64, DbError> {
        if let Some(&seq) = self.seqs.get(session_id) {
            return Ok(seq);
        }
        let seq: Option<i64> = tx
            .query_row(
                "SELECT last_seq FROM session_seq WHERE session_id = ?1",
                [session_id],
                |row| row.get(0),
            )
            .optional()?;
        let seq = seq.unwrap_or(0) as u64;
        self.seqs.insert(session_id.to_owned(), seq);
        Ok(seq)
    }

    /// Writes events in order. Its state changes only once all of it is written.
    fn append(&mut self, tx: &Transaction<'_>, events: &[NewEvent]) -> Result<Appended, DbError> {
        let mut appended = Appended::default();
        let mut last_seqs: HashMap<&str, u64> = HashMap::new();
        let (mut head, mut bytes, mut kinds) = (self.pending_head, 0u64, [0u64; KINDS]);
        for event in events {
            let seq = match last_seqs.get(event.session_id.as_str()) {
                Some(&seq) => seq,
                None => self.last_seq(tx, &event.session_id)?,
            } + 1;
            let Some((cursor, size)) = insert(tx, event, seq)? else {
                appended.duplicates += 1;
                continue;
            };
            appended.added += 1;
            if let Body::Outbound(update) = &event.body {
                self.pending_outbound.push((update.status, update.error_code));
            }
            last_seqs.insert(&event.session_id, seq);
            head = cursor;
            bytes += size;
            kinds[event.kind() as usize - 1] += 1;
        }
        let mut save = tx.prepare_cached(
            "INSERT INTO session_seq (session_id, last_seq) VALUES (?1, ?2)
             ON CONFLICT(session_id) DO UPDATE SET last_seq = excluded.last_seq",
        )?;
        for (&session_id, &seq) in &last_seqs {
            save.execute(params![session_id, seq as i64])?;
        }
        for (session_id, seq) in last_seqs {
            self.seqs.insert(session_id.to_owned(), seq);
            self.touched.insert(session_id.to_owned());
        }
        self.added(head, bytes as i64, kinds);
        Ok(appended)
    }

    /// Notes what a job wrote, for the commit.
    fn added(&mut self, head: u64, bytes: i64, kinds: [u64; KINDS]) {
        self.pending_head = head;
        self.pending_bytes += bytes;
        for (pending, added) in self.pending_kinds.iter_mut().zip(kinds) {
            *pending += added;
        }
    }

    fn ack(&mut self, tx: &Transaction<'_>, consumer: &str, cursor: u64, max: usize) -> Result<Option<u64>, DbError> {
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

    fn delete_session(&mut self, tx: &Transaction<'_>, last: &NewEvent) -> Result<(), DbError> {
        let id = &last.session_id;
        let (bodies, rows): (i64, i64) = tx.query_row(
            "SELECT COALESCE(SUM(length(body)), 0), COUNT(*) FROM events WHERE session_id = ?1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let seq = self.last_seq(tx, id)? + 1;
        tx.execute("DELETE FROM events WHERE session_id = ?1", [id])?;
        // A session created again under this id starts again at 1.
        tx.execute("DELETE FROM session_seq WHERE session_id = ?1", [id])?;
        let (cursor, size) = insert(tx, last, seq)?.ok_or(rusqlite::Error::StatementChangedRows(0))?;
        self.seqs.remove(id);
        self.touched.insert(id.clone());
        let removed = bodies as u64 + rows as u64 * ROW_OVERHEAD;
        outbound_sql::delete_session(tx, id)?;
        let mut kinds = [0; KINDS];
        kinds[last.kind() as usize - 1] = 1;
        self.added(cursor, size as i64 - removed as i64, kinds);
        Ok(())
    }

    fn trim(&mut self, tx: &Transaction<'_>, before_ms: i64, max_bytes: u64, chunk: usize) -> Result<usize, DbError> {
        let kept = self.shared.bytes.load(Ordering::Relaxed) as i64 + self.pending_bytes;
        let mut kept = kept.max(0) as u64;
        let mut last = None;
        let mut removed = 0usize;
        let mut freed = 0u64;
        {
            let mut oldest =
                tx.prepare_cached("SELECT cursor, time_ms, length(body) FROM events ORDER BY cursor LIMIT ?1")?;
            let mut rows = oldest.query([chunk as i64])?;
            while let Some(row) = rows.next()? {
                let (cursor, time_ms, size): (i64, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
                let too_old = time_ms < before_ms;
                let too_many = max_bytes > 0 && kept > max_bytes;
                if !too_old && !too_many {
                    break;
                }
                let bytes = size as u64 + ROW_OVERHEAD;
                kept = kept.saturating_sub(bytes);
                freed += bytes;
                removed += 1;
                last = Some(cursor);
            }
        }
        let Some(last) = last else { return Ok(0) };
        tx.execute("DELETE FROM events WHERE cursor <= ?1", [last])?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('trimmed_through', ?1)
             ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
            [last],
        )?;
        self.pending_bytes -= freed as i64;
        self.pending_trimmed = Some(last as u64);
        Ok(removed)
    }
}

impl Apply for Writer {
    type Op = Op;
    type Out = Out;

    fn apply(&mut self, tx: &Transaction<'_>, op: &Op) -> Result<Out, DbError> {
        match op {
            Op::Append(events) => {
                let appended = self.append(tx, events)?;
                let statuses = outbound_sql::receipts(tx, events)?;
                self.append(tx, &statuses)?;
                Ok(Out::Appended(appended))
            }
            Op::Accept(accept) => {
                let (accepted, events) = outbound_sql::accept(tx, accept)?;
                self.append(tx, &events)?;
                Ok(Out::Accepted(accepted))
            }
            Op::Sent { session_id, message_id } => {
                let events = outbound_sql::sent(tx, session_id, message_id)?;
                self.append(tx, &events).map(|_| Out::Done)
            }
            Op::Forget { session_id, message_id } => {
                outbound_sql::forget(tx, session_id, message_id).map(|()| Out::Done)
            }
            Op::Update(change) => {
                let events = outbound_sql::update(tx, change)?;
                self.append(tx, &events).map(|_| Out::Done)
            }
            Op::Health { session_id, signal } => {
                let events: Vec<_> = outbound::health_sql::apply(tx, session_id, signal)?
                    .into_iter()
                    .collect();
                self.append(tx, &events).map(|_| Out::Done)
            }
            Op::Ack { consumer, cursor, max } => self.ack(tx, consumer, *cursor, *max).map(Out::Position),
            Op::DeleteConsumer(consumer) => {
                let deleted = tx.execute("DELETE FROM consumers WHERE name = ?1", [consumer])?;
                Ok(Out::Deleted(deleted > 0))
            }
            Op::DeleteSession(last) => self.delete_session(tx, last).map(|()| Out::Done),
            Op::Trim {
                before_ms,
                max_bytes,
                chunk,
            } => self.trim(tx, *before_ms, *max_bytes, *chunk).map(Out::Trimmed),
        }
    }

    fn committed(&mut self) {
        self.touched.clear();
        let bytes = (self.shared.bytes.load(Ordering::Relaxed) as i64 + self.pending_bytes).max(0) as u64;
        self.shared.bytes.store(bytes, Ordering::Relaxed);
        self.metrics.set_bytes(bytes);
        self.pending_bytes = 0;
        if let Some(trimmed) = self.pending_trimmed.take() {
            self.shared.trimmed_through.fetch_max(trimmed, Ordering::AcqRel);
        }
        for (index, kind) in [
            EventKind::Message,
            EventKind::Receipt,
            EventKind::Status,
            EventKind::Outbound,
        ]
        .into_iter()
        .enumerate()
        {
            self.metrics
                .appended(kind, std::mem::take(&mut self.pending_kinds[index]));
        }
        for (status, code) in self.pending_outbound.drain(..) {
            self.metrics.outbound(status, code);
        }
        if self.pending_head != self.head {
            self.head = self.pending_head;
            self.published.send_replace(self.head);
        }
    }

    fn rolled_back(&mut self) {
        for session_id in self.touched.drain() {
            self.seqs.remove(&session_id);
        }
        self.pending_head = self.head;
        self.pending_bytes = 0;
        self.pending_trimmed = None;
        self.pending_kinds = [0; KINDS];
        self.pending_outbound.clear();
    }
}
