//! `skip_unregistered` on the emulator: numbers are checked in lookups of 50 (120
//! numbers, 3 lookups), a failed lookup holds the item (PENDING, nothing sent)
//! until a later one answers, a skipped item takes no gap and counts against no
//! cap, the verdicts survive a kill -9 (no lookup after it), an existing chat is
//! never looked up, and a skip shows in WatchCampaign with no outbound event.

use std::time::Duration;

use tonic::transport::Channel;
use wa_sessiond::proto::{
    campaign_service_client::CampaignServiceClient, emulator_service_client::EmulatorServiceClient, CampaignItemStatus,
    CampaignState, PacingPolicy, SetRegisteredRequest,
};

use crate::{
    common::{process::Process, wait_for},
    world::*,
};

const BOUND: Duration = Duration::from_secs(30);

/// Marks `numbers` not on WhatsApp and fails the next `fail` checks; answers the
/// contact checks the server answered so far and the numbers in them.
async fn unregister(phone: &mut EmulatorServiceClient<Channel>, numbers: &[String], fail: u32) -> (u64, u64) {
    let request = SetRegisteredRequest {
        phone_numbers: numbers.to_vec(),
        registered: false,
        fail_next_checks: fail,
        ..Default::default()
    };
    let answer = phone.set_registered(request).await.unwrap().into_inner();
    (answer.contact_queries, answer.numbers_checked)
}

fn checking(min: u64, max: u64) -> PacingPolicy {
    PacingPolicy {
        skip_unregistered: true,
        ..pacing(min, max)
    }
}

/// One item to each of `numbers`, its id `prefix` and its position.
fn items_to(numbers: &[String], prefix: &str) -> Vec<wa_sessiond::proto::CampaignItem> {
    numbers
        .iter()
        .enumerate()
        .map(|(i, n)| item(&format!("{prefix}{i}"), n))
        .collect()
}

