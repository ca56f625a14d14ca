//! The account's health on both backends, one body per behaviour run on the
//! emulator and on the real backend against the fake (`health::emulator::NAME`,
//! `health::real::NAME`): with new chats barred, GetAccountHealth shows the
//! timelock and its end as WhatsApp pushed it, a send to a chat the account never
//! messaged is FAILED 463 (counted, an event after the timelock's) while a chat it
//! messaged is still SERVER_ACK; a temporary ban leaves the session DISCONNECTED
//! (TEMPORARY_BAN, with its reason) without one connect attempt until it ends,
//! then CONNECTED with the ban gone. And on the real backend alone: a timelock
//! set while the device was away (nothing pushed to it) is learned from the 463
//! by asking WhatsApp for it.

use std::time::SystemTime;

use fake_whatsapp::proto::SetAccountHealthRequest;
use wa_sessiond::proto::{AccountHealth, DisconnectReason, GetAccountHealthRequest};

use super::*;

/// A phone the account never messaged.
const STRANGER: &str = "15550009999@s.whatsapp.net";

/// How long new chats are barred in these bodies.
const TIMELOCK: Duration = Duration::from_secs(3600);

alike! {
    new_chats_barred_fail_463_show_the_timelocks_end_and_a_chat_messaged_before_is_still_server_acked => new_chats_barred;
    a_temporary_ban_disconnects_with_its_reason_and_reconnects_only_once_it_is_over => temporary_ban;
}

async fn health(daemon: &Daemon, id: &str) -> AccountHealth {
    let request = GetAccountHealthRequest { session_id: id.into() };
    let answer = daemon.sessions().await.get_account_health(request).await;
    answer.unwrap().into_inner()
}

fn until(t: &Option<prost_types::Timestamp>) -> SystemTime {
    SystemTime::try_from(t.expect("a time")).unwrap()
}

/// Sends `text` from session `id` to `to`: its id, once SENT.
async fn send_to(daemon: &Daemon, id: &str, to: &str, text: &str) -> String {
    let request = SendMessageRequest {
        session_id: id.into(),
        to: to.into(),
        content: Some(Content::Text(text.into())),
        ..Default::default()
    };
    let sent = tokio::time::timeout(STEP_BOUND, daemon.sessions().await.send_message(request))
        .await
        .expect("the send answers within the bound")
        .unwrap()
        .into_inner();
    assert_eq!(sent.status(), MessageStatus::Sent, "{sent:?}");
    sent.message_id
}

/// Waits (bounded) until GetAccountHealth shows new chats barred.
async fn shows_the_timelock(daemon: &Daemon, id: &str) -> AccountHealth {
    wait_for(STEP_BOUND, "the timelock in GetAccountHealth", || async {
        Some(health(daemon, id).await).filter(|h| h.reachout_restricted_until.is_some())
    })
    .await
}

/// Asserts a timelock set at `asked` for `TIMELOCK` ends when it should (to the
/// second: WhatsApp states it in whole seconds).
fn ends_on_time(shown: &AccountHealth, asked: SystemTime) {
    let ends = until(&shown.reachout_restricted_until);
    let earliest = asked + TIMELOCK - Duration::from_secs(1);
    let latest = SystemTime::now() + TIMELOCK + Duration::from_secs(1);
    assert!(ends >= earliest && ends <= latest, "{shown:?}");
}

