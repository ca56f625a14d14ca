//! The protective pauses on the emulator: a lost connection pauses every campaign
//! of the session and the reconnect resumes them, but never one the operator
//! paused; a 463 fails its item for good, and while new chats are barred only the
//! items to new contacts wait (REACHOUT_RESTRICTED until the timelock ends); a
//! temp ban pauses until it ends; a logout from the phone pauses LOGGED_OUT.

use std::time::{Duration, SystemTime};

use wa_sessiond::proto::{
    campaign_service_client::CampaignServiceClient, CampaignItemStatus, CampaignState, ConnectSessionRequest,
    DisconnectSessionRequest, PauseCampaignRequest, PauseReason, RejectSendsRequest, SetAccountHealthRequest,
};

use crate::{
    common::{paired, Daemon},
    world::*,
};

const BOUND: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_pauses_and_the_reconnect_resumes_but_not_an_operators_pause() {
    let _timing = together().await;
    let dir = tempfile::tempdir().unwrap();
    let (daemon, client) = linked(dir.path(), "dc").await;
    let items = |tag: &str| (0..20).map(|i| item(&format!("{tag}{i}"), &number(1, i))).collect();
    client
        .clone()
        .create_campaign(create("dc-a", "dc", items("a"), pacing(100, 150)))
        .await
        .unwrap();
    client
        .clone()
        .create_campaign(create("dc-b", "dc", items("b"), pacing(100, 150)))
        .await
        .unwrap();
    wait_campaign(&client, "dc-a", BOUND, "a few sent", |c| counts(c).pending <= 17).await;

    let mut sessions = daemon.sessions().await;
    sessions
        .disconnect_session(DisconnectSessionRequest {
            session_id: "dc".into(),
        })
        .await
        .unwrap();
    for id in ["dc-a", "dc-b"] {
        wait_paused(&client, id, BOUND, PauseReason::SessionNotConnected).await;
    }
    let paused = client
        .clone()
        .pause_campaign(PauseCampaignRequest {
            campaign_id: "dc-b".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reason(&paused), PauseReason::Operator);
    let b_pending = counts(&paused).pending;

    sessions
        .connect_session(ConnectSessionRequest {
            session_id: "dc".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let done = wait_campaign(&client, "dc-a", BOUND, "dc-a DONE after the reconnect", |c| {
        state(c) == CampaignState::Done
    })
    .await;
    assert_eq!(counts(&done).pending, 0);
    let b = wait_campaign(&client, "dc-b", BOUND, "dc-b", |_| true).await;
    assert_eq!(
        (state(&b), reason(&b)),
        (CampaignState::Paused, PauseReason::Operator),
        "{b:?}"
    );
    assert_eq!(
        counts(&b).pending,
        b_pending,
        "an operator's pause is never undone by the daemon"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_463_fails_its_item_and_barred_new_chats_hold_only_new_contacts_until_the_timelock_ends() {
    let _timing = together().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    paired(&daemon, "rr").await;
    // Existing chats: the account messaged them before.
    let existing: Vec<String> = (0..4).map(|i| number(2, i)).collect();
    for to in &existing {
        existing_chat(&daemon, "rr", to).await;
    }
    // Items alternate: a new contact, an existing chat.
    let fresh: Vec<String> = (0..6).map(|i| number(3, i)).collect();
    let mut items = Vec::new();
    for i in 0..4 {
        items.push(item(&format!("n{i}"), &fresh[i]));
        items.push(item(&format!("e{i}"), &existing[i]));
    }
    items.push(item("n4", &fresh[4]));
    items.push(item("n5", &fresh[5]));
    let mut phone = daemon.phone().await;
    // The next send is refused 463, and new chats are barred for a while.
    phone
        .reject_sends(RejectSendsRequest {
            session_id: "rr".into(),
            code: 463,
            count: 1,
        })
        .await
        .unwrap();
    let timelock = Duration::from_secs(4);
    phone
        .set_account_health(SetAccountHealthRequest {
            session_id: "rr".into(),
            reachout_restricted_for: Some(timelock.try_into().unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
    let barred_until = SystemTime::now() + timelock;
    let client = CampaignServiceClient::new(daemon.channel().await);
    barred(&daemon, "rr").await;
    start(&client, "rr-c", "rr", items, pacing(50, 80)).await;

    let held = wait_paused(&client, "rr-c", BOUND, PauseReason::ReachoutRestricted).await;
    let resume_at = SystemTime::try_from(held.resume_at.expect("a resume_at")).unwrap();
    assert!(
        resume_at + Duration::from_secs(1) >= barred_until && resume_at <= barred_until + Duration::from_secs(3),
        "resume_at {resume_at:?} is the timelock's end {barred_until:?} (and a margin of 2 s)"
    );
    let items = all_items(&client, "rr-c").await;
    let failed: Vec<_> = items
        .iter()
        .filter(|i| i.status == CampaignItemStatus::Failed as i32)
        .collect();
    assert_eq!(failed.len(), 1, "the one 463 item FAILED: {items:?}");
    assert_eq!(failed[0].error_code, 463);
    let status_of = |id: &str| items.iter().find(|i| i.item_id == id).unwrap().status;
    for i in 0..4 {
        let id = format!("e{i}");
        assert_ne!(
            status_of(&id),
            CampaignItemStatus::Pending as i32,
            "{id} to an existing chat went on"
        );
    }
    let waiting = items
        .iter()
        .filter(|i| i.item_id.starts_with('n') && i.status == CampaignItemStatus::Pending as i32)
        .count();
    assert!(waiting >= 4, "new-contact items wait: {items:?}");

    let done = wait_campaign(&client, "rr-c", BOUND, "DONE after the timelock", |c| {
        state(c) == CampaignState::Done
    })
    .await;
    assert_eq!(counts(&done).failed, 1, "the 463 item was never retried: {done:?}");
    assert_eq!(counts(&done).pending, 0);
    let at_server = received(&mut phone, "rr").await;
    assert!(
        !at_server.iter().any(|m| m.message_id == failed[0].message_id),
        "the 463 item is not at the server: a retry would be another reach-out"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temp_ban_pauses_the_campaign_until_it_ends() {
    let _timing = together().await;
    let dir = tempfile::tempdir().unwrap();
    let (daemon, client) = linked(dir.path(), "tb").await;
    let items = (0..12).map(|i| item(&format!("i{i}"), &number(4, i))).collect();
    start(&client, "tb-c", "tb", items, pacing(100, 120)).await;
    wait_campaign(&client, "tb-c", BOUND, "a few sent", |c| counts(c).pending <= 9).await;
    let ban = Duration::from_secs(3);
    daemon
        .phone()
        .await
        .set_account_health(SetAccountHealthRequest {
            session_id: "tb".into(),
            temp_ban_reason: 104,
            temp_ban_for: Some(ban.try_into().unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
    let paused = wait_paused(&client, "tb-c", BOUND, PauseReason::TempBanned).await;
    assert!(paused.resume_at.is_some(), "a ban's pause names its end");
    let pending = counts(&paused).pending;
    assert!(pending > 0);
    let done = wait_campaign(&client, "tb-c", BOUND, "DONE after the ban", |c| {
        state(c) == CampaignState::Done
    })
    .await;
    assert_eq!(counts(&done).pending, 0);
    assert_eq!(counts(&done).failed, 0, "{done:?}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_from_the_phone_pauses_the_campaign_logged_out() {
    let _timing = together().await;
    let dir = tempfile::tempdir().unwrap();
    let (daemon, client) = linked(dir.path(), "lo").await;
    let items = (0..10).map(|i| item(&format!("i{i}"), &number(13, i))).collect();
    start(&client, "lo-c", "lo", items, pacing(100, 120)).await;
    wait_campaign(&client, "lo-c", BOUND, "a few sent", |c| counts(c).pending <= 8).await;
    let unlink = wa_sessiond::proto::LogoutFromPhoneRequest {
        session_id: "lo".into(),
    };
    daemon.phone().await.logout_from_phone(unlink).await.unwrap();
    let paused = wait_paused(&client, "lo-c", BOUND, PauseReason::LoggedOut).await;
    assert!(paused.resume_at.is_none(), "it needs linking again: no end known");
    assert!(counts(&paused).pending > 0);
    daemon.stop().await;
}