/// Waits until the campaign is DONE with `skipped` SKIPPED and the rest sent.
async fn done(client: &Campaigns, id: &str, skipped: u64) -> wa_sessiond::proto::Campaign {
    let what = format!("DONE with {skipped} skipped");
    let c = wait_campaign(client, id, BOUND, &what, |c| state(c) == CampaignState::Done).await;
    let n = counts(&c);
    assert_eq!((n.skipped, n.failed, n.pending), (skipped, 0, 0), "{c:?}");
    assert_eq!(
        n.sent + n.server_ack + n.delivered + n.read + n.skipped,
        n.total,
        "{c:?}"
    );
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_a_batch_is_checked_in_lookups_of_50() {
    let _timing = together().await;
    let dir = tempfile::tempdir().unwrap();
    let (daemon, client) = linked(dir.path(), "b50").await;
    let mut phone = daemon.phone().await;
    let numbers: Vec<String> = (0..120).map(|i| number(20, i)).collect();
    let gone: Vec<String> = numbers.iter().skip(5).step_by(12).cloned().collect();
    assert_eq!(gone.len(), 10);
    unregister(&mut phone, &gone, 0).await;
    let items = items_to(&numbers, "i");
    start(&client, "b50-c", "b50", items, checking(0, 0)).await;
    done(&client, "b50-c", 10).await;
    let skipped: Vec<String> = all_items(&client, "b50-c")
        .await
        .into_iter()
        .filter(|i| i.status == CampaignItemStatus::Skipped as i32)
        .map(|i| i.to)
        .collect();
    assert_eq!(skipped, gone.iter().map(|n| jid(n)).collect::<Vec<_>>());
    assert_eq!(
        unregister(&mut phone, &[], 0).await,
        (3, 120),
        "120 numbers in 3 lookups"
    );
    let scrape = daemon.scrape().await;
    assert_eq!(scrape.value("wa_sessiond_campaign_number_lookups_total", &[]), 3.0);
    let at_server = received(&mut phone, "b50").await;
    assert!(
        !at_server.iter().any(|m| skipped.contains(&m.to)),
        "nothing reached them"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_lookup_holds_the_items_unsent_until_a_later_one_answers() {
    let _timing = together().await;
    let dir = tempfile::tempdir().unwrap();
    let (daemon, client) = linked(dir.path(), "fl").await;
    let mut phone = daemon.phone().await;
    let numbers: Vec<String> = (0..3).map(|i| number(21, i)).collect();
    unregister(&mut phone, &numbers[1..2], 1).await;
    let items = items_to(&numbers, "i");
    start(&client, "fl-c", "fl", items, checking(0, 0)).await;
    wait_for(BOUND, "a failed lookup", || {
        let daemon = &daemon;
        async move {
            let scrape = daemon.scrape().await;
            (scrape.value("wa_sessiond_campaign_number_lookup_failures_total", &[]) >= 1.0).then_some(())
        }
    })
    .await;
    let held = wait_campaign(&client, "fl-c", BOUND, "readable", |_| true).await;
    assert_eq!(state(&held), CampaignState::Running, "{held:?}");
    assert_eq!(
        counts(&held).pending,
        3,
        "nothing sent unchecked, nothing skipped: {held:?}"
    );
    assert!(received(&mut phone, "fl").await.iter().all(|m| !is_text(m)));

    done(&client, "fl-c", 1).await;
    let scrape = daemon.scrape().await;
    assert_eq!(
        scrape.value("wa_sessiond_campaign_number_lookup_failures_total", &[]),
        1.0
    );
    assert_eq!(scrape.value("wa_sessiond_campaign_number_lookups_total", &[]), 1.0);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_item_takes_no_gap_and_counts_against_no_cap() {
    let _timing = alone().await;
    let dir = tempfile::tempdir().unwrap();
    let (daemon, client) = linked(dir.path(), "gap").await;
    let mut phone = daemon.phone().await;
    let numbers: Vec<String> = (0..6).map(|i| number(22, i)).collect();
    let gone: Vec<String> = numbers.iter().step_by(2).cloned().collect();
    unregister(&mut phone, &gone, 0).await;
    let items = items_to(&numbers, "i");
    let mut policy = checking(300, 300);
    policy.daily_limit = 3;
    start(&client, "gap-c", "gap", items, policy).await;
    done(&client, "gap-c", 3).await;
    let texts: Vec<_> = received(&mut phone, "gap").await.into_iter().filter(is_text).collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    for pair in texts.windows(2) {
        let gap = received_at(&pair[1]).duration_since(received_at(&pair[0])).unwrap();
        assert!(
            gap >= Duration::from_millis(280) && gap <= Duration::from_millis(400),
            "one gap between sends, none for the skipped item between them: {gap:?}"
        );
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verdicts_survive_a_kill_9_and_no_lookup_follows_it() {
    let _timing = together().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Process::start(dir.path(), &[]).await;
    daemon.link("k9s").await;
    let numbers: Vec<String> = (0..5).map(|i| number(23, i)).collect();
    unregister(&mut daemon.phone().await, &numbers[..2], 0).await;
    let client = CampaignServiceClient::new(daemon.channel().await);
    let items = items_to(&numbers, "a");
    start(&client, "k9s-a", "k9s", items, checking(0, 0)).await;
    done(&client, "k9s-a", 2).await;
    daemon.kill9();

    // The restarted emulator has forgotten which numbers are unregistered: only
    // the cache on disk can skip them.
    let daemon = Process::start(dir.path(), &[]).await;
    let client = CampaignServiceClient::new(daemon.channel().await);
    let items = items_to(&numbers[..2], "b");
    start(&client, "k9s-b", "k9s", items, checking(0, 0)).await;
    done(&client, "k9s-b", 2).await;
    let mut phone = daemon.phone().await;
    assert_eq!(
        unregister(&mut phone, &[], 0).await,
        (0, 0),
        "no lookup after the restart"
    );
    daemon.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_chat_is_never_looked_up() {
    let _timing = together().await;
    let dir = tempfile::tempdir().unwrap();
    let (daemon, client) = linked(dir.path(), "ex").await;
    let known = number(24, 0);
    existing_chat(&daemon, "ex", &known).await;
    let mut phone = daemon.phone().await;
    unregister(&mut phone, std::slice::from_ref(&known), 0).await;
    start(&client, "ex-c", "ex", vec![item("e", &known)], checking(0, 0)).await;
    done(&client, "ex-c", 0).await;
    assert_eq!(
        unregister(&mut phone, &[], 0).await,
        (0, 0),
        "no lookup for an existing chat"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skip_shows_in_watch_campaign_and_no_outbound_event_names_it() {
    use wa_sessiond::proto::{
        event::Body, event_service_client::EventServiceClient, EventKind, ResumeCampaignRequest, StreamEventsRequest,
        WatchCampaignRequest,
    };
    let _timing = together().await;
    let dir = tempfile::tempdir().unwrap();
    let (daemon, mut client) = linked(dir.path(), "ws").await;
    let numbers: Vec<String> = (0..3).map(|i| number(25, i)).collect();
    unregister(&mut daemon.phone().await, &numbers, 0).await;
    let items = items_to(&numbers, "s");
    let mut request = create("ws-c", "ws", items, checking(0, 0));
    request.start_paused = true;
    client.create_campaign(request).await.unwrap();
    let watch = WatchCampaignRequest {
        campaign_id: "ws-c".into(),
    };
    let mut stream = client.watch_campaign(watch).await.unwrap().into_inner();
    stream.message().await.unwrap().expect("the current state first");
    let resume = ResumeCampaignRequest {
        campaign_id: "ws-c".into(),
    };
    client.resume_campaign(resume).await.unwrap();
    let mut last = None;
    while let Some(campaign) = tokio::time::timeout(BOUND, stream.message())
        .await
        .expect("a change within the bound")
        .unwrap()
    {
        last = Some(campaign);
    }
    let last = last.expect("changes");
    assert_eq!(
        (state(&last), counts(&last).skipped),
        (CampaignState::Done, 3),
        "{last:?}"
    );

    // A direct send after it: every outbound event before its own names no item.
    let direct = number(25, 9);
    existing_chat(&daemon, "ws", &direct).await;
    let mut events = EventServiceClient::new(daemon.channel().await);
    let request = StreamEventsRequest {
        session_ids: vec!["ws".into()],
        from_beginning: true,
        kinds: vec![EventKind::Outbound as i32],
        ..Default::default()
    };
    let mut events = events.stream_events(request).await.unwrap().into_inner();
    loop {
        let event = crate::common::next(&mut events).await.expect("the stream goes on");
        let Some(Body::Outbound(update)) = event.body else {
            continue;
        };
        assert!(update.campaign_id.is_empty(), "no event for a skipped item: {update:?}");
        if update.chat == jid(&direct) {
            break;
        }
    }
    daemon.stop().await;
}
