//! A job that fails inside a batch (issue 23 item 4): whether SQLite rolls the
//! whole transaction back (a full disk) or only the job (a refused statement),
//! every answer is true of the disk and the writer's memory matches it.

use std::time::{Duration, SystemTime};

use super::by_hand::Hand;
use super::{message, text};
use crate::events::{db::Op, db::Out, outbound, Body, Receipt, ReceiptKind};

fn append(event: crate::events::NewEvent) -> Op {
    Op::Append(vec![event])
}

/// The text of every message on disk, in log order.
fn texts(hand: &Hand) -> Vec<String> {
    let mut statement = hand.conn.prepare("SELECT body FROM events ORDER BY cursor").unwrap();
    let bodies: Vec<Vec<u8>> = statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    bodies
        .iter()
        .map(|body| text(&prost::Message::decode(body.as_slice()).unwrap()).to_owned())
        .collect()
}

#[test]
fn a_full_disk_that_rolls_a_batch_back_leaves_answers_head_trim_mark_and_numbers_true() {
    let dir = tempfile::tempdir().unwrap();
    let mut hand = Hand::open(&dir);
    let mut old = message("a", "1@s", "m1", "one");
    old.time = SystemTime::now() - Duration::from_secs(3600);
    hand.batch(vec![append(old), append(message("a", "1@s", "m2", "two"))]);
    hand.assert_memory_matches_disk();

    // Room for small events, not for a big one: SQLITE_FULL, on which SQLite rolls
    // the whole transaction back by itself.
    hand.room_for_pages(16);
    let big = "x".repeat(1 << 20);
    let cutoff = SystemTime::now() - Duration::from_secs(60);
    let answers = hand.batch(vec![
        append(message("a", "1@s", "m3", "three")),
        append(message("a", "1@s", "big", &big)),
        append(message("a", "1@s", "m4", "four")),
        Op::Trim {
            before_ms: crate::store::unix_ms(cutoff) as i64,
            max_bytes: 0,
            chunk: 100,
        },
    ]);
    let on_disk = texts(&hand);
    for (wrote, answer) in ["three", "big", "four"].into_iter().zip(&answers) {
        let kept = on_disk.iter().any(|text| text == wrote);
        assert_eq!(
            answer.is_ok(),
            kept,
            "{wrote:?} answered {answer:?}; on disk: {on_disk:?}"
        );
    }
    let trimmed = !on_disk.iter().any(|text| text == "one");
    assert_eq!(
        answers[3].is_ok(),
        trimmed,
        "the trim answered {:?}; on disk: {on_disk:?}",
        answers[3]
    );
    hand.assert_memory_matches_disk();
    // Only the big one failed: the others ran again in a fresh transaction.
    assert!(answers[1].as_ref().is_err_and(|e| e.is_full()), "{:?}", answers[1]);
    assert!(matches!(answers[3], Ok(Out::Trimmed(1))), "{:?}", answers[3]);
    assert_eq!(on_disk, ["two", "three", "four"]);

    // Appending again goes on from the numbers on disk.
    hand.room_for_pages(0);
    let answers = hand.batch(vec![append(message("a", "1@s", "m5", "five"))]);
    assert!(answers[0].is_ok());
    let disk = hand.disk();
    let seqs: Vec<u64> = disk.events.iter().map(|e| e.2).collect();
    assert_eq!(seqs, [2, 3, 4, 5]);
    hand.assert_memory_matches_disk();
}

#[test]
fn a_job_refused_after_its_first_step_leaves_no_number_or_head_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut hand = Hand::open(&dir);
    let accept = outbound::Accept {
        session_id: "a".into(),
        message_id: "out1".into(),
        client_id: None,
        chat: "1@s".into(),
        fingerprint: "f".into(),
        payload: "p".into(),
        queued: false,
        campaign: None,
    };
    let answers = hand.batch(vec![Op::Accept(Box::new(accept))]);
    assert!(answers[0].is_ok(), "{:?}", answers[0]);
    // The receipt's status change is refused after the append wrote its events.
    hand.conn
        .execute_batch("CREATE TRIGGER refuse BEFORE UPDATE ON outbound BEGIN SELECT RAISE(ABORT, 'refused'); END")
        .unwrap();
    let receipt = crate::events::NewEvent::now(
        "a",
        Body::Receipt(Receipt {
            chat: "1@s".into(),
            from: "1@s".into(),
            message_ids: vec!["out1".into()],
            kind: ReceiptKind::Delivered as i32,
            ..Default::default()
        }),
    );
    let answers = hand.batch(vec![
        Op::Append(vec![message("a", "1@s", "m1", "one"), receipt]),
        append(message("a", "1@s", "m2", "two")),
    ]);
    assert!(answers[0].is_err(), "{:?}", answers[0]);
    assert!(answers[1].is_ok(), "{:?}", answers[1]);
    assert_eq!(texts(&hand), ["two"]);
    assert_eq!(hand.disk().events[0].2, 1, "the first event on disk is number 1");
    hand.assert_memory_matches_disk();
}
