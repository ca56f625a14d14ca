//! Campaigns on both backends (`outbound::campaign::emulator::NAME`,
//! `outbound::campaign::real::NAME`): items reach the server under the ids the
//! campaign fixed for them and are server-acked; with new chats barred, the item
//! nacked 463 is FAILED for good, items to new contacts wait (REACHOUT_RESTRICTED
//! until the timelock ends) and then go; a temporary ban pauses the campaign
//! (TEMP_BANNED) until the session is back; a rate limit (stream error 429)
//! pauses it (RATE_LIMITED) for `--rate-limit-pause`, sending nothing meanwhile,
//! then it resumes by itself; with `skip_unregistered` the numbers not on WhatsApp
//! are SKIPPED (nothing reaches them, not even typing) after one lookup for the
//! whole batch, and a second campaign is answered from the cache.

use std::{
    collections::HashSet,
    time::{Duration, SystemTime},
};

use wa_sessiond::proto::{
    campaign_item, campaign_service_client::CampaignServiceClient, Campaign, CampaignItem, CampaignItemStatus,
    CampaignState, CreateCampaignRequest, GetAccountHealthRequest, GetCampaignRequest, ListCampaignItemsRequest,
    PacingPolicy, PauseReason,
};

use super::*;

mod lookup_limit;

alike! {
    a_campaigns_items_reach_the_server_under_their_ids_and_are_server_acked => end_to_end;
    a_463_and_barred_new_chats_hold_new_contacts_and_a_temp_ban_pauses_until_it_ends => protective_pauses;
    unregistered_numbers_are_skipped_after_one_lookup_and_the_verdicts_are_cached => skip_unregistered;
    a_429_pauses_rate_limited_for_the_rate_limit_pause_sends_nothing_meanwhile_then_resumes_to_done => rate_limited;
}

const BOUND: Duration = Duration::from_secs(30);

fn item(id: &str, to: &str) -> CampaignItem {
    CampaignItem {
        item_id: id.into(),
        to: to.into(),
        content: Some(campaign_item::Content::Text(format!("campaign item {id}"))),
        ..Default::default()
    }
}

