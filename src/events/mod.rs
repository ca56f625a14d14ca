//! The event log: every inbound message, receipt and status change of every session,
//! in one ordered, durable log on disk (`<data-dir>/events.db`), and where each named
//! consumer has acked up to. Appends go through one writer thread with group commit
//! ([`crate::store::group_commit`]): an append is answered only once it is on disk,
//! which is what lets a backend ack a message to WhatsApp only after that. Messages
//! are kept once per (session, chat, sender, id), however often they are delivered.
//!
//! Readers (streams) read pages from disk on a small pool of read-only connections
//! and follow the head, published after each commit: a stream that falls behind costs
//! disk reads, never memory, and never slows a writer.

pub mod campaign;
mod campaign_log;
mod cursor;
mod db;
mod follow;
pub mod metrics;
pub mod outbound;
mod outbound_log;
mod read;
pub mod retention;
mod rows;
mod trim;

pub use cursor::{format_cursor, parse_cursor};
pub use follow::{expired, follow, FollowEnd};
pub use read::Filter;

use std::{
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::SystemTime,
};

use tokio::sync::watch;

pub use crate::proto::{
    event::Body, Event, EventKind, InboundMessage, OutboundUpdate, Receipt, ReceiptKind, StatusChange,
};
use crate::{
    media::MediaStore,
    store::{checkpointer, group_commit, DbError},
};

/// The most named consumers kept unless configured (`--max-consumers`).
pub const DEFAULT_MAX_CONSUMERS: usize = 1000;

/// The log's file name under the data dir.
pub const EVENTS_FILE: &str = "events.db";

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Whose event it is.
    pub session_id: String,
    /// When it happened (the log's time).
    pub time: SystemTime,
    /// What happened.
    pub body: Body,
}

impl NewEvent {
    /// An event of `session_id` now.
    pub fn now(session_id: impl Into<String>, body: Body) -> Self {
        Self {
            session_id: session_id.into(),
            time: SystemTime::now(),
            body,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> EventKind {
        kind_of(&self.body)
    }
}

/// The kind of a body.
pub fn kind_of(body: &Body) -> EventKind {
    match body {
        Body::Message(_) => EventKind::Message,
        Body::Receipt(_) => EventKind::Receipt,
        Body::Status(_) => EventKind::Status,
        Body::Outbound(_) => EventKind::Outbound,
        Body::Health(_) => EventKind::Health,
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// Events written.
    pub added: usize,
    /// Messages already in the log (redeliveries), skipped.
    pub duplicates: usize,
}

/// What the writer and the readers share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Every event up to this cursor has been trimmed (0: none).
    pub trimmed_through: AtomicU64,
    /// Bytes of event bodies kept (an estimate of the log's size).
    pub bytes: AtomicU64,
}

/// The event log (cheap to clone).
#[derive(Clone)]
pub struct EventLog {
    /// The writer thread's queue: every append and trim goes through it.
    queue: group_commit::Queue<db::Writer>,
    /// The last committed cursor, published after each commit (streams follow it).
    head: watch::Receiver<u64>,
    /// The followers of each session's campaigns, told after each commit.
    campaigns: Arc<db::Signals>,
    /// What the writer and the readers share (trim point, size estimate).
    shared: Arc<Shared>,
    /// The read-only connections streams read pages from.
    readers: read::Readers,
    /// The log's metrics (appends, lag, age).
    metrics: Arc<metrics::EventMetrics>,
    /// The most named consumers kept (0: no bound).
    max_consumers: usize,
    /// Media handles and inbound download descriptors (`media.db`, beside it).
    media: MediaStore,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").field("head", &*self.head.borrow()).finish()
    }
}

impl EventLog {
    /// Opens (or creates) `<root>/events.db` and starts its writer thread. Blocking:
    /// call from `spawn_blocking`.
    pub fn open(root: &Path, metrics: Arc<metrics::EventMetrics>) -> Result<Self, DbError> {
        let path = root.join(EVENTS_FILE);
        let conn = group_commit::open(&path)?;
        let shared = Arc::new(Shared::default());
        let (mut writer, head) = db::Writer::new(&conn, Arc::clone(&shared), Arc::clone(&metrics))?;
        writer.checkpoint_aside(checkpointer::spawn("event-log-ckpt", &conn)?);
        let campaigns = writer.signals();
        let queue = group_commit::spawn("event-log", conn, writer, db::MAX_BATCH)?;
        let readers = read::Readers::new(path);
        let media = MediaStore::open(root)?;
        Ok(Self {
            queue,
            head,
            campaigns,
            shared,
            readers,
            metrics,
            max_consumers: DEFAULT_MAX_CONSUMERS,
            media,
        })
    }

