//! The event log on a real file: order, per-session numbering, the message dedupe,
//! consumer positions, deletion, trimming, and a follower that crosses from replay
//! to live without a gap or a repeat.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::sync::mpsc;

use super::*;
use crate::proto::{InboundMessage, SessionStatus};

mod by_hand;
mod campaigns;
mod fair;
mod media_retention;
mod removal;
mod rollback;
mod trim_race;
mod undecryptable;
mod upgrade;

fn open(dir: &tempfile::TempDir) -> EventLog {
    EventLog::open(dir.path(), Arc::default()).expect("open the log")
}

fn message(session: &str, chat: &str, id: &str, text: &str) -> NewEvent {
    NewEvent::now(
        session,
        Body::Message(InboundMessage {
            id: id.into(),
            chat: chat.into(),
            sender: chat.into(),
            text: text.into(),
            ..Default::default()
        }),
    )
}

fn status(session: &str, status: SessionStatus) -> NewEvent {
    NewEvent::now(
        session,
        Body::Status(StatusChange {
            status: status as i32,
            ..Default::default()
        }),
    )
}

fn text(event: &Event) -> &str {
    match &event.body {
        Some(Body::Message(m)) => &m.text,
        other => panic!("not a message: {other:?}"),
    }
}

async fn all(log: &EventLog) -> Vec<Event> {
    log.page(0, &Filter::default(), 10_000).await.expect("read")
}

#[tokio::test]
async fn appends_keep_order_number_each_session_and_skip_redeliveries() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let first = log
        .append(vec![
            message("a", "1@s", "m1", "one"),
            message("b", "2@s", "m1", "uno"),
            message("a", "1@s", "m2", "two"),
        ])
        .await
        .unwrap();
    assert_eq!(
        first,
        Appended {
            added: 3,
            duplicates: 0
        }
    );
    // WhatsApp redelivers m2 (same chat, sender, id) with a new one: m2 is kept once.
    let again = log
        .append(vec![
            message("a", "1@s", "m2", "two"),
            message("a", "1@s", "m3", "three"),
        ])
        .await
        .unwrap();
    assert_eq!(
        again,
        Appended {
            added: 1,
            duplicates: 1
        }
    );
    let events = all(&log).await;
    let seen: Vec<_> = events.iter().map(|e| (e.session_id.as_str(), e.seq, text(e))).collect();
    assert_eq!(
        seen,
        [("a", 1, "one"), ("b", 1, "uno"), ("a", 2, "two"), ("a", 3, "three")]
    );
    let cursors: Vec<_> = events.iter().map(|e| e.cursor.clone()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "cursors grow: {cursors:?}");
    assert_eq!(log.head(), parse_cursor(cursors.last().unwrap()).unwrap());

    // The same id in another chat is another message.
    let other_chat = log.append(vec![message("a", "9@s", "m1", "elsewhere")]).await.unwrap();
    assert_eq!(other_chat.added, 1);

    // Numbering and dedupe survive a reopen.
    drop(log);
    let log = open(&dir);
    let again = log
        .append(vec![
            message("a", "1@s", "m1", "one"),
            message("a", "1@s", "m4", "four"),
        ])
        .await
        .unwrap();
    assert_eq!(
        again,
        Appended {
            added: 1,
            duplicates: 1
        }
    );
    let last = all(&log).await.pop().unwrap();
    assert_eq!((last.seq, text(&last)), (5, "four"));
}

#[tokio::test]
async fn filters_select_sessions_and_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    log.append(vec![
        message("a", "1@s", "m1", "one"),
        status("b", SessionStatus::Connected),
        message("b", "2@s", "m1", "uno"),
    ])
    .await
    .unwrap();
    let only_b = Filter {
        sessions: vec!["b".into()],
        ..Filter::default()
    };
    let page = log.page(0, &only_b, 10).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    let b_messages = Filter {
        sessions: vec!["b".into()],
        kinds: vec![EventKind::Message],
        ..Filter::default()
    };
    let page = log.page(0, &b_messages, 10).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(text(&page[0]), "uno");
}

#[tokio::test]
async fn acks_keep_the_newest_position_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    assert_eq!(log.position("billing").await.unwrap(), None);
    assert_eq!(log.ack("billing", 7).await.unwrap(), Some(7));
    assert_eq!(
        log.ack("billing", 3).await.unwrap(),
        Some(7),
        "an older ack changes nothing"
    );
    assert_eq!(log.ack("billing", 9).await.unwrap(), Some(9));
    drop(log);
    let log = open(&dir);
    assert_eq!(log.position("billing").await.unwrap(), Some(9));
    assert_eq!(log.consumers().await.unwrap(), [("billing".to_owned(), 9)]);
}

