//! The writer thread's promises: it says how it ended, and every answer of a batch
//! is true of the disk, even when SQLite rolls the batch's transaction back.

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

/// Each job writes one row of the given size under the given id; the state counts
/// the rows it believes are on disk, as the event log keeps its head.
#[derive(Default)]
struct Rows {
    kept: u64,
    pending: u64,
}

impl Apply for Rows {
    type Op = (i64, usize);
    type Out = ();

    fn apply(&mut self, tx: &Transaction<'_>, &(id, size): &(i64, usize)) -> Result<(), DbError> {
        tx.execute(
            "INSERT INTO t (id, body) VALUES (?1, zeroblob(?2))",
            rusqlite::params![id, size as i64],
        )?;
        self.pending += 1;
        Ok(())
    }

    fn committed(&mut self) {
        self.kept += std::mem::take(&mut self.pending);
    }

    fn rolled_back(&mut self) {
        self.pending = 0;
    }
}

/// Commits `ops` as one batch, by hand; returns each answer and the ids on disk.
fn run_batch(conn: &mut Connection, state: &mut Rows, ops: &[(i64, usize)]) -> (Vec<Result<(), DbError>>, Vec<i64>) {
    let (batch, answers): (Vec<_>, Vec<_>) = ops
        .iter()
        .map(|&op| {
            let (done, answer) = oneshot::channel();
            (Job { op, done: Some(done) }, answer)
        })
        .unzip();
    commit("rows", conn, state, batch);
    let answers = answers
        .into_iter()
        .map(|mut answer| answer.try_recv().expect("every job is answered"))
        .collect();
    let on_disk = conn
        .prepare("SELECT id FROM t ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (answers, on_disk)
}

/// A database with room for a few small rows and not for a big one.
fn nearly_full(dir: &tempfile::TempDir) -> Connection {
    let conn = open(&dir.path().join("rows.db")).unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        .unwrap();
    let pages: i64 = conn.pragma_query_value(None, "page_count", |row| row.get(0)).unwrap();
    conn.pragma_update(None, "max_page_count", pages + 4).unwrap();
    conn
}

#[test]
fn a_write_that_makes_sqlite_roll_back_its_batch_leaves_every_answer_true() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = nearly_full(&dir);
    let mut state = Rows::default();
    // The big row is SQLITE_FULL, on which SQLite rolls the whole transaction back
    // (job 1's row with it) and job 3 would run outside any transaction.
    let ops = [(1, 100), (2, 1 << 20), (3, 100)];
    let (answers, on_disk) = run_batch(&mut conn, &mut state, &ops);
    for ((id, _), answer) in ops.iter().zip(&answers) {
        assert_eq!(
            answer.is_ok(),
            on_disk.contains(id),
            "job {id} was answered {answer:?}; on disk: {on_disk:?}"
        );
    }
    assert!(answers[1].as_ref().is_err_and(DbError::is_full), "{:?}", answers[1]);
    assert_eq!(on_disk, [1, 3], "the big row alone failed");
    assert_eq!(state.kept, 2, "memory matches the disk");
    assert!(conn.is_autocommit(), "no transaction is left open");

    // The writer goes on as before.
    let (answers, on_disk) = run_batch(&mut conn, &mut state, &[(4, 100)]);
    assert!(answers[0].is_ok());
    assert_eq!((on_disk, state.kept), (vec![1, 3, 4], 3));
}

#[test]
fn a_failed_write_that_keeps_the_transaction_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = nearly_full(&dir);
    let mut state = Rows::default();
    // The same id twice: a constraint error, the transaction stays open.
    let (answers, on_disk) = run_batch(&mut conn, &mut state, &[(1, 100), (1, 100), (2, 100)]);
    assert_eq!(
        answers.iter().map(Result::is_ok).collect::<Vec<_>>(),
        [true, false, true]
    );
    assert_eq!((on_disk, state.kept), (vec![1, 2], 2));
}

#[test]
fn a_batch_whose_every_write_takes_the_transaction_down_gives_up_in_a_bounded_number_of_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = nearly_full(&dir);
    let mut state = Rows::default();
    let ops: Vec<_> = (1..=10).map(|id| (id, 1 << 20)).collect();
    let (answers, on_disk) = run_batch(&mut conn, &mut state, &ops);
    assert!(answers.iter().all(Result::is_err), "{answers:?}");
    assert!(answers
        .iter()
        .all(|answer| answer.as_ref().is_err_and(DbError::is_full)));
    assert_eq!((on_disk, state.kept), (vec![], 0));
}