    /// The media store opened with the log: what its sessions uploaded, and the
    /// download descriptors of what they received.
    pub fn media(&self) -> &MediaStore {
        &self.media
    }

    /// Keeps at most `max` named consumers (0: no bound); a new one beyond is
    /// refused.
    pub fn with_max_consumers(mut self, max: usize) -> Self {
        self.max_consumers = max;
        self
    }

    /// Resolves once the writer thread has ended, with how (the daemon watches it).
    pub fn writer_ended(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        self.queue.ended()
    }

    /// Appends events (in order) and answers once they are on disk. A message
    /// already in the log is skipped, not an error.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Appended, DbError> {
        match self.run(db::Op::Append(events)).await? {
            db::Out::Appended(appended) => Ok(appended),
            _ => unreachable!("append answers Appended"),
        }
    }

    /// Queues an event without waiting for its commit (status changes, receipts):
    /// its order among the session's other events is the order of the calls.
    pub fn append_detached(&self, event: NewEvent) {
        self.queue.detach(db::Op::Append(vec![event]));
    }

    /// Stores `consumer`'s position (creating the consumer), keeping the newer of the
    /// stored one and `cursor`; answers the position stored, once on disk. None: a
    /// new consumer, and the log already keeps its most (`with_max_consumers`).
    pub async fn ack(&self, consumer: &str, cursor: u64) -> Result<Option<u64>, DbError> {
        let op = db::Op::Ack {
            consumer: consumer.to_owned(),
            cursor,
            max: self.max_consumers,
        };
        match self.run(op).await? {
            db::Out::Position(position) => {
                if let Some(position) = position {
                    self.metrics.consumer_acked(consumer, self.head(), position);
                }
                Ok(position)
            }
            _ => unreachable!("ack answers Position"),
        }
    }

    /// The most named consumers this log keeps (0: no bound).
    pub fn max_consumers(&self) -> usize {
        self.max_consumers
    }

    /// Forgets `consumer` (its position and its metric); false if it was unknown.
    pub async fn delete_consumer(&self, consumer: &str) -> Result<bool, DbError> {
        match self.run(db::Op::DeleteConsumer(consumer.to_owned())).await? {
            db::Out::Deleted(existed) => {
                self.metrics.consumer_deleted(consumer);
                Ok(existed)
            }
            _ => unreachable!("delete_consumer answers Deleted"),
        }
    }

