//! What WhatsApp does to a misbehaving account (`SetAccountHealth`), against the
//! unmodified whatsapp-rust client: with new chats barred, a message to a chat
//! the account never messaged is nacked 463 while known chats still work, the
//! timelock is pushed (`Event::MexNotification`) and the client's own
//! `fetch_reachout_timelock()` reads it; a ban fails the live connection and every
//! login with `Event::TemporaryBan` (reason and length) until it ends; zero
//! durations lift both; a rate limit (`RateLimit`) ends the stream with the
//! `<stream:error code="429"/>` the client reads as one, and closes the socket.
//! Loopback only; every wait is bounded.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use fake_whatsapp::proto::{CountConnectionsRequest, RateLimitRequest, SetAccountHealthRequest};
use whatsapp_rust::{types::events::Event, NodeFilter};

/// A phone the owner never messaged.
const STRANGER: &str = "15550009999";

fn seconds(secs: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: secs,
        nanos: 0,
    })
}

async fn set_health(fake: &Fake, request: SetAccountHealthRequest) -> u32 {
    let request = SetAccountHealthRequest {
        phone_number: OWNER.into(),
        ..request
    };
    fake.control
        .clone()
        .set_account_health(request)
        .await
        .unwrap()
        .into_inner()
        .told
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Sends `text` to `to` and waits for the server's verdict: the nack's code, or
/// `None` for an ack.
async fn verdict(device: &mut Device, to: &str, text: &str) -> Option<String> {
    let sent = bounded("a send", device.client().send_text(user(to), text)).await;
    let id = sent.expect("the device sends").message_id;
    device
        .next(|event| match event {
            Event::ServerAck(ack) if ack.id == id => Some(ack.error.clone()),
            _ => None,
        })
        .await
}

/// The next timelock the server pushes: whether it is on, and its end.
async fn pushed_timelock(device: &mut Device) -> (bool, Option<u64>) {
    let payload = device
        .next(|event| match event {
            Event::MexNotification(n) if n.op_name == "NotificationUserReachoutTimelockUpdate" => {
                Some(n.payload.clone())
            }
            _ => None,
        })
        .await;
    let lock = &payload["data"]["xwa2_notify_account_reachout_timelock"];
    let ends = lock["time_enforcement_ends"].as_str().map(|s| s.parse().unwrap());
    (lock["is_active"].as_bool().unwrap(), ends)
}

#[tokio::test]
async fn with_new_chats_barred_only_chats_never_messaged_are_nacked_463_and_the_timelock_is_pushed_and_answered() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::pair(&fake, dir.path(), None).await;
    assert_eq!(verdict(&mut device, FRIEND, "before").await, None);
    let lock = device.client().mex().fetch_reachout_timelock().await.unwrap();
    assert_eq!(lock.is_active, Some(false), "no timelock at first");

    let asked = unix_now();
    let restrict = SetAccountHealthRequest {
        reachout_restricted_for: seconds(3600),
        ..Default::default()
    };
    assert_eq!(set_health(&fake, restrict).await, 1, "the online device is told");
    let (active, ends) = pushed_timelock(&mut device).await;
    let ends = ends.expect("the timelock's end");
    assert!(active && (asked + 3599..=unix_now() + 3600).contains(&ends), "{ends}");
    let lock = device.client().mex().fetch_reachout_timelock().await.unwrap();
    assert_eq!(lock.is_active, Some(true));
    assert_eq!(lock.time_enforcement_ends, Some(ends.to_string()), "the same end");

    assert_eq!(verdict(&mut device, FRIEND, "a known chat").await, None);
    assert_eq!(
        verdict(&mut device, STRANGER, "a new chat").await.as_deref(),
        Some("463")
    );
    assert_eq!(verdict(&mut device, STRANGER, "again").await.as_deref(), Some("463"));

    set_health(&fake, SetAccountHealthRequest::default()).await;
    assert_eq!(pushed_timelock(&mut device).await, (false, None), "lifted");
    let lock = device.client().mex().fetch_reachout_timelock().await.unwrap();
    assert_eq!(lock.is_active, Some(false));
    assert_eq!(verdict(&mut device, STRANGER, "now allowed").await, None);
    device.stop().await;
    fake.running.stop().await;
}

/// The next ban the client reports: its reason and length.
async fn ban_of(device: &mut Device) -> (i32, Duration) {
    device
        .next(|event| match event {
            Event::TemporaryBan(ban) => Some((ban.code.code(), ban.expire.to_std().unwrap())),
            Event::Connected(_) => panic!("connected while banned"),
            _ => None,
        })
        .await
}

#[tokio::test]
async fn a_ban_fails_the_live_connection_and_every_login_until_it_ends_then_a_login_succeeds() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::pair(&fake, dir.path(), None).await;
    let ban = SetAccountHealthRequest {
        temp_ban_reason: 104,
        temp_ban_for: seconds(3),
        ..Default::default()
    };
    let banned_at = tokio::time::Instant::now();
    assert_eq!(set_health(&fake, ban).await, 1);
    assert_eq!(ban_of(&mut device).await, (104, Duration::from_secs(3)));
    device.stop().await;

    let mut again = Device::start_once(&fake, dir.path()).await;
    let (code, expire) = ban_of(&mut again).await;
    assert!(
        code == 104 && expire <= Duration::from_secs(3) && !expire.is_zero(),
        "{code} {expire:?}"
    );
    again.stop().await;

    tokio::time::sleep_until(banned_at + Duration::from_secs(3)).await;
    let mut after = Device::start_once(&fake, dir.path()).await;
    after.connected().await;
    let counted = fake
        .control
        .clone()
        .count_connections(CountConnectionsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(counted.open, 1, "only the last login stands");
    after.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn zero_durations_lift_a_ban_at_once() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let device = Device::pair(&fake, dir.path(), None).await;
    device.stop().await;
    let ban = SetAccountHealthRequest {
        temp_ban_for: seconds(3600),
        ..Default::default()
    };
    assert_eq!(set_health(&fake, ban).await, 0, "no device online to tell");
    let mut banned = Device::start_once(&fake, dir.path()).await;
    assert_eq!(ban_of(&mut banned).await.0, 101, "the default reason");
    banned.stop().await;

    set_health(&fake, SetAccountHealthRequest::default()).await;
    let mut lifted = Device::start_once(&fake, dir.path()).await;
    lifted.connected().await;
    lifted.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn a_rate_limit_ends_the_stream_with_a_429_the_client_reads_and_closes_the_socket() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::pair(&fake, dir.path(), None).await;
    let stanza = device
        .client()
        .wait_for_node(NodeFilter::tag("stream:error").attr("code", "429"));
    let request = RateLimitRequest {
        phone_number: OWNER.into(),
    };
    let limited = fake.control.clone().rate_limit(request).await.unwrap().into_inner();
    assert_eq!(limited.devices, 1, "the one open stream");
    bounded("the 429 at the client", stanza)
        .await
        .expect("a stream error 429");
    device
        .next(|event| matches!(event, Event::Disconnected(_)).then_some(()))
        .await;
    let refused = fake.control.clone().rate_limit(RateLimitRequest::default()).await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::InvalidArgument);
    device.stop().await;
    fake.running.stop().await;
}
