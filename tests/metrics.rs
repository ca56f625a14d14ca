//! `/metrics` on a real scrape of the admin port, after the flows that move each
//! figure the README lists: a dropped connection (reconnects by reason), a crashed
//! session (restarts), a logout asked for over the API (logouts by origin), watch
//! streams opened and closed (watchers), the event log growing old, and a call its
//! client gave up on (`Canceled`).

mod common;

use std::time::Duration;

use common::*;
use wa_sessiond::proto::{
    CrashSessionRequest, DropConnectionRequest, LogoutSessionRequest, SessionStatus, WatchSessionRequest,
};

const BOUND: Duration = Duration::from_secs(20);

/// Waits until a scrape satisfies `check`, returning it.
async fn scrape_until(daemon: &Daemon, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
    wait_for(BOUND, what, || async {
        let scrape = daemon.scrape().await;
        check(&scrape).then_some(scrape)
    })
    .await
}

fn reconnects(scrape: &Scrape, reason: &str) -> f64 {
    scrape.value("wa_sessiond_reconnects_total", &[("reason", reason)])
}

fn logouts(scrape: &Scrape, origin: &str) -> f64 {
    scrape.value("wa_sessiond_logouts_total", &[("origin", origin)])
}

fn restarts(scrape: &Scrape) -> f64 {
    scrape.value("wa_sessiond_session_restarts_total", &[])
}

#[tokio::test]
async fn a_dropped_connection_a_crash_and_a_requested_logout_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    paired(&daemon, "alice").await;
    paired(&daemon, "bob").await;
    let before = daemon.scrape().await;
    assert_eq!(reconnects(&before, "CONNECTION_LOST"), 0.0);
    assert_eq!(restarts(&before), 0.0);
    assert_eq!(logouts(&before, "request"), 0.0);

    // The socket drops: RECONNECTING, counted by its reason, then back.
    let drop = DropConnectionRequest {
        session_id: "alice".into(),
    };
    daemon.phone().await.drop_connection(drop).await.unwrap();
    let dropped = scrape_until(&daemon, "a reconnect counted", |s| {
        reconnects(s, "CONNECTION_LOST") == 1.0
    })
    .await;
    assert_eq!(restarts(&dropped), 0.0, "a reconnect is not a restart");
    let mut client = daemon.sessions().await;
    wait_session(&mut client, "alice", "alice back", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;

    // The session's actor crashes: the registry starts it again, once.
    let crash = CrashSessionRequest {
        session_id: "bob".into(),
        panic: false,
    };
    daemon.phone().await.crash_session(crash).await.unwrap();
    let restarted = scrape_until(&daemon, "a restart counted", |s| restarts(s) == 1.0).await;
    assert_eq!(restarted.value("wa_sessiond_session_crashes_total", &[]), 1.0);
    wait_session(&mut client, "bob", "bob back", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;

    // A logout asked for over the API: origin "request", not "phone".
    let logout = LogoutSessionRequest {
        session_id: "alice".into(),
    };
    client.logout_session(logout).await.unwrap();
    let logged_out = scrape_until(&daemon, "a requested logout counted", |s| logouts(s, "request") == 1.0).await;
    assert_eq!(logouts(&logged_out, "phone"), 0.0);
    assert_eq!(
        reconnects(&logged_out, "CONNECTION_LOST"),
        1.0,
        "no reconnect after a logout"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn watchers_follow_open_streams_and_a_call_the_client_left_is_canceled() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |c| c.qr_timeout = Duration::from_secs(60)).await;
    let mut client = daemon.sessions().await;
    client.create_session(create("watched")).await.unwrap();
    assert_eq!(daemon.scrape().await.value("wa_sessiond_watchers", &[]), 0.0);

    let watch = || WatchSessionRequest {
        session_id: "watched".into(),
        ..Default::default()
    };
    let mut first = client.watch_session(watch()).await.unwrap().into_inner();
    let mut second = client.watch_session(watch()).await.unwrap().into_inner();
    next(&mut first).await.expect("the current state first");
    next(&mut second).await.expect("the current state first");
    scrape_until(&daemon, "two watchers", |s| s.value("wa_sessiond_watchers", &[]) == 2.0).await;
    drop(first);
    scrape_until(&daemon, "one watcher left", |s| {
        s.value("wa_sessiond_watchers", &[]) == 1.0
    })
    .await;
    drop(second);
    scrape_until(&daemon, "no watcher left", |s| {
        s.value("wa_sessiond_watchers", &[]) == 0.0
    })
    .await;

    // A create whose first code never comes; its caller leaves while it waits.
    daemon.emulator.set_config(|c| c.step_delay = Duration::from_secs(3600));
    let waiting = {
        let mut client = client.clone();
        tokio::spawn(async move { client.create_session(create("abandoned")).await })
    };
    wait_for(BOUND, "the create in flight", || async {
        (daemon.connections("abandoned").await == 1).then_some(())
    })
    .await;
    waiting.abort();
    let canceled = [("grpc_method", "CreateSession"), ("grpc_code", "Canceled")];
    scrape_until(&daemon, "the abandoned call counted as Canceled", |s| {
        s.value("grpc_server_handled_total", &canceled) == 1.0
    })
    .await;
    daemon.stop().await;
}

#[tokio::test]
async fn the_event_logs_oldest_age_grows_while_its_events_stay() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |c| {
        c.events.event_trim_interval = Duration::from_millis(100);
    })
    .await;
    let age = |s: &Scrape| s.value("wa_sessiond_events_oldest_age_seconds", &[]);
    assert_eq!(age(&daemon.scrape().await), 0.0, "an empty log has no age");
    // Pairing logs status events; two seconds later the oldest is two seconds old.
    paired(&daemon, "carol").await;
    scrape_until(&daemon, "the oldest event's age to reach 2 s", |s| age(s) >= 2.0).await;
    daemon.stop().await;
}
