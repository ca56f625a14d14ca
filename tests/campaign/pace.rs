//! The pace: per session, in parallel, within the policy's gaps at the server; a
//! direct send is never held behind a gap; typing shows before each item.

use std::time::{Duration, Instant, SystemTime};

use wa_sessiond::proto::{
    campaign_service_client::CampaignServiceClient, send_message_request::Content, CampaignState, ChatState,
    EmulatedKind, SendMessageRequest,
};

use crate::{
    common::{paired, Daemon},
    world::*,
};

const ITEMS: usize = 30;
const MIN: u64 = 300;
const MAX: u64 = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sessions_pace_their_campaigns_in_parallel_within_the_gaps_and_direct_sends_are_not_delayed() {
    let _timing = alone().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let sessions = ["pa", "pb", "pc"];
    for id in sessions {
        paired(&daemon, id).await;
    }
    let client = CampaignServiceClient::new(daemon.channel().await);
    for (s, id) in sessions.iter().enumerate() {
        let items = (0..ITEMS).map(|i| item(&format!("i{i}"), &number(s, i))).collect();
        let request = create(&format!("c-{id}"), id, items, pacing(MIN, MAX));
        let created = client.clone().create_campaign(request).await.unwrap().into_inner();
        assert_eq!(counts(&created).total, ITEMS as u64);
        assert_eq!(state(&created), CampaignState::Running);
    }

    // Mid-campaign, a direct send on a session is answered at once.
    wait_campaign(&client, "c-pa", Duration::from_secs(30), "a few items sent", |c| {
        counts(c).pending <= (ITEMS - 5) as u64
    })
    .await;
    let mut direct = daemon.sessions().await;
    let started = Instant::now();
    direct
        .send_message(SendMessageRequest {
            session_id: "pa".into(),
            to: "+15559990000".into(),
            content: Some(Content::Text("direct".into())),
            ..Default::default()
        })
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(MIN),
        "a direct send took {took:?}: it waited behind the campaign's gap"
    );

    let mut windows = Vec::new();
    let mut phone = daemon.phone().await;
    for id in sessions {
        let done = wait_campaign(&client, &format!("c-{id}"), Duration::from_secs(60), "DONE", |c| {
            state(c) == CampaignState::Done
        })
        .await;
        assert_eq!(counts(&done).pending, 0);
        assert_eq!(
            counts(&done).server_ack + counts(&done).delivered,
            ITEMS as u64,
            "{done:?}"
        );
        let ids: std::collections::HashSet<String> = all_items(&client, &format!("c-{id}"))
            .await
            .into_iter()
            .map(|i| i.message_id)
            .collect();
        let mut times: Vec<SystemTime> = received(&mut phone, id)
            .await
            .iter()
            .filter(|m| is_text(m) && ids.contains(&m.message_id))
            .map(received_at)
            .collect();
        times.sort();
        assert_eq!(times.len(), ITEMS, "each item once at the server");
        for pair in times.windows(2) {
            let gap = pair[1].duration_since(pair[0]).unwrap();
            assert!(
                gap >= Duration::from_millis(MIN - 20) && gap <= Duration::from_millis(MAX + 100),
                "session {id}: a gap of {gap:?} is outside [{}ms, {}ms]",
                MIN - 20,
                MAX + 100
            );
        }
        windows.push((times[0], *times.last().unwrap()));
    }
    let latest_start = windows.iter().map(|w| w.0).max().unwrap();
    let earliest_end = windows.iter().map(|w| w.1).min().unwrap();
    assert!(
        latest_start < earliest_end,
        "the sessions sent one after another, not in parallel: {windows:?}"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_shows_to_each_chat_before_its_item() {
    let _timing = together().await;
    let dir = tempfile::tempdir().unwrap();
    let (daemon, client) = linked(dir.path(), "typer").await;
    let items: Vec<_> = (0..4).map(|i| item(&format!("t{i}"), &number(7, i))).collect();
    let mut policy = pacing(200, 300);
    policy.typing = true;
    start(&client, "typed", "typer", items, policy).await;
    wait_campaign(&client, "typed", Duration::from_secs(30), "DONE", |c| {
        state(c) == CampaignState::Done
    })
    .await;
    let seen = received(&mut daemon.phone().await, "typer").await;
    for i in 0..4 {
        let chat = jid(&number(7, i));
        let message = seen
            .iter()
            .position(|m| is_text(m) && m.to == chat)
            .unwrap_or_else(|| panic!("item {i} reached the server: {seen:?}"));
        let typing = seen.iter().position(|m| {
            m.kind == EmulatedKind::ChatState as i32 && m.to == chat && m.state == ChatState::Composing as i32
        });
        assert!(
            typing.is_some_and(|t| t < message),
            "COMPOSING reached {chat} before its item ({typing:?} vs {message})"
        );
        let shown = received_at(&seen[typing.unwrap()]);
        assert!(received_at(&seen[message]) >= shown, "typing came first in time too");
    }
    daemon.stop().await;
}
