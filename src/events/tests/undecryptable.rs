//! An undecryptable message's placeholder and the message itself, recovered
//! later: the placeholder is logged before the message (both kept), never twice,
//! and not at all once the message is in the log; the recovered message and a
//! later ordinary delivery of the same id are one message.

use super::*;
use crate::proto::MessageKind;

fn placeholder(id: &str) -> NewEvent {
    let mut event = message("a", "1@s", id, "");
    if let Body::Message(m) = &mut event.body {
        m.kind = MessageKind::Undecryptable as i32;
    }
    event
}

fn recovered(id: &str, text: &str) -> NewEvent {
    let mut event = message("a", "1@s", id, text);
    if let Body::Message(m) = &mut event.body {
        m.kind = MessageKind::Text as i32;
        m.recovered = true;
    }
    event
}

fn kinds(events: &[Event]) -> Vec<(String, i32, bool)> {
    events
        .iter()
        .map(|event| match &event.body {
            Some(Body::Message(m)) => (m.id.clone(), m.kind, m.recovered),
            other => panic!("not a message: {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn a_placeholder_then_its_recovered_message_are_both_kept_and_redeliveries_of_either_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    assert_eq!(log.append(vec![placeholder("m1")]).await.unwrap().added, 1);
    assert_eq!(
        log.append(vec![placeholder("m1")]).await.unwrap().duplicates,
        1,
        "a placeholder once"
    );
    assert_eq!(log.append(vec![recovered("m1", "hi")]).await.unwrap().added, 1);
    let normal = log.append(vec![message("a", "1@s", "m1", "hi")]).await.unwrap();
    assert_eq!(
        normal.duplicates, 1,
        "the same id delivered normally later is the same message"
    );
    assert_eq!(log.append(vec![placeholder("m1")]).await.unwrap().duplicates, 1);

    let undecryptable = MessageKind::Undecryptable as i32;
    let text = MessageKind::Text as i32;
    assert_eq!(
        kinds(&all(&log).await),
        [("m1".to_owned(), undecryptable, false), ("m1".to_owned(), text, true)]
    );
}

#[tokio::test]
async fn no_placeholder_is_logged_for_a_message_already_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    log.append(vec![message("a", "1@s", "m2", "hi")]).await.unwrap();
    let late = log.append(vec![placeholder("m2")]).await.unwrap();
    assert_eq!((late.added, late.duplicates), (0, 1), "nothing is missing");
    assert_eq!(all(&log).await.len(), 1);
}
