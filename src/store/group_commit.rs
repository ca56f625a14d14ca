//! Group commit for a SQLite database: one writer thread owns the connection, takes
//! whatever is queued (up to a batch), applies it in one transaction, commits, and
//! only then answers each job. A kill -9 at any moment loses nothing answered Ok
//! (WAL with `synchronous=FULL`). Used by the session list and the event log.
//!
//! A batch first runs without savepoints: a savepoint copies every page its job
//! touches (a seventh of the event log writer's time under bulk sends). When a job
//! fails, the transaction is rolled back, that job answered its error, and the
//! others run again in a fresh transaction, each in a savepoint of its own, so one
//! more failure there fails alone. When SQLite rolls a transaction back by itself
//! (SQLITE_FULL, IOERR, NOMEM, BUSY), the job is answered its error and the others
//! run again in a fresh transaction: no job ever runs outside one, and no answer
//! lies.
//!
//! The writer thread says how it ended ([`Queue::ended`]): the daemon watches it like
//! its other long-lived tasks, so a writer that panics ends the process with the
//! reason instead of leaving every later write answered "closed".

use std::{
    any::Any,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::mpsc,
};

use rusqlite::{Connection, Transaction};
use tokio::sync::{oneshot, watch};
use tracing::warn;

use super::{error::DbError, fs::open_private_file};

/// What a database does with its jobs, on its writer thread.
pub trait Apply: Send + 'static {
    /// A queued write or read.
    type Op: Send + 'static;
    /// What the job's caller hears, once the batch committed.
    type Out: Send + 'static;

    /// Runs before each batch (settings that may change between batches).
    fn before_batch(&mut self, _conn: &Connection) {}

    /// Applies one job inside the batch's transaction (in a savepoint of its own
    /// when the batch runs again after a failure). On error, it must leave its
    /// in-memory state as it was. It may run again for
    /// the same job in a later transaction (after `rolled_back`), so it does nothing
    /// beyond the transaction and what it notes for `committed`.
    fn apply(&mut self, tx: &Transaction<'_>, op: &Self::Op) -> Result<Self::Out, DbError>;

    /// The batch's transaction committed.
    fn committed(&mut self) {}

    /// The batch's transaction failed: forget what `apply` noted in memory. Called
    /// once per failed transaction; the batch's other jobs may then run again.
    fn rolled_back(&mut self) {}
}

/// One job and where its answer goes.
pub struct Job<Op, Out> {
    /// The write or read, applied on the writer thread inside its batch's transaction.
    pub op: Op,
    /// The answer, sent once committed (dropped receivers are fine).
    pub done: Option<oneshot::Sender<Result<Out, DbError>>>,
}

/// Where jobs are queued for a writer thread (cheap to clone).
pub struct Queue<A: Apply> {
    /// The writer thread's inbox; the thread ends once every clone is dropped.
    jobs: mpsc::Sender<Job<A::Op, A::Out>>,
    /// How the writer thread ended, in words; None while it runs.
    ended: watch::Receiver<Option<String>>,
}

impl<A: Apply> Clone for Queue<A> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
            ended: self.ended.clone(),
        }
    }
}

impl<A: Apply> std::fmt::Debug for Queue<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("group_commit::Queue")
    }
}

impl<A: Apply> Queue<A> {
    /// Queues `op`; the receiver hears its answer once committed (it is dropped
    /// unanswered when the writer is gone, which reads as [`DbError::Closed`]).
    pub fn submit(&self, op: A::Op) -> oneshot::Receiver<Result<A::Out, DbError>> {
        let (done, answer) = oneshot::channel();
        let _ = self.jobs.send(Job { op, done: Some(done) });
        answer
    }

    /// Queues `op` without waiting for (or hearing) its commit.
    pub fn detach(&self, op: A::Op) {
        let _ = self.jobs.send(Job { op, done: None });
    }

    /// Queues `op` and waits for its answer.
    pub async fn call(&self, op: A::Op) -> Result<A::Out, DbError> {
        self.submit(op).await.map_err(|_| DbError::Closed)?
    }

