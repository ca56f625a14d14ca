//! The event log's tables and its writer thread's side: appends (with per-session
//! sequence numbers and the message dedupe), consumer acks, deletion of a session's
//! events (hidden at once, removed in chunks), and trimming. The head is published
//! only after a batch committed, so a reader that sees head H finds every event up
//! to H on disk; a job that fails leaves nothing of itself in memory.

use std::{
    collections::{HashMap, HashSet},
    sync::{atomic::Ordering, Arc},
};

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::watch;

use super::rows::{forget_deleted_duplicate, insert, remove_deleted, ROW_OVERHEAD, SCHEMA};
use super::{
    campaign::{caps as campaign_caps, sql as campaign_sql},
    metrics::EventMetrics,
    outbound::{self, sql as outbound_sql, MessageStatus},
    trim, Appended, Body, EventKind, NewEvent, Shared,
};
use crate::store::{checkpointer::Ticker, group_commit::Apply, DbError};

mod consumers;
mod jobs;
mod removal;
mod signal;

pub use jobs::{Op, Out};
pub use signal::{Change, Follow, Signals};

/// Jobs committed together at most.
pub const MAX_BATCH: usize = 1024;

/// The writer's page cache, in KiB (SQLite's default is 2,000): a batch of bulk
/// sends touches pages all over the outbound and campaign tables and indexes.
const WRITER_CACHE_KIB: i64 = 16 * 1024;

/// Event kinds (message, receipt, status, outbound, health), counted per batch.
const KINDS: usize = 5;

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
    /// Outbound statuses reached in this batch (status, nack code, a campaign
    /// item's), for metrics.
    pending_outbound: Vec<(i32, u32, bool)>,
    published: watch::Sender<u64>,
    /// The followers of each session's campaigns.
    signals: Arc<Signals>,
    /// Sessions whose campaigns this batch changed, and how much.
    changed: HashMap<String, Change>,
    shared: Arc<Shared>,
    metrics: Arc<EventMetrics>,
    /// Told after each commit, when a thread of its own checkpoints the log.
    checkpointer: Option<Ticker>,
}

impl Writer {
    /// Creates the tables and reads where the log stands. Blocking.
    pub fn new(
        conn: &Connection,
        shared: Arc<Shared>,
        metrics: Arc<EventMetrics>,
    ) -> Result<(Self, watch::Receiver<u64>), DbError> {
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        conn.execute_batch(SCHEMA)?;
        trim::open(conn)?;
        outbound_sql::open(conn)?;
        conn.execute_batch(outbound::health_sql::SCHEMA)?;
        conn.execute_batch(campaign_sql::SCHEMA)?;
        campaign_caps::open(conn)?;
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
            signals: Arc::default(),
            changed: HashMap::new(),
            shared,
            metrics,
            checkpointer: None,
        };
        Ok((writer, receiver))
    }

    /// Leaves the log's checkpoints to a thread of its own, told after each commit.
    pub fn checkpoint_aside(&mut self, checkpointer: Ticker) {
        self.checkpointer = Some(checkpointer);
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
        let mut sizes: HashMap<&str, i64> = HashMap::new();
        let (mut head, mut bytes, mut kinds) = (self.pending_head, 0i64, [0u64; KINDS]);
        for event in events {
            let seq = match last_seqs.get(event.session_id.as_str()) {
                Some(&seq) => seq,
                None => self.last_seq(tx, &event.session_id)?,
            } + 1;
            let inserted = match insert(tx, event, seq)? {
                None => {
                    // An event of the session's deleted incarnation is not a duplicate.
                    let freed = forget_deleted_duplicate(tx, event)?;
                    bytes -= freed as i64;
                    *sizes.entry(&event.session_id).or_default() -= freed as i64;
                    if freed > 0 {
                        insert(tx, event, seq)?
                    } else {
                        None
                    }
                }
                inserted => inserted,
            };
            let Some((cursor, size)) = inserted else {
                appended.duplicates += 1;
                continue;
            };
            appended.added += 1;
            if let Body::Outbound(update) = &event.body {
                let item = !update.campaign_id.is_empty();
                self.pending_outbound.push((update.status, update.error_code, item));
                if item {
                    // Until the server took it, an item can end its campaign or
                    // change what is sent next (a refusal); after, only the counts.
                    let seen = [MessageStatus::Delivered, MessageStatus::Read, MessageStatus::Played];
                    let change = match seen.iter().any(|s| *s as i32 == update.status) {
                        true => Change::Statuses,
                        false => Change::Progress,
                    };
                    signal::note(&mut self.changed, &event.session_id, change);
                }
            }
            last_seqs.insert(&event.session_id, seq);
            head = cursor;
            bytes += size as i64;
            *sizes.entry(&event.session_id).or_default() += size as i64;
            kinds[event.kind() as usize - 1] += 1;
        }
        let mut save = tx.prepare_cached(
            "INSERT INTO session_seq (session_id, last_seq) VALUES (?1, ?2)
             ON CONFLICT(session_id) DO UPDATE SET last_seq = excluded.last_seq",
        )?;
        for (&session_id, &seq) in &last_seqs {
            save.execute(params![session_id, seq as i64])?;
        }
        for (session_id, size) in sizes {
            trim::count(tx, session_id, size)?;
        }
        for (session_id, seq) in last_seqs {
            self.seqs.insert(session_id.to_owned(), seq);
            self.touched.insert(session_id.to_owned());
        }
        self.added(head, bytes, kinds);
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

    /// Trims one chunk: by age first, then by size ([`trim`]).
    fn trim(&mut self, tx: &Transaction<'_>, before_ms: i64, max_bytes: u64, chunk: usize) -> Result<usize, DbError> {
        let kept = self.shared.bytes.load(Ordering::Relaxed) as i64 + self.pending_bytes;
        let mut trimmed = trim::by_age(tx, before_ms, chunk)?;
        if trimmed.removed == 0 {
            trimmed = trim::by_size(tx, kept.max(0) as u64, max_bytes, chunk)?;
        }
        self.pending_bytes -= trimmed.freed as i64;
        if let Some(through) = trimmed.through {
            self.pending_trimmed = Some(through);
        }
        Ok(trimmed.removed)
    }
}