#[tokio::test]
async fn deleting_a_session_leaves_only_its_final_status() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    log.append(vec![
        message("a", "1@s", "m1", "one"),
        message("b", "2@s", "m1", "uno"),
        message("a", "1@s", "m2", "two"),
    ])
    .await
    .unwrap();
    let bytes_before = log.bytes();
    let last = StatusChange {
        deleted: true,
        ..Default::default()
    };
    log.delete_session("a", last).await.unwrap();
    let events = all(&log).await;
    let seen: Vec<_> = events.iter().map(|e| (e.session_id.as_str(), e.seq)).collect();
    assert_eq!(
        seen,
        [("b", 1), ("a", 3)],
        "a's messages went, its final event follows them"
    );
    assert!(matches!(&events[1].body, Some(Body::Status(s)) if s.deleted));
    // Hidden at once; removed from disk by retention's chunks.
    assert_eq!(log.remove_deleted(100).await.unwrap(), 2);
    assert!(log.bytes() < bytes_before);
    // Created again, the id starts again at 1, and its old messages are not duplicates.
    log.append(vec![message("a", "1@s", "m1", "one again")]).await.unwrap();
    let last = all(&log).await.pop().unwrap();
    assert_eq!((last.seq, text(&last)), (1, "one again"));
}

#[tokio::test]
async fn trimming_goes_by_age_and_by_size_and_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let old = SystemTime::now() - Duration::from_secs(3600);
    let mut events: Vec<_> = (0..5).map(|i| message("a", "1@s", &format!("old{i}"), "x")).collect();
    for event in &mut events {
        event.time = old;
    }
    events.extend((0..5).map(|i| message("a", "1@s", &format!("new{i}"), "y")));
    log.append(events).await.unwrap();
    let cutoff = SystemTime::now() - Duration::from_secs(60);
    assert_eq!(log.trim(cutoff, 0, 100).await.unwrap(), 5);
    assert_eq!(log.trimmed_through(), 5);
    assert_eq!(log.oldest().await.unwrap().map(|(c, _)| c), Some(6));
    // By size: keep at most about two events' worth.
    let per_event = log.bytes() / 5;
    assert_eq!(log.trim(cutoff, per_event * 2, 100).await.unwrap(), 3);
    assert_eq!(log.trimmed_through(), 8);
    drop(log);
    let log = open(&dir);
    assert_eq!(log.trimmed_through(), 8, "what was trimmed is remembered");
    assert_eq!(all(&log).await.len(), 2);
}

#[tokio::test]
async fn a_follower_replays_then_follows_live_without_gap_or_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let first: Vec<_> = (0..600)
        .map(|i| message("a", "1@s", &format!("m{i}"), &i.to_string()))
        .collect();
    log.append(first).await.unwrap();
    let (tx, mut rx) = mpsc::channel(8);
    let (_running, stopping) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn(follow(log.clone(), 0, Filter::default(), tx, stopping));
    // Live appends race the replay.
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            for i in 600..1_000 {
                log.append(vec![message("a", "1@s", &format!("m{i}"), &i.to_string())])
                    .await
                    .unwrap();
            }
        })
    };
    let mut got = Vec::new();
    while got.len() < 1_000 {
        let event = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("the follower keeps up")
            .expect("open")
            .expect("no error");
        got.push(text(&event).parse::<u32>().unwrap());
    }
    writer.await.unwrap();
    assert_eq!(got, (0..1_000).collect::<Vec<_>>());
    follower.abort();
}

#[tokio::test]
async fn a_follower_behind_the_trim_is_told_the_oldest_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    log.append((0..4).map(|i| message("a", "1@s", &format!("m{i}"), "x")).collect())
        .await
        .unwrap();
    log.trim(SystemTime::now() + Duration::from_secs(1), 0, 2)
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::channel(8);
    let (_running, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(follow(log.clone(), 1, Filter::default(), tx, stopping));
    match rx.recv().await.expect("an answer") {
        Err(FollowEnd::Expired { oldest, head }) => assert_eq!((oldest, head), (Some(3), 4)),
        other => panic!("expected CURSOR_EXPIRED, got {other:?}"),
    }
}

#[tokio::test]
async fn a_receipt_delivered_again_is_logged_once_and_another_kind_or_sender_is_another() {
    use crate::proto::{Receipt, ReceiptKind};
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let receipt = |from: &str, kind: ReceiptKind| NewEvent {
        session_id: "a".into(),
        time: std::time::SystemTime::now(),
        body: Body::Receipt(Receipt {
            chat: "1@s".into(),
            from: from.into(),
            message_ids: vec!["m1".into(), "m2".into()],
            kind: kind as i32,
            at: None,
        }),
    };
    let first = log.append(vec![receipt("1@s", ReceiptKind::Delivered)]).await.unwrap();
    assert_eq!(first.added, 1);
    // After a crash between the commit and the ack, the same receipt comes again.
    let again = log
        .append(vec![
            receipt("1@s", ReceiptKind::Delivered),
            receipt("1@s", ReceiptKind::Read),
            receipt("2@s", ReceiptKind::Delivered),
        ])
        .await
        .unwrap();
    assert_eq!(
        again,
        Appended {
            added: 2,
            duplicates: 1
        }
    );
    // A receipt's key never meets a message's: a message from chat "r" is its own.
    let odd = log.append(vec![message("a", "r", "m1", "hi")]).await.unwrap();
    assert_eq!(odd.added, 1);
    assert_eq!(all(&log).await.len(), 4);
}
