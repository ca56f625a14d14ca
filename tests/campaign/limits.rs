//! The daily cap counts a session's sends across its campaigns over a rolling
//! 24 hours: once reached, every campaign of the session is PAUSED DAILY_LIMIT
//! until the oldest counted send leaves the window. The new-contact cap holds only
//! the items to new contacts.

use std::time::{Duration, SystemTime};

use wa_sessiond::proto::{campaign_service_client::CampaignServiceClient, CampaignItemStatus, PauseReason};

use crate::{
    common::{paired, Daemon},
    world::*,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_cap_pauses_every_campaign_of_the_session_until_its_oldest_send_leaves_the_window() {
    let _timing = together().await;
    let dir = tempfile::tempdir().unwrap();
    let (daemon, client) = linked(dir.path(), "dl").await;
    let mut capped = pacing(0, 0);
    capped.daily_limit = 3;
    let started = SystemTime::now();
    let items = (0..5).map(|i| item(&format!("a{i}"), &number(10, i))).collect();
    start(&client, "dl-a", "dl", items, capped).await;
    let paused = wait_paused(&client, "dl-a", Duration::from_secs(30), PauseReason::DailyLimit).await;
    assert_eq!(counts(&paused).pending, 2, "three sent, then the cap: {paused:?}");
    let resume_at = SystemTime::try_from(paused.resume_at.expect("a resume_at")).unwrap();
    let day = Duration::from_secs(24 * 3600);
    assert!(
        resume_at >= started + day - Duration::from_secs(1) && resume_at <= SystemTime::now() + day,
        "the oldest counted send leaves the window a day after it went: {resume_at:?}"
    );

    let items = (5..7).map(|i| item(&format!("b{i}"), &number(10, i))).collect();
    start(&client, "dl-b", "dl", items, capped).await;
    // The other campaign is capped too.
    let other = wait_paused(&client, "dl-b", Duration::from_secs(30), PauseReason::DailyLimit).await;
    assert_eq!(
        counts(&other).pending,
        2,
        "the cap is the session's, across its campaigns"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_contact_cap_holds_new_contacts_while_existing_chats_go_on() {
    let _timing = together().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    paired(&daemon, "nc").await;
    let existing: Vec<String> = (0..2).map(|i| number(11, i)).collect();
    for to in &existing {
        existing_chat(&daemon, "nc", to).await;
    }
    let client = CampaignServiceClient::new(daemon.channel().await);
    let mut policy = pacing(0, 0);
    policy.new_contact_daily_limit = 2;
    let mut items: Vec<_> = (0..4).map(|i| item(&format!("n{i}"), &number(12, i))).collect();
    items.push(item("e0", &existing[0]));
    items.push(item("e1", &existing[1]));
    start(&client, "nc-c", "nc", items, policy).await;
    let held = wait_paused(&client, "nc-c", Duration::from_secs(30), PauseReason::DailyLimit).await;
    assert_eq!(counts(&held).pending, 2, "two new contacts sent, two wait: {held:?}");
    let items = all_items(&client, "nc-c").await;
    let pending: Vec<&str> = items
        .iter()
        .filter(|i| i.status == CampaignItemStatus::Pending as i32)
        .map(|i| i.item_id.as_str())
        .collect();
    assert_eq!(pending, ["n2", "n3"], "the existing chats went on: {items:?}");
    assert!(held.resume_at.is_some());
    daemon.stop().await;
}