/// What the batch had noted in memory before a job, to go back to when the job fails.
struct Mark {
    head: u64,
    bytes: i64,
    trimmed: Option<u64>,
    kinds: [u64; KINDS],
    outbound: usize,
}

impl Writer {
    fn mark(&self) -> Mark {
        Mark {
            head: self.pending_head,
            bytes: self.pending_bytes,
            trimmed: self.pending_trimmed,
            kinds: self.pending_kinds,
            outbound: self.pending_outbound.len(),
        }
    }

    /// Forgets what a failed job noted (its savepoint undid its rows, or the whole
    /// transaction goes when it ran without one). A job may fail
    /// after a step that already noted something (an append's receipts, after its
    /// events): the cached numbers of the sessions this batch touched are dropped, to
    /// be read again from the transaction, which holds exactly the earlier jobs.
    fn undo(&mut self, mark: Mark) {
        self.pending_head = mark.head;
        self.pending_bytes = mark.bytes;
        self.pending_trimmed = mark.trimmed;
        self.pending_kinds = mark.kinds;
        self.pending_outbound.truncate(mark.outbound);
        for session_id in &self.touched {
            self.seqs.remove(session_id);
        }
    }

    fn run(&mut self, tx: &Transaction<'_>, op: &Op) -> Result<Out, DbError> {
        match op {
            Op::Append(events) => {
                let appended = self.append(tx, events)?;
                let statuses = outbound_sql::receipts(tx, events)?;
                self.append(tx, &statuses)?;
                Ok(Out::Appended(appended))
            }
            Op::Accept(accept) => {
                if accept.campaign.is_some() {
                    signal::note(&mut self.changed, &accept.session_id, Change::Progress);
                }
                let (accepted, events) = outbound_sql::accept(tx, accept)?;
                self.append(tx, &events)?;
                Ok(Out::Accepted(accepted))
            }
            Op::Sent { session_id, message_id } => {
                let events = outbound_sql::sent(tx, session_id, message_id)?;
                self.append(tx, &events).map(|_| Out::Done)
            }
            Op::Forget { session_id, message_id } => {
                signal::note(&mut self.changed, session_id, Change::Progress);
                outbound_sql::forget(tx, session_id, message_id).map(|()| Out::Done)
            }
            Op::Update(change) => {
                let events = outbound_sql::update(tx, change)?;
                self.append(tx, &events).map(|_| Out::Done)
            }
            Op::Health { session_id, signal } => {
                signal::note(&mut self.changed, session_id, Change::Control);
                let events: Vec<_> = outbound::health_sql::apply(tx, session_id, signal)?
                    .into_iter()
                    .collect();
                self.append(tx, &events).map(|_| Out::Done)
            }
            Op::Ack { consumer, cursor, max } => consumers::ack(tx, consumer, *cursor, *max).map(Out::Position),
            Op::DeleteConsumer(consumer) => {
                let deleted = tx.execute("DELETE FROM consumers WHERE name = ?1", [consumer])?;
                Ok(Out::Deleted(deleted > 0))
            }
            Op::Campaign(job) => {
                let done = campaign_sql::run(tx, job)?;
                if let Some(session_id) = campaign_sql::session_of(tx, job)? {
                    signal::note(&mut self.changed, &session_id, Change::Control);
                }
                Ok(Out::Campaign(done))
            }
            Op::DeleteSession(last) => self.delete_session(tx, last).map(|()| Out::Done),
            Op::Remove { chunk } => self.remove_deleted(tx, *chunk).map(Out::Removed),
            Op::Trim {
                before_ms,
                max_bytes,
                chunk,
            } => self.trim(tx, *before_ms, *max_bytes, *chunk).map(Out::Trimmed),
        }
    }
}

impl Apply for Writer {
    type Op = Op;
    type Out = Out;

    fn apply(&mut self, tx: &Transaction<'_>, op: &Op) -> Result<Out, DbError> {
        let mark = self.mark();
        let result = self.run(tx, op);
        if result.is_err() {
            self.undo(mark);
        }
        result
    }

    fn committed(&mut self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.tick();
        }
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
        for (status, code, item) in self.pending_outbound.drain(..) {
            self.metrics.outbound(status, code);
            if item {
                self.metrics.campaign_item(status);
            }
        }
        self.signals.tell(&mut self.changed);
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
        self.changed.clear();
    }
}

impl Writer {
    /// The followers of each session's campaigns, told after each commit.
    pub fn signals(&self) -> Arc<Signals> {
        Arc::clone(&self.signals)
    }
}
