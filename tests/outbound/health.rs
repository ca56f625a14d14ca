//! The account's health: new chats barred (463) with the timelock's end, and a
//! temporary ban that disconnects the session and lets it reconnect only once the
//! ban is over.

use std::time::SystemTime;

use wa_sessiond::proto::{
    AccountHealth, DisconnectReason, GetAccountHealthRequest, SessionStatus, SetAccountHealthRequest,
};

use super::*;

async fn health(client: &mut SessionServiceClient<Channel>, id: &str) -> AccountHealth {
    let request = GetAccountHealthRequest { session_id: id.into() };
    client.get_account_health(request).await.unwrap().into_inner()
}

fn until(t: &Option<prost_types::Timestamp>) -> SystemTime {
    SystemTime::try_from(t.expect("a time")).unwrap()
}

#[tokio::test]
async fn new_chats_barred_nack_463_show_the_timelocks_end_and_existing_chats_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    paired(&daemon, "alice").await;
    let old_chat = send(&mut client, text("alice", "+15550001111", "", "hello again")).await;
    wait_status(&daemon, "alice", &old_chat.message_id, MessageStatus::ServerAck).await;
    assert_eq!(
        health(&mut client, "alice").await,
        AccountHealth::default(),
        "healthy at first"
    );

    let asked = SystemTime::now();
    let restrict = SetAccountHealthRequest {
        session_id: "alice".into(),
        reachout_restricted_for: Some(prost_types::Duration {
            seconds: 3600,
            nanos: 0,
        }),
        ..Default::default()
    };
    daemon.phone().await.set_account_health(restrict).await.unwrap();
    let restricted = wait_for(Duration::from_secs(10), "the timelock in GetAccountHealth", || {
        let mut client = client.clone();
        async move { Some(health(&mut client, "alice").await).filter(|h| h.reachout_restricted_until.is_some()) }
    })
    .await;
    let ends = until(&restricted.reachout_restricted_until);
    assert!(ends > asked + Duration::from_secs(3590) && ends < SystemTime::now() + Duration::from_secs(3601));

    let known = send(&mut client, text("alice", "+15550001111", "", "still fine")).await;
    wait_status(&daemon, "alice", &known.message_id, MessageStatus::ServerAck).await;
    let stranger = send(&mut client, text("alice", "+15550009999", "", "hi stranger")).await;
    let failed = wait_status(&daemon, "alice", &stranger.message_id, MessageStatus::Failed).await;
    assert_eq!(failed.error_code, 463);
    let after = health(&mut client, "alice").await;
    assert_eq!(after.nacks.get(&463), Some(&1), "{after:?}");
    assert_eq!(after.reachout_restricted_until, restricted.reachout_restricted_until);

    // Both changes are events: the timelock, then the nack.
    let request = StreamEventsRequest {
        session_ids: vec!["alice".into()],
        from_beginning: true,
        kinds: vec![EventKind::Health as i32],
        ..Default::default()
    };
    let mut events = EventServiceClient::new(daemon.channel().await);
    let mut stream = events.stream_events(request).await.unwrap().into_inner();
    let mut seen = Vec::new();
    for _ in 0..2 {
        match next(&mut stream).await.unwrap().body {
            Some(Body::Health(h)) => seen.push(h),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        seen[0].reachout_restricted_until.is_some() && seen[0].nacks.is_empty(),
        "{seen:?}"
    );
    assert_eq!(seen[1].nacks.get(&463), Some(&1));
    daemon.stop().await;
}

#[tokio::test]
async fn a_temporary_ban_disconnects_with_its_reason_and_reconnects_only_once_it_is_over() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    paired(&daemon, "alice").await;
    let before = daemon.connections("alice").await;

    let ban = SetAccountHealthRequest {
        session_id: "alice".into(),
        temp_ban_reason: 104,
        temp_ban_for: Some(prost_types::Duration { seconds: 3, nanos: 0 }),
        ..Default::default()
    };
    daemon.phone().await.set_account_health(ban).await.unwrap();
    let banned = wait_session(&mut client, "alice", "DISCONNECTED, banned", |s| {
        status(s) == SessionStatus::Disconnected && s.disconnect_reason == DisconnectReason::TemporaryBan as i32
    })
    .await;
    assert!(banned.last_error.contains("reason 104"), "{}", banned.last_error);
    // The ban is logged beside the status change, not before it: wait for it.
    let shown = wait_for(Duration::from_secs(10), "the ban in GetAccountHealth", || {
        let mut client = client.clone();
        async move { health(&mut client, "alice").await.temp_ban }
    })
    .await;
    assert_eq!(shown.reason_code, 104);
    let ends = until(&shown.until);

    // Not one connect attempt while the ban lasts.
    let quiet = ends
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(Duration::from_millis(300));
    stays_false(quiet, "a connect attempt during the ban", || async {
        daemon.connections("alice").await != before
    })
    .await;
    wait_session(&mut client, "alice", "CONNECTED after the ban", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;
    assert!(SystemTime::now() >= ends, "not before the ban's end");
    assert_eq!(
        daemon.connections("alice").await,
        before + 1,
        "one attempt, after the ban"
    );
    assert_eq!(health(&mut client, "alice").await.temp_ban, None, "lifted once online");
    daemon.stop().await;
}