    /// Appends the session's final status event (`deleted`) and hides its earlier
    /// events at once; retention removes them in chunks ([`EventLog::remove_deleted`]).
    /// Queued at once: the returned future only tells when it is on disk, and may be
    /// dropped.
    pub fn delete_session(
        &self,
        session_id: &str,
        last: StatusChange,
    ) -> impl std::future::Future<Output = Result<(), DbError>> + Send + 'static {
        let event = NewEvent::now(session_id, Body::Status(last));
        let answer = self.queue.submit(db::Op::DeleteSession(Box::new(event)));
        async move { answer.await.map_err(|_| DbError::Closed)?.map(drop) }
    }

    /// Removes one chunk of deleted sessions' events (hidden since their delete).
    /// Returns how many went.
    pub async fn remove_deleted(&self, chunk: usize) -> Result<usize, DbError> {
        match self.run(db::Op::Remove { chunk }).await? {
            db::Out::Removed(n) => Ok(n),
            _ => unreachable!("remove_deleted answers Removed"),
        }
    }

    /// Trims one chunk of the oldest events: those logged before `before` or beyond
    /// `max_bytes` (0: no byte bound). Returns how many went.
    pub async fn trim(&self, before: SystemTime, max_bytes: u64, chunk: usize) -> Result<usize, DbError> {
        let op = db::Op::Trim {
            before_ms: crate::store::unix_ms(before) as i64,
            max_bytes,
            chunk,
        };
        match self.run(op).await? {
            db::Out::Trimmed(n) => Ok(n),
            _ => unreachable!("trim answers Trimmed"),
        }
    }

    /// The cursor of the newest event on disk (0: none yet).
    pub fn head(&self) -> u64 {
        *self.head.borrow()
    }

    /// Follows the head.
    pub fn watch_head(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }

    /// Every event up to this cursor is gone (0: none trimmed).
    pub fn trimmed_through(&self) -> u64 {
        self.shared.trimmed_through.load(Ordering::Acquire)
    }

    /// Where a reader of `filter` starts from the oldest event kept: after the log's
    /// trim mark, accepting the gaps the byte cap left in its sessions so far
    /// (noted in `filter`).
    pub async fn oldest_start(&self, filter: &mut Filter) -> Result<u64, DbError> {
        let after = self.trimmed_through();
        filter.accepted = self.readers.session_marks(after, filter.sessions.clone()).await?;
        Ok(after)
    }

    /// Bytes of event bodies kept.
    pub fn bytes(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    /// Events after `after` that pass `filter`, oldest first, at most `limit`.
    pub async fn page(&self, after: u64, filter: &Filter, limit: usize) -> Result<Vec<Event>, DbError> {
        self.readers.page(after, filter.clone(), limit).await
    }

    /// A consumer's acked position (None: unknown consumer).
    pub async fn position(&self, consumer: &str) -> Result<Option<u64>, DbError> {
        self.readers.position(consumer.to_owned()).await
    }

    /// The oldest event kept: its cursor and when it was logged (None: empty log).
    pub async fn oldest(&self) -> Result<Option<(u64, SystemTime)>, DbError> {
        self.readers.oldest().await
    }

    /// Every consumer and its acked position.
    pub async fn consumers(&self) -> Result<Vec<(String, u64)>, DbError> {
        self.readers.consumers().await
    }

    /// The log's metrics.
    pub fn metrics(&self) -> &metrics::EventMetrics {
        &self.metrics
    }

    async fn run(&self, op: db::Op) -> Result<db::Out, DbError> {
        self.queue.call(op).await
    }
}

/// Where a backend connection delivers what WhatsApp sends one session's account.
#[derive(Clone, Debug)]
pub struct Inbox {
    log: EventLog,
    session_id: String,
}

impl Inbox {
    /// The inbox of `session_id`.
    pub fn new(log: EventLog, session_id: impl Into<String>) -> Self {
        Self {
            log,
            session_id: session_id.into(),
        }
    }

    /// Commits what WhatsApp delivered (messages, receipts), in order; Ok only once
    /// it is on disk, so the backend may ack it to WhatsApp then (and not before).
    /// Redeliveries of messages already in the log are skipped.
    pub async fn commit(&self, bodies: Vec<Body>) -> Result<Appended, DbError> {
        let time = SystemTime::now();
        let events = bodies
            .into_iter()
            .map(|body| NewEvent {
                session_id: self.session_id.clone(),
                time,
                body,
            })
            .collect();
        self.log.append(events).await
    }

    /// Keeps the download descriptor (`blob`, the backend's JSON) of a media message
    /// of `chat` before it is committed, so DownloadMedia finds it once the message
    /// is in the log; Ok only once it is on disk.
    pub async fn keep_media(&self, chat: &str, message_id: &str, blob: String) -> Result<(), DbError> {
        self.log
            .media
            .put_inbound(&self.session_id, chat, message_id, blob)
            .await
    }

    /// A [`Inbox::commit`] failed or timed out (counted; the caller retries).
    pub fn commit_failed(&self) {
        self.log.metrics().inbound_commit_failed();
    }

    /// WhatsApp's server acked (`error` None) or refused (`error`: its code, e.g.
    /// 463) a message the session sent (queued; not awaited).
    pub fn server_ack(&self, message_id: String, error: Option<u32>) {
        self.log.server_acked(&self.session_id, message_id, error);
    }

    /// WhatsApp said something about the account's health (queued; not awaited):
    /// logged as an EVENT_KIND_HEALTH event when it changes anything.
    pub fn health(&self, signal: outbound::HealthSignal) {
        self.log.health_detached(&self.session_id, signal);
    }

    /// Logs a receipt for messages the session sent (queued; not awaited).
    pub fn receipt(&self, receipt: Receipt) {
        self.log
            .append_detached(NewEvent::now(self.session_id.clone(), Body::Receipt(receipt)));
    }
}

#[cfg(test)]
mod tests;