    /// Resolves once the writer thread has ended, with how (it panicked, or every
    /// sender was dropped). Holds no sender, so it never keeps the thread alive.
    pub fn ended(&self) -> impl Future<Output = String> + Send + 'static {
        let mut ended = self.ended.clone();
        async move {
            let how = match ended.wait_for(Option::is_some).await {
                Ok(how) => how.clone(),
                Err(_) => None,
            };
            how.unwrap_or_else(|| "it ended without a word".to_owned())
        }
    }
}

/// Starts the writer thread `name`; it ends when every sender is dropped (or when
/// it panics), and says which through [`Queue::ended`].
pub fn spawn<A: Apply>(name: &str, mut conn: Connection, mut state: A, max_batch: usize) -> std::io::Result<Queue<A>> {
    let (jobs, queue) = mpsc::channel::<Job<A::Op, A::Out>>();
    let (farewell, ended) = watch::channel(None);
    let label = name.to_owned();
    std::thread::Builder::new().name(name.into()).spawn(move || {
        let run = catch_unwind(AssertUnwindSafe(|| {
            while let Ok(first) = queue.recv() {
                state.before_batch(&conn);
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match queue.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                commit(&label, &mut conn, &mut state, batch);
            }
        }));
        let how = match run {
            Ok(()) => "it stopped: nothing can queue a write any more".to_owned(),
            Err(panic) => format!("it panicked: {}", panic_text(panic.as_ref())),
        };
        farewell.send_replace(Some(how));
    })?;
    Ok(Queue { jobs, ended })
}

/// A panic's message, when it has one.
fn panic_text(panic: &(dyn Any + Send)) -> &str {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => text,
        (None, Some(text)) => text,
        (None, None) => "no message",
    }
}

/// Transactions a batch may take: when a job's failure rolls the whole
/// transaction back (the first round's, which has no savepoints, or SQLite's own),
/// that job is answered its error and the others run again in a fresh one, up to
/// this many times in all.
const MAX_ROUNDS: usize = 4;

/// How one transaction over a batch's jobs ended.
enum Round<Out> {
    /// It committed: each job's answer, in order.
    Committed(Vec<Result<Out, DbError>>),
    /// It could not begin or commit: nothing of it is on disk.
    Failed(DbError),
    /// The job at `culprit` failed and took the transaction with it (it had no
    /// savepoint, or SQLite rolled it back by itself, e.g. SQLITE_FULL, IOERR,
    /// NOMEM, BUSY): nothing is on disk, and no later job ran.
    Lost {
        /// Its index in the jobs of the round.
        culprit: usize,
        /// Why it failed.
        error: DbError,
        /// SQLite rolled the transaction back (not just this round's way of
        /// undoing a job without a savepoint).
        by_sqlite: bool,
    },
}

/// Runs a batch in one transaction, commits, then answers each job. Every answer
/// is true of the disk, and so is the state's memory: a job answered Ok is
/// committed, one answered Err left nothing behind. When a job's failure rolls the
/// whole transaction back, no later job runs outside a transaction: that job is
/// answered its error and the others run again in a fresh transaction.
pub fn commit<A: Apply>(label: &str, conn: &mut Connection, state: &mut A, batch: Vec<Job<A::Op, A::Out>>) {
    let mut jobs = batch;
    for round in 1..=MAX_ROUNDS {
        // Savepoints only once a job has failed: most batches never need them.
        let guarded = round > 1;
        let (culprit, error, by_sqlite) = match run_round(conn, state, &jobs, guarded) {
            Round::Committed(results) => {
                state.committed();
                for (job, result) in jobs.into_iter().zip(results) {
                    answer(job, result);
                }
                return;
            }
            Round::Failed(error) => (None, error, true),
            Round::Lost {
                culprit,
                error,
                by_sqlite,
            } => (Some(culprit), error, by_sqlite),
        };
        state.rolled_back();
        let others = error_like(&error);
        if let Some(culprit) = culprit {
            answer(jobs.remove(culprit), Err(error));
            if jobs.is_empty() {
                return;
            }
            if round < MAX_ROUNDS {
                if !by_sqlite {
                    continue;
                }
                warn!(error = %others, writes = jobs.len(), round, database = label,
                    "a write failed and SQLite rolled its batch back; the others run again");
                continue;
            }
        }
        warn!(error = %others, writes = jobs.len(), database = label, "a batch could not commit");
        for job in jobs {
            answer(job, Err(error_like(&others)));
        }
        return;
    }
}

