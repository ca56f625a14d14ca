//! Group commit for a SQLite database: one writer thread owns the connection, takes
//! whatever is queued (up to a batch), applies it in one transaction, commits, and
//! only then answers each job. A kill -9 at any moment loses nothing answered Ok
//! (WAL with `synchronous=FULL`). Used by the session list and the event log.
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

    /// Applies one job inside the batch's transaction (in a savepoint of its own).
    /// On error, it must leave its in-memory state as it was.
    fn apply(&mut self, tx: &Transaction<'_>, op: &Self::Op) -> Result<Self::Out, DbError>;

    /// The batch's transaction committed.
    fn committed(&mut self) {}

    /// The batch's transaction failed: forget what `apply` noted in memory.
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

/// Runs a batch in one transaction, commits, then answers each job (every one with
/// the error when the commit fails).
pub fn commit<A: Apply>(label: &str, conn: &mut Connection, state: &mut A, batch: Vec<Job<A::Op, A::Out>>) {
    let outcome = conn.transaction().map_err(DbError::from).and_then(|tx| {
        let results: Vec<_> = batch.iter().map(|job| apply_one(&tx, state, &job.op)).collect();
        tx.commit()?;
        Ok(results)
    });
    match outcome {
        Ok(results) => {
            state.committed();
            for (job, result) in batch.into_iter().zip(results) {
                if let Some(done) = job.done {
                    let _ = done.send(result);
                }
            }
        }
        Err(e) => {
            state.rolled_back();
            warn!(error = %e, writes = batch.len(), database = label, "a batch could not commit");
            let (message, full) = (e.to_string(), e.is_full());
            for job in batch {
                let error = if full {
                    DbError::Full(message.clone())
                } else {
                    DbError::Io(std::io::Error::other(message.clone()))
                };
                if let Some(done) = job.done {
                    let _ = done.send(Err(error));
                }
            }
        }
    }
}

/// Applies one job inside a savepoint: a job that fails leaves nothing behind, and
/// the others in its batch still commit. `apply` changes its in-memory state only
/// once its SQL succeeded.
fn apply_one<A: Apply>(tx: &Transaction<'_>, state: &mut A, op: &A::Op) -> Result<A::Out, DbError> {
    // Cached: parsing these three statements for every job cost more than the jobs.
    tx.prepare_cached("SAVEPOINT job")?.execute([])?;
    match state.apply(tx, op) {
        Ok(out) => {
            tx.prepare_cached("RELEASE job")?.execute([])?;
            Ok(out)
        }
        Err(error) => {
            let _ = tx.prepare_cached("ROLLBACK TO job").and_then(|mut s| s.execute([]));
            let _ = tx.prepare_cached("RELEASE job").and_then(|mut s| s.execute([]));
            Err(error)
        }
    }
}

/// Opens (or creates, 0600) a database for group commit: WAL, `synchronous=FULL`.
/// Blocking.
pub fn open(path: &std::path::Path) -> Result<Connection, DbError> {
    open_private_file(path, false)?;
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A database whose every job panics on the writer thread.
    struct Broken;

    impl Apply for Broken {
        type Op = ();
        type Out = ();

        fn apply(&mut self, _tx: &Transaction<'_>, _op: &()) -> Result<(), DbError> {
            panic!("a bug in apply");
        }
    }

    #[tokio::test]
    async fn a_writer_that_panics_says_so_and_its_callers_hear_closed() {
        let conn = Connection::open_in_memory().unwrap();
        let queue = spawn("broken", conn, Broken, 8).unwrap();
        let ended = tokio::spawn(queue.ended());
        let answer = queue.call(()).await;
        assert!(matches!(answer, Err(DbError::Closed)), "{answer:?}");
        let how = tokio::time::timeout(Duration::from_secs(10), ended)
            .await
            .expect("the end is told")
            .unwrap();
        assert_eq!(how, "it panicked: a bug in apply");
    }

    #[tokio::test]
    async fn a_writer_whose_senders_are_gone_says_it_stopped() {
        let conn = Connection::open_in_memory().unwrap();
        let queue = spawn("idle", conn, Broken, 8).unwrap();
        let ended = queue.ended();
        drop(queue);
        let how = tokio::time::timeout(Duration::from_secs(10), ended)
            .await
            .expect("the end is told");
        assert!(how.starts_with("it stopped"), "{how}");
    }
}
