//! DeleteSession's removal of a session's events (issue 23 item 3, second half):
//! the delete itself writes a bounded amount, the events are hidden at once and
//! removed in chunks that other sessions' appends commit between, and a crash
//! mid-removal leaves them hidden and finished by the next retention pass.

use std::time::Duration;

use super::by_hand::Hand;
use super::{all, message, open, text};
use crate::events::{db::Op, db::Out, retention, Body, NewEvent, StatusChange};

fn deleted(session: &str) -> Op {
    let last = StatusChange {
        deleted: true,
        ..Default::default()
    };
    Op::DeleteSession(Box::new(NewEvent::now(session, Body::Status(last))))
}

/// Events of `session` on disk.
fn on_disk(hand: &Hand, session: &str) -> usize {
    hand.disk().events.iter().filter(|(_, s, _)| s == session).count()
}

#[test]
fn a_deleted_sessions_events_go_in_chunks_that_other_appends_commit_between() {
    let dir = tempfile::tempdir().unwrap();
    let mut hand = Hand::open(&dir);
    let many: Vec<_> = (0..10).map(|i| message("a", "1@s", &format!("m{i}"), "x")).collect();
    hand.batch(vec![Op::Append(many), Op::Append(vec![message("b", "2@s", "m0", "y")])]);

    // The delete logs `deleted` and removes nothing yet: a bounded write.
    assert!(hand.batch(vec![deleted("a")])[0].is_ok());
    assert_eq!(on_disk(&hand, "a"), 11);
    let mut removed = Vec::new();
    loop {
        let answers = hand.batch(vec![
            Op::Remove { chunk: 4 },
            Op::Append(vec![message("b", "2@s", &format!("r{}", removed.len()), "y")]),
        ]);
        let Ok(Out::Removed(n)) = answers[0] else {
            panic!("{:?}", answers[0])
        };
        assert!(answers[1].is_ok(), "b's append commits between the chunks");
        removed.push(n);
        if n < 4 {
            break;
        }
    }
    assert_eq!(removed, [4, 4, 2]);
    assert_eq!(on_disk(&hand, "a"), 1, "only its `deleted` event is left");
    hand.assert_memory_matches_disk();
}

#[tokio::test]
async fn a_crash_mid_removal_leaves_the_events_hidden_and_the_next_pass_finishes_them() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut hand = Hand::open(&dir);
        let many: Vec<_> = (0..10).map(|i| message("a", "1@s", &format!("m{i}"), "x")).collect();
        hand.batch(vec![Op::Append(many), Op::Append(vec![message("b", "2@s", "m0", "y")])]);
        hand.batch(vec![deleted("a"), Op::Remove { chunk: 3 }]);
        assert_eq!(on_disk(&hand, "a"), 8);
        // The daemon dies here, the rest not removed.
    }
    let log = open(&dir);
    let seen: Vec<_> = all(&log).await.into_iter().map(|e| (e.session_id, e.seq)).collect();
    assert_eq!(
        seen,
        [("b".to_owned(), 1), ("a".to_owned(), 11)],
        "nothing of a's past shows"
    );
    let keep_all = retention::Retention {
        max_age: Duration::from_secs(3600),
        max_bytes: 0,
        every: Duration::from_secs(30),
    };
    retention::pass(&log, keep_all).await.unwrap();
    drop(log);
    let hand = Hand::open(&dir);
    assert_eq!(on_disk(&hand, "a"), 1, "only its `deleted` event is left");
}

#[tokio::test]
async fn a_session_created_again_before_the_removal_logs_its_messages_anew() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    log.append(vec![message("a", "1@s", "m1", "one")]).await.unwrap();
    log.delete_session(
        "a",
        StatusChange {
            deleted: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // The same message id, in the new incarnation, before any removal ran.
    let again = log.append(vec![message("a", "1@s", "m1", "one again")]).await.unwrap();
    assert_eq!(again.added, 1, "not a duplicate of the deleted past");
    let last = all(&log).await.pop().unwrap();
    assert_eq!((last.seq, text(&last)), (1, "one again"));
    assert_eq!(log.remove_deleted(100).await.unwrap(), 0, "its past is gone already");
}