async fn new_chats_barred(phone: &impl Phone) {
    let daemon = linked(phone, "hal").await;
    let before = send(&daemon, "hal", text("a chat the account started"), "").await;
    reaches(&daemon, "hal", &before, MessageStatus::ServerAck).await;
    assert_eq!(
        health(&daemon, "hal").await,
        AccountHealth::default(),
        "healthy at first"
    );

    let asked = SystemTime::now();
    phone
        .set_account_health(&daemon, "hal", OWNER, TIMELOCK, 0, Duration::ZERO)
        .await;
    let restricted = shows_the_timelock(&daemon, "hal").await;
    ends_on_time(&restricted, asked);

    let known = send(&daemon, "hal", text("still fine"), "").await;
    reaches(&daemon, "hal", &known, MessageStatus::ServerAck).await;
    let stranger = send_to(&daemon, "hal", STRANGER, "hi stranger").await;
    let failed = reaches(&daemon, "hal", &stranger, MessageStatus::Failed).await;
    assert_eq!(failed.error_code, 463);
    let after = health(&daemon, "hal").await;
    assert_eq!(after.nacks.get(&463), Some(&1), "{after:?}");
    assert_eq!(after.reachout_restricted_until, restricted.reachout_restricted_until);
    let received = phone.received(&daemon, "hal", OWNER).await;
    assert!(
        received.iter().all(|m| m.id != stranger),
        "a refused send is kept nowhere"
    );

    // Both changes are events: the timelock, then the nack.
    let request = StreamEventsRequest {
        session_ids: vec!["hal".into()],
        from_beginning: true,
        kinds: vec![EventKind::Health as i32],
        ..Default::default()
    };
    let mut events = EventServiceClient::new(daemon.channel().await);
    let mut stream = events.stream_events(request).await.unwrap().into_inner();
    let mut seen = Vec::new();
    for _ in 0..2 {
        match next(&mut stream).await.expect("the stream goes on").body {
            Some(Body::Health(h)) => seen.push(h),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen[0].reachout_restricted_until, restricted.reachout_restricted_until);
    assert!(seen[0].nacks.is_empty(), "{seen:?}");
    assert_eq!(seen[1].nacks.get(&463), Some(&1), "{seen:?}");
    daemon.stop().await;
}

async fn temporary_ban(phone: &impl Phone) {
    let daemon = linked(phone, "ida").await;
    let before = phone.connections().await.0;

    let ban_for = Duration::from_secs(3);
    phone
        .set_account_health(&daemon, "ida", OWNER, Duration::ZERO, 104, ban_for)
        .await;
    let banned = wait_until(&daemon, "ida", "DISCONNECTED, banned", |s| {
        status(s) == SessionStatus::Disconnected && s.disconnect_reason == DisconnectReason::TemporaryBan as i32
    })
    .await;
    assert!(banned.last_error.contains("reason 104"), "{}", banned.last_error);
    // The ban is logged beside the status change, not before it: wait for it.
    let shown = wait_for(STEP_BOUND, "the ban in GetAccountHealth", || async {
        health(&daemon, "ida").await.temp_ban
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
        phone.connections().await.0 != before
    })
    .await;
    wait_until(&daemon, "ida", "CONNECTED after the ban", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;
    assert!(SystemTime::now() >= ends, "not before the ban's end");
    assert_eq!(phone.connections().await.0, before + 1, "one attempt, after the ban");
    assert_eq!(health(&daemon, "ida").await.temp_ban, None, "lifted once online");
    daemon.stop().await;
}

/// On the real backend: the timelock is set while the daemon is down, so
/// WhatsApp pushes nothing to the device; the first 463 makes the backend ask for
/// it, and GetAccountHealth shows it with its end.
#[tokio::test]
async fn a_timelock_the_device_was_not_told_is_learned_from_the_463_by_asking_whatsapp() {
    let phone = FakePhone::start(None).await;
    let daemon = linked(&phone, "jon").await;
    daemon.stop().await;

    let asked = SystemTime::now();
    let restrict = SetAccountHealthRequest {
        phone_number: OWNER.into(),
        reachout_restricted_for: Some(TIMELOCK.try_into().unwrap()),
        ..Default::default()
    };
    let told = phone.fake.control.clone().set_account_health(restrict).await.unwrap();
    assert_eq!(told.into_inner().told, 0, "no device online to tell");
    let daemon = phone.daemon().await;
    wait_until(&daemon, "jon", "CONNECTED again", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;
    assert_eq!(
        health(&daemon, "jon").await.reachout_restricted_until,
        None,
        "not told yet"
    );

    let stranger = send_to(&daemon, "jon", STRANGER, "hi stranger").await;
    let failed = reaches(&daemon, "jon", &stranger, MessageStatus::Failed).await;
    assert_eq!(failed.error_code, 463);
    let learned = shows_the_timelock(&daemon, "jon").await;
    ends_on_time(&learned, asked);
    daemon.stop().await;
}