/// Sends a job its answer (a caller that went away is fine).
fn answer<Op, Out>(job: Job<Op, Out>, result: Result<Out, DbError>) {
    if let Some(done) = job.done {
        let _ = done.send(result);
    }
}

/// The same failure again, for another job: full stays full.
fn error_like(error: &DbError) -> DbError {
    let message = error.to_string();
    if error.is_full() {
        DbError::Full(message)
    } else {
        DbError::Io(std::io::Error::other(message))
    }
}

/// Applies `jobs` in order in one transaction (each in a savepoint when
/// `guarded`) and commits it.
fn run_round<A: Apply>(
    conn: &mut Connection,
    state: &mut A,
    jobs: &[Job<A::Op, A::Out>],
    guarded: bool,
) -> Round<A::Out> {
    if !conn.is_autocommit() {
        // A transaction left open by a rollback that failed: it must not swallow this one.
        let _ = conn.execute_batch("ROLLBACK");
    }
    let tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(error) => return Round::Failed(error.into()),
    };
    let mut results = Vec::with_capacity(jobs.len());
    for (index, job) in jobs.iter().enumerate() {
        let applied = if guarded {
            apply_one(&tx, state, &job.op)
        } else {
            apply_bare(&tx, state, &job.op).map(Ok)
        };
        match applied {
            Ok(result) => results.push(result),
            Err(error) => {
                // In a guarded round only a lost transaction ends the round.
                let by_sqlite = guarded || tx.is_autocommit();
                // Dropping `tx` rolls back whatever is left of the transaction.
                return Round::Lost {
                    culprit: index,
                    error,
                    by_sqlite,
                };
            }
        }
    }
    match tx.commit() {
        Ok(()) => Round::Committed(results),
        Err(error) => Round::Failed(error.into()),
    }
}

/// Applies one job with no savepoint: when it fails, the transaction must go.
/// Ok also requires that SQLite did not roll the transaction back under it.
fn apply_bare<A: Apply>(tx: &Transaction<'_>, state: &mut A, op: &A::Op) -> Result<A::Out, DbError> {
    let result = state.apply(tx, op);
    if tx.is_autocommit() {
        return Err(result.err().unwrap_or_else(rolled_back_under));
    }
    result
}

/// What a job hears when SQLite rolled its transaction back but the job did not
/// see an error.
fn rolled_back_under() -> DbError {
    DbError::Io(std::io::Error::other(
        "the transaction was rolled back during the write",
    ))
}

/// Applies one job inside a savepoint: a job that fails leaves nothing behind, and
/// the others in its batch still commit. `apply` changes its in-memory state only
/// once its SQL succeeded. Err: the transaction is gone (SQLite rolled it back, or
/// the savepoint could not be kept or undone), with the job's own error.
fn apply_one<A: Apply>(tx: &Transaction<'_>, state: &mut A, op: &A::Op) -> Result<Result<A::Out, DbError>, DbError> {
    // Cached: parsing these three statements for every job cost more than the jobs.
    tx.prepare_cached("SAVEPOINT job")?.execute([])?;
    let result = state.apply(tx, op);
    if tx.is_autocommit() {
        // SQLite rolled the whole transaction back: whatever ran after that
        // autocommitted, so this must end the round.
        return Err(result.err().unwrap_or_else(rolled_back_under));
    }
    match result {
        Ok(out) => {
            tx.prepare_cached("RELEASE job")?.execute([])?;
            Ok(Ok(out))
        }
        Err(error) => {
            let undone = tx
                .prepare_cached("ROLLBACK TO job")
                .and_then(|mut s| s.execute([]))
                .and_then(|_| tx.prepare_cached("RELEASE job"))
                .and_then(|mut s| s.execute([]));
            match undone {
                Ok(_) => Ok(Err(error)),
                Err(_) => Err(error),
            }
        }
    }
}

/// How many prepared statements a connection keeps (rusqlite keeps 16, fewer than
/// the event log's writer and readers use, which then prepare them again).
pub const STATEMENT_CACHE: usize = 256;

/// Opens (or creates, 0600) a database for group commit: WAL, `synchronous=FULL`.
/// Blocking.
pub fn open(path: &std::path::Path) -> Result<Connection, DbError> {
    open_private_file(path, false)?;
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

#[cfg(test)]
#[path = "group_commit_tests.rs"]
mod tests;