fn request(id: &str, session: &str, items: Vec<CampaignItem>, min_ms: u64, max_ms: u64) -> CreateCampaignRequest {
    let ms = |v: u64| Some(Duration::from_millis(v).try_into().unwrap());
    CreateCampaignRequest {
        campaign_id: id.into(),
        session_id: session.into(),
        items,
        pacing: Some(PacingPolicy {
            min_interval: ms(min_ms),
            max_interval: ms(max_ms),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn campaign_until(daemon: &Daemon, id: &str, what: &str, pred: impl Fn(&Campaign) -> bool) -> Campaign {
    let client = CampaignServiceClient::new(daemon.channel().await);
    wait_for(BOUND, what, || {
        let mut client = client.clone();
        let pred = &pred;
        async move {
            let c = client
                .get_campaign(GetCampaignRequest { campaign_id: id.into() })
                .await
                .unwrap();
            Some(c.into_inner()).filter(|c| pred(c))
        }
    })
    .await
}

fn is(c: &Campaign, state: CampaignState, reason: PauseReason) -> bool {
    c.state == state as i32 && c.pause_reason == reason as i32
}

async fn items_of(daemon: &Daemon, id: &str) -> Vec<wa_sessiond::proto::CampaignItemResult> {
    let mut client = CampaignServiceClient::new(daemon.channel().await);
    let request = ListCampaignItemsRequest {
        campaign_id: id.into(),
        ..Default::default()
    };
    client.list_campaign_items(request).await.unwrap().into_inner().items
}

async fn end_to_end(phone: &impl Phone) {
    let daemon = linked(phone, "cam").await;
    let mut client = CampaignServiceClient::new(daemon.channel().await);
    let items = (0..4)
        .map(|i| item(&format!("i{i}"), &format!("1555888000{i}")))
        .collect();
    client
        .create_campaign(request("e2e", "cam", items, 0, 50))
        .await
        .unwrap();
    let done = campaign_until(&daemon, "e2e", "every item server-acked", |c| {
        c.counts
            .as_ref()
            .is_some_and(|n| n.server_ack + n.delivered + n.read == 4)
    })
    .await;
    assert_eq!(done.state, CampaignState::Done as i32, "{done:?}");
    let received = phone.received(&daemon, "cam", OWNER).await;
    for result in items_of(&daemon, "e2e").await {
        let at = received
            .iter()
            .filter(|m| m.id == result.message_id)
            .collect::<Vec<_>>();
        assert_eq!(at.len(), 1, "{} once at the server under its id", result.item_id);
        assert_eq!(at[0].text, format!("campaign item {}", result.item_id));
        assert_eq!(at[0].to, result.to);
    }
    daemon.stop().await;
}

async fn protective_pauses(phone: &impl Phone) {
    let daemon = linked(phone, "guard").await;
    // A chat the account started before: it stays open under the timelock.
    let known = send(&daemon, "guard", text("hello again"), "").await;
    reaches(&daemon, "guard", &known, MessageStatus::ServerAck).await;

    let timelock = Duration::from_secs(4);
    phone
        .set_account_health(&daemon, "guard", OWNER, timelock, 0, Duration::ZERO)
        .await;
    let barred_until = SystemTime::now() + timelock;
    let sessions = daemon.sessions().await;
    wait_for(STEP_BOUND, "the timelock known", || {
        let mut sessions = sessions.clone();
        async move {
            let request = GetAccountHealthRequest {
                session_id: "guard".into(),
            };
            let health = sessions.get_account_health(request).await.unwrap().into_inner();
            health.reachout_restricted_until.map(drop)
        }
    })
    .await;
    phone.reject_sends(&daemon, "guard", OWNER, 463, 1).await;
    let items = vec![
        item("new0", "15558880100"),
        item("old", FRIEND),
        item("new1", "15558880101"),
        item("old2", FRIEND),
    ];
    let mut client = CampaignServiceClient::new(daemon.channel().await);
    client
        .create_campaign(request("guarded", "guard", items, 50, 80))
        .await
        .unwrap();
    let held = campaign_until(&daemon, "guarded", "PAUSED REACHOUT_RESTRICTED", |c| {
        is(c, CampaignState::Paused, PauseReason::ReachoutRestricted)
    })
    .await;
    let resume_at = SystemTime::try_from(held.resume_at.expect("a resume_at")).unwrap();
    assert!(
        resume_at + Duration::from_secs(2) >= barred_until,
        "{resume_at:?} vs {barred_until:?}"
    );
    let results = items_of(&daemon, "guarded").await;
    let status = |id: &str| results.iter().find(|r| r.item_id == id).unwrap().clone();
    assert_eq!(
        status("old").status,
        CampaignItemStatus::Failed as i32,
        "the nacked item: {results:?}"
    );
    assert_eq!(status("old").error_code, 463);
    assert_ne!(
        status("old2").status,
        CampaignItemStatus::Pending as i32,
        "existing chats go on"
    );
    assert_eq!(
        status("new0").status,
        CampaignItemStatus::Pending as i32,
        "new contacts wait"
    );
    let done = campaign_until(&daemon, "guarded", "DONE after the timelock", |c| {
        c.state == CampaignState::Done as i32
    })
    .await;
    let after = items_of(&daemon, "guarded").await;
    assert_eq!(
        done.counts.as_ref().unwrap().failed,
        1,
        "the 463 item is never retried: {after:?}"
    );
    let received = phone.received(&daemon, "guard", OWNER).await;
    assert!(!received.iter().any(|m| m.id == status("old").message_id));
    assert!(received.iter().any(|m| m.id == status("new0").message_id));

    // A temporary ban pauses until it ends.
    let items = (0..6).map(|i| item(&format!("b{i}"), FRIEND)).collect();
    client
        .create_campaign(request("banned", "guard", items, 200, 250))
        .await
        .unwrap();
    campaign_until(&daemon, "banned", "one sent", |c| {
        c.counts.as_ref().unwrap().pending <= 5
    })
    .await;
    phone
        .set_account_health(&daemon, "guard", OWNER, Duration::ZERO, 104, Duration::from_secs(3))
        .await;
    let paused = campaign_until(&daemon, "banned", "PAUSED TEMP_BANNED", |c| {
        is(c, CampaignState::Paused, PauseReason::TempBanned)
    })
    .await;
    assert!(paused.resume_at.is_some());
    let done = campaign_until(&daemon, "banned", "DONE after the ban", |c| {
        c.state == CampaignState::Done as i32
    })
    .await;
    assert_eq!(done.counts.as_ref().unwrap().failed, 0, "{done:?}");
    daemon.stop().await;
}

/// A campaign of texts to `numbers` (digits) at interval 0, typing first, checking
/// numbers with `skip`.
fn checked(id: &str, session: &str, numbers: &[String], skip: bool) -> CreateCampaignRequest {
    let items = numbers.iter().map(|n| item(&format!("to{n}"), n)).collect();
    let mut request = request(id, session, items, 0, 0);
    let pacing = request.pacing.as_mut().unwrap();
    (pacing.skip_unregistered, pacing.typing) = (skip, true);
    request
}

fn jid(number: &str) -> String {
    format!("{number}@s.whatsapp.net")
}

async fn done(daemon: &Daemon, id: &str, skipped: u64, acked: u64) -> Campaign {
    let what = format!("{id}: {skipped} skipped, {acked} server-acked");
    let c = campaign_until(daemon, id, &what, |c| {
        let n = c.counts.as_ref().unwrap();
        n.skipped == skipped && n.server_ack + n.delivered + n.read == acked
    })
    .await;
    assert_eq!(c.state, CampaignState::Done as i32, "{c:?}");
    c
}

async fn skip_unregistered(phone: &impl Phone) {
    let daemon = linked(phone, "skp").await;
    let numbers: Vec<String> = (0..12).map(|i| format!("155577700{i:02}")).collect();
    let gone: Vec<String> = numbers.iter().skip(1).step_by(3).cloned().collect();
    assert_eq!(gone.len(), 4);
    let (queries, _) = phone.set_registered(&daemon, &gone, false).await;
    let mut client = CampaignServiceClient::new(daemon.channel().await);
    client
        .create_campaign(checked("skp-a", "skp", &numbers, true))
        .await
        .unwrap();
    done(&daemon, "skp-a", 4, 8).await;

    for result in items_of(&daemon, "skp-a").await {
        let number = result.item_id.trim_start_matches("to");
        if gone.iter().any(|g| g == number) {
            assert_eq!(result.status, CampaignItemStatus::Skipped as i32, "{result:?}");
            assert!(result.error.contains("not on WhatsApp"), "{result:?}");
        } else {
            assert_ne!(result.status, CampaignItemStatus::Skipped as i32, "{result:?}");
        }
    }
    let received = phone.received(&daemon, "skp", OWNER).await;
    for number in &numbers {
        let to: Vec<_> = received.iter().filter(|m| m.to == jid(number)).collect();
        let texts = to.iter().filter(|m| m.kind == Kind::Text).count();
        if gone.contains(number) {
            assert!(to.is_empty(), "nothing, not even typing, reaches {number}: {to:?}");
        } else {
            assert_eq!(texts, 1, "{number} got its message once: {to:?}");
        }
    }
    let (after, checked_numbers) = phone.set_registered(&daemon, &[], false).await;
    assert_eq!(after - queries, 1, "one lookup for the 12 numbers");
    let scrape = daemon.scrape().await;
    assert_eq!(scrape.value("wa_sessiond_campaign_number_lookups_total", &[]), 1.0);
    let checks = "wa_sessiond_campaign_number_checks_total";
    assert_eq!(scrape.value(checks, &[("result", "registered")]), 8.0);
    assert_eq!(scrape.value(checks, &[("result", "unregistered")]), 4.0);
    assert!(checked_numbers >= 12, "{checked_numbers}");

    // Three of the skipped and three that went (existing chats now): answered from
    // the cache and the log, no new lookup.
    let again: Vec<String> = gone[..3]
        .iter()
        .chain(&numbers[..1])
        .chain(&numbers[2..4])
        .cloned()
        .collect();
    client
        .create_campaign(checked("skp-b", "skp", &again, true))
        .await
        .unwrap();
    done(&daemon, "skp-b", 3, 3).await;
    let (later, _) = phone.set_registered(&daemon, &[], false).await;
    assert_eq!(later, after, "no new lookup: the verdicts are cached");
    let scrape = daemon.scrape().await;
    assert_eq!(scrape.value("wa_sessiond_campaign_number_lookups_total", &[]), 1.0);

    // The flag off: an unregistered number is sent to, unchecked.
    client
        .create_campaign(checked("skp-c", "skp", &gone[3..], false))
        .await
        .unwrap();
    done(&daemon, "skp-c", 0, 1).await;
    let received = phone.received(&daemon, "skp", OWNER).await;
    assert!(received.iter().any(|m| m.to == jid(&gone[3]) && m.kind == Kind::Text));
    let (last, _) = phone.set_registered(&daemon, &[], false).await;
    assert_eq!(last, after, "no lookup with the flag off");
    daemon.stop().await;
}

/// How far a stated resume time may stray from the one expected (stored in ms).
const RESUME_SLACK: Duration = Duration::from_millis(100);

/// How long before the stated resume the watch for sends stops.
const RESUME_MARGIN: Duration = Duration::from_millis(200);

/// Waits until campaign `id` of `session` is PAUSED RATE_LIMITED by a rate limit
/// that came after `before`, and asserts that it resumes `wait` after the limit
/// and that the account shows the same end. Answers the campaign and that end.
async fn rate_limited_for(
    daemon: &Daemon,
    session: &str,
    id: &str,
    before: SystemTime,
    wait: Duration,
) -> (Campaign, SystemTime) {
    let paused = campaign_until(daemon, id, "PAUSED RATE_LIMITED", |c| {
        is(c, CampaignState::Paused, PauseReason::RateLimited)
    })
    .await;
    let seen = SystemTime::now();
    let resume_at = SystemTime::try_from(paused.resume_at.expect("a resume_at")).unwrap();
    assert!(
        resume_at + RESUME_SLACK >= before + wait && resume_at <= seen + wait,
        "resume_at {resume_at:?}: {wait:?} after the rate limit, heard between {before:?} and {seen:?}"
    );
    let request = GetAccountHealthRequest {
        session_id: session.into(),
    };
    let health = daemon.sessions().await.get_account_health(request).await.unwrap();
    assert_eq!(
        health.into_inner().rate_limited_until,
        paused.resume_at,
        "the account shows the rate limit the campaign waits out"
    );
    (paused, resume_at)
}

async fn rate_limited(phone: &impl Phone) {
    let daemon = linked(phone, "limited").await;
    let items = (0..8).map(|i| item(&format!("r{i}"), FRIEND)).collect();
    let mut client = CampaignServiceClient::new(daemon.channel().await);
    client
        .create_campaign(request("paced", "limited", items, 100, 150))
        .await
        .unwrap();
    campaign_until(&daemon, "paced", "two sent", |c| {
        c.counts.as_ref().unwrap().pending <= 6
    })
    .await;

    let before = SystemTime::now();
    phone.rate_limit(&daemon, "limited", OWNER).await;
    let (paused, resume_at) = rate_limited_for(&daemon, "limited", "paced", before, RATE_LIMIT_PAUSE).await;
    let waiting: HashSet<String> = items_of(&daemon, "paced")
        .await
        .into_iter()
        .filter(|r| r.status == CampaignItemStatus::Pending as i32)
        .map(|r| format!("campaign item {}", r.item_id))
        .collect();
    assert!(!waiting.is_empty(), "items left to send: {paused:?}");
    let quiet = resume_at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(RESUME_MARGIN);
    stays_false(
        quiet,
        "an item waiting out the rate limit reached the server",
        || async {
            let received = phone.received(&daemon, "limited", OWNER).await;
            received.iter().any(|m| waiting.contains(&m.text))
        },
    )
    .await;

    let done = campaign_until(&daemon, "paced", "DONE after the rate limit", |c| {
        c.state == CampaignState::Done as i32
    })
    .await;
    assert_eq!(done.counts.as_ref().unwrap().failed, 0, "{done:?}");
    let received = phone.received(&daemon, "limited", OWNER).await;
    for result in items_of(&daemon, "paced").await {
        let at = received.iter().filter(|m| m.id == result.message_id).count();
        assert_eq!(at, 1, "{} once at the server under its id", result.item_id);
    }
    daemon.stop().await;
}
