//! A stream racing a trim (issue 23 item 5): a trim commits its deletion before
//! the writer publishes its mark, and a reader whose page falls in between must
//! still be told CURSOR_EXPIRED rather than be handed a gap. The window is held
//! open by hand: a second writer on the same file commits the trim, and the log's
//! own writer, which publishes the mark, never hears of it.

use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::by_hand::Hand;
use super::{message, open};
use crate::events::{db::Op, db::Out, follow, Filter, FollowEnd};

#[tokio::test]
async fn a_page_read_after_a_trim_committed_but_before_its_mark_is_published_expires_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let old = SystemTime::now() - Duration::from_secs(3600);
    let mut events: Vec<_> = (1..=4).map(|i| message("a", "1@s", &format!("m{i}"), "x")).collect();
    for event in &mut events[..2] {
        event.time = old;
    }
    log.append(events).await.unwrap();

    // Events 1 and 2 go, on disk; the mark the log publishes still says nothing went.
    let mut trimmer = Hand::open(&dir);
    let cutoff = SystemTime::now() - Duration::from_secs(60);
    let answers = trimmer.batch(vec![Op::Trim {
        before_ms: crate::store::unix_ms(cutoff) as i64,
        max_bytes: 0,
        chunk: 100,
    }]);
    assert!(matches!(answers[0], Ok(Out::Trimmed(2))), "{:?}", answers[0]);
    assert_eq!(
        log.trimmed_through(),
        0,
        "the window: trimmed on disk, not yet published"
    );

    // A reader that has seen event 1 must not be handed 3 and 4 as if 2 never was.
    let (tx, mut rx) = mpsc::channel(8);
    let (_running, stopping) = tokio::sync::watch::channel(false);
    let reader = tokio::spawn(follow(log.clone(), 1, Filter::default(), tx, stopping));
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the reader answers")
        .expect("an answer");
    match first {
        Err(FollowEnd::Expired { oldest, head }) => assert_eq!((oldest, head), (Some(3), 4)),
        other => panic!("expected CURSOR_EXPIRED, got {other:?}"),
    }
    reader.abort();
}

#[tokio::test]
async fn a_reader_at_the_trim_mark_reads_on_without_expiring() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let old = SystemTime::now() - Duration::from_secs(3600);
    let mut events: Vec<_> = (1..=4)
        .map(|i| message("a", "1@s", &format!("m{i}"), &i.to_string()))
        .collect();
    for event in &mut events[..2] {
        event.time = old;
    }
    log.append(events).await.unwrap();
    let mut trimmer = Hand::open(&dir);
    let cutoff = SystemTime::now() - Duration::from_secs(60);
    trimmer.batch(vec![Op::Trim {
        before_ms: crate::store::unix_ms(cutoff) as i64,
        max_bytes: 0,
        chunk: 100,
    }]);

    // It has seen everything trimmed: nothing was missed.
    let (tx, mut rx) = mpsc::channel(8);
    let (_running, stopping) = tokio::sync::watch::channel(false);
    let reader = tokio::spawn(follow(log.clone(), 2, Filter::default(), tx, stopping));
    for expected in ["3", "4"] {
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the reader answers")
            .expect("an answer")
            .expect("an event, not an end");
        assert_eq!(super::text(&event), expected);
    }
    reader.abort();
}
