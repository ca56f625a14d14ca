//! A resumed feed, as the browser asks for it (`Last-Event-ID`) and as the page
//! reopens it (`?last_event_id=`), answers 200 `text/event-stream` (so EventSource
//! takes it and keeps reconnecting; anything else would make it give up) and is
//! live: it sends nothing the page has, then every newer state.

use std::time::Duration;

use wa_sessiond::proto::RefreshQrRequest;

use super::{
    http::{self, Feed},
    link_daemon::{LinkDaemon, SHOWN},
};

/// The revisions (SSE ids) of the state events in a feed's body, in order.
fn state_ids(body: &str) -> Vec<u64> {
    body.split("event: state")
        .skip(1)
        .filter_map(|event| event.lines().find_map(|line| line.strip_prefix("id: ")))
        .map(|id| id.trim().parse().unwrap())
        .collect()
}

/// What a browser's EventSource needs to keep a feed.
fn is_an_event_stream(feed: &Feed, how: &str) {
    let answer = &feed.answer;
    assert_eq!(answer.status, 200, "{how}: {}", answer.body);
    assert_eq!(answer.header("content-type"), Some("text/event-stream"), "{how}");
    assert_eq!(answer.header("cache-control"), Some("no-store"), "{how}");
}

#[tokio::test]
async fn a_resumed_feed_answers_200_text_event_stream_then_only_newer_states() {
    let daemon = LinkDaemon::start(|c| {
        c.emulator_first_qr_ttl = Duration::from_secs(60);
        c.emulator_next_qr_ttl = Duration::from_secs(60);
    })
    .await;
    let url = daemon.session_with_link("uma", "").await;
    let events = format!("{url}/events");
    let mut fresh = http::open_feed(&events, &[]).await;
    is_an_event_stream(&fresh, "a fresh feed");
    fresh
        .read_until(SHOWN, "the current state", |body| !state_ids(body).is_empty())
        .await;
    let seen = state_ids(&fresh.answer.body)[0];
    drop(fresh);

    let seen_text = seen.to_string();
    let mut by_header = http::open_feed(&events, &[("Last-Event-ID", seen_text.as_str())]).await;
    is_an_event_stream(&by_header, "resumed by the browser (Last-Event-ID)");
    let mut by_query = http::open_feed(&format!("{events}?last_event_id={seen}"), &[]).await;
    is_an_event_stream(&by_query, "reopened by the page (?last_event_id=)");

    // A new code: a newer state, which both resumed feeds send, and nothing older.
    let refresh = RefreshQrRequest {
        session_id: "uma".into(),
        ..Default::default()
    };
    daemon.daemon.sessions().await.refresh_qr(refresh).await.unwrap();
    for (feed, how) in [(&mut by_header, "Last-Event-ID"), (&mut by_query, "?last_event_id=")] {
        feed.read_until(SHOWN, "a newer state", |body| !state_ids(body).is_empty())
            .await;
        let ids = state_ids(&feed.answer.body);
        assert!(
            ids.iter().all(|id| *id > seen),
            "{how}: only states after {seen}, got {ids:?}"
        );
    }
    drop((by_header, by_query));
    daemon.daemon.stop().await;
}
