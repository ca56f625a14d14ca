//! The byte cap is fair per session (issue 23 item 14): one session flooded past
//! the cap loses its own oldest events, another session's few events survive
//! retention, and a reader is told what it missed (the flooded session's readers
//! get CURSOR_EXPIRED, the other's do not; a reader starting from the oldest event
//! kept accepts the gap).

use std::time::Duration;

use super::{all, message, open, text};
use crate::events::{
    expired,
    retention::{self, Retention},
    Filter,
};

fn only(session: &str) -> Filter {
    Filter {
        sessions: vec![session.into()],
        ..Filter::default()
    }
}

#[tokio::test]
async fn a_session_flooded_past_the_cap_loses_its_own_oldest_events_and_the_others_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let few: Vec<_> = (1..=3)
        .map(|i| message("quiet", "1@s", &format!("q{i}"), "unconsumed"))
        .collect();
    log.append(few).await.unwrap();
    let per_event = log.bytes() / 3;
    let flood: Vec<_> = (1..=200)
        .map(|i| message("flooded", "9@s", &format!("f{i}"), "unconsumed"))
        .collect();
    log.append(flood).await.unwrap();

    let cap = per_event * 50;
    let retention = Retention {
        max_age: Duration::from_secs(3600),
        max_bytes: cap,
        every: Duration::from_secs(60),
    };
    let trimmed = retention::pass(&log, retention).await.unwrap();
    assert!(log.bytes() <= cap, "kept {} of a cap of {cap}", log.bytes());
    assert!(trimmed >= 150, "trimmed {trimmed}");

    let kept = all(&log).await;
    let quiet: Vec<_> = kept.iter().filter(|e| e.session_id == "quiet").map(text).collect();
    assert_eq!(quiet.len(), 3, "the quiet session keeps all it had");
    let flooded: Vec<_> = kept.iter().filter(|e| e.session_id == "flooded").collect();
    assert!(!flooded.is_empty() && flooded.len() < 50, "{} kept", flooded.len());
    assert_eq!(
        flooded.last().map(|e| e.seq),
        Some(200),
        "the flooded session keeps its newest events"
    );

    // Readers from the start: the quiet session's lost nothing, the flooded one's did.
    assert!(expired(&log, 0, &only("quiet")).await.unwrap().is_none());
    assert!(expired(&log, 0, &only("flooded")).await.unwrap().is_some());
    assert!(expired(&log, 0, &Filter::default()).await.unwrap().is_some());
    // From the oldest kept, the gap is accepted: every reader reads on.
    let mut everything = Filter::default();
    let start = log.oldest_start(&mut everything).await.unwrap();
    assert!(expired(&log, start, &everything).await.unwrap().is_none());
    let first = log.page(start, &everything, 1).await.unwrap();
    assert_eq!(first[0].session_id, "quiet", "the quiet session's events come first");

    // A later flood trims further: a reader that accepted the earlier gap is told.
    let more: Vec<_> = (201..=300)
        .map(|i| message("flooded", "9@s", &format!("f{i}"), "unconsumed"))
        .collect();
    log.append(more).await.unwrap();
    retention::pass(&log, retention).await.unwrap();
    assert!(expired(&log, start, &everything).await.unwrap().is_some());
    let quiet_left = all(&log).await.iter().filter(|e| e.session_id == "quiet").count();
    assert_eq!(quiet_left, 3);
    drop(log);

    // The bytes each session keeps are on disk: reopened, the next pass agrees.
    let log = open(&dir);
    assert_eq!(
        retention::pass(&log, retention).await.unwrap(),
        0,
        "nothing more to trim"
    );
}
