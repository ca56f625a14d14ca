//! The pacer's rules on tokio's paused clock: gaps within the policy measured from
//! the previous send, typing within the gap, round robin, the pauses a session's
//! state and health cause, and when a daily cap frees a place.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use rand::{rngs::StdRng, SeedableRng};
use tokio::time::Instant;

use super::*;
use crate::{
    events::campaign::Counts,
    proto::{AccountHealth, TempBan},
};

fn pacing(min_ms: u64, max_ms: u64) -> Pacing {
    Pacing {
        min_ms,
        max_ms,
        daily_limit: 0,
        new_contact_daily_limit: 0,
        typing: false,
        skip_unregistered: false,
    }
}

fn campaign(id: &str, state: CampaignState, reason: PauseReason, resume_at: Option<SystemTime>) -> CampaignRow {
    CampaignRow {
        n: 1,
        id: id.into(),
        session_id: "s".into(),
        state,
        pause_reason: reason,
        resume_at,
        pacing: pacing(0, 0),
        labels: BTreeMap::new(),
        fingerprint: String::new(),
        created_at: SystemTime::UNIX_EPOCH,
        counts: Counts::default(),
    }
}

#[tokio::test(start_paused = true)]
async fn each_gap_is_uniform_in_the_policy_and_measured_from_the_previous_send() {
    let mut rng = StdRng::seed_from_u64(7);
    let policy = pacing(300, 500);
    let gaps: Vec<Duration> = (0..1000).map(|_| gap(&policy, &mut rng)).collect();
    assert!(gaps
        .iter()
        .all(|g| *g >= Duration::from_millis(300) && *g <= Duration::from_millis(500)));
    let below_mid = gaps.iter().filter(|g| **g < Duration::from_millis(400)).count();
    assert!(
        (400..600).contains(&below_mid),
        "uniform, not clustered: {below_mid} of 1000 below the middle"
    );
    assert_eq!(gap(&pacing(0, 0), &mut rng), Duration::ZERO);

    let first = Instant::now();
    assert_eq!(
        due(None, Duration::from_millis(400), first),
        (first, false),
        "the first send goes at once"
    );
    tokio::time::advance(Duration::from_millis(100)).await;
    let (at, waits) = due(Some(first), Duration::from_millis(400), Instant::now());
    assert_eq!((at - first, waits), (Duration::from_millis(400), true));
    tokio::time::advance(Duration::from_secs(5)).await;
    let now = Instant::now();
    assert_eq!(
        due(Some(first), Duration::from_millis(400), now),
        (now, false),
        "after a pause: at once"
    );
}

#[test]
fn typing_grows_with_the_text_within_its_cap_and_the_gap() {
    let long = "x".repeat(1000);
    assert_eq!(typing("hi", Duration::from_secs(60)), Duration::from_millis(1080));
    assert_eq!(typing(&long, Duration::from_secs(60)), Duration::from_secs(8));
    assert_eq!(typing(&long, Duration::from_millis(300)), Duration::from_millis(300));
}

#[test]
fn campaigns_take_turns_by_id() {
    let running = ["a", "b", "c"].map(|id| campaign(id, CampaignState::Running, PauseReason::Unspecified, None));
    let order = |last: &str| {
        round_robin(&running, last)
            .iter()
            .map(|c| c.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(order(""), ["a", "b", "c"]);
    assert_eq!(order("a"), ["b", "c", "a"]);
    assert_eq!(order("c"), ["a", "b", "c"]);
    assert_eq!(
        order("bb"),
        ["c", "a", "b"],
        "a campaign that went away: the next by id"
    );
}

#[test]
fn a_ban_a_logout_a_rate_limit_and_a_lost_connection_pause_the_session() {
    let now = SystemTime::now();
    let later = now + Duration::from_secs(60);
    let healthy = AccountHealth::default();
    assert_eq!(session_pause(Status::Connected, &healthy, now), None);
    assert_eq!(
        session_pause(Status::Reconnecting, &healthy, now),
        Some(Auto::Pause(PauseReason::SessionNotConnected, None))
    );
    assert_eq!(
        session_pause(Status::LoggedOut, &healthy, now),
        Some(Auto::Pause(PauseReason::LoggedOut, None))
    );
    let banned = AccountHealth {
        temp_ban: Some(TempBan {
            reason_code: 101,
            until: Some(later.into()),
        }),
        ..Default::default()
    };
    assert_eq!(
        session_pause(Status::Disconnected, &banned, now),
        Some(Auto::Pause(PauseReason::TempBanned, Some(later))),
        "a ban names its end, though the session is not connected"
    );
    let limited = AccountHealth {
        rate_limited_until: Some(later.into()),
        ..Default::default()
    };
    assert_eq!(
        session_pause(Status::Connected, &limited, now),
        Some(Auto::Pause(PauseReason::RateLimited, Some(later)))
    );
    assert_eq!(
        session_pause(Status::Reconnecting, &limited, now),
        Some(Auto::Pause(PauseReason::RateLimited, Some(later))),
        "a rate limit names its end, though the 429 closed the connection"
    );
    assert_eq!(
        session_pause(Status::Reconnecting, &limited, later),
        Some(Auto::Pause(PauseReason::SessionNotConnected, None)),
        "once it ends, the connection decides"
    );
    assert_eq!(
        session_pause(Status::LoggedOut, &limited, now),
        Some(Auto::Pause(PauseReason::LoggedOut, None)),
        "a logout outlasts any rate limit"
    );
    let barred = AccountHealth {
        reachout_restricted_until: Some(later.into()),
        ..Default::default()
    };
    assert_eq!(
        session_pause(Status::Connected, &barred, now),
        None,
        "a timelock holds new contacts only"
    );
    assert_eq!(
        reachout_until(&barred, now),
        Some(later + REACHOUT_MARGIN),
        "with a margin"
    );
    assert_eq!(reachout_until(&barred, later + REACHOUT_MARGIN), None);
}

#[test]
fn a_daily_cap_frees_a_place_when_its_oldest_send_leaves_the_window() {
    let now = SystemTime::now();
    let oldest = now - Duration::from_secs(3600);
    assert_eq!(cap_until(0, 10_000, Some(oldest), now), None, "0: no cap");
    assert_eq!(cap_until(5, 4, Some(oldest), now), None);
    assert_eq!(cap_until(5, 5, Some(oldest), now), Some(oldest + DAY));
}

#[test]
fn only_the_operator_ends_an_operators_pause() {
    let now = SystemTime::now();
    let operator = campaign("a", CampaignState::Paused, PauseReason::Operator, None);
    assert!(!is_ours(&operator) && !may_resume(&operator, now));
    let done = campaign("a", CampaignState::Done, PauseReason::Unspecified, None);
    assert!(!is_ours(&done));
    let offline = campaign("a", CampaignState::Paused, PauseReason::SessionNotConnected, None);
    assert!(may_resume(&offline, now));
    let barred = campaign(
        "a",
        CampaignState::Paused,
        PauseReason::ReachoutRestricted,
        Some(now + Duration::from_secs(5)),
    );
    assert!(is_ours(&barred) && !may_resume(&barred, now));
    assert!(may_resume(&barred, now + Duration::from_secs(6)));
}

#[test]
fn only_new_contacts_user_chats_of_a_campaign_that_asks_are_checked() {
    let mut asks = pacing(0, 0);
    asks.skip_unregistered = true;
    let user = "15550001234@s.whatsapp.net";
    assert!(needs_check(&asks, user, true), "a new contact's user chat");
    assert!(!needs_check(&asks, user, false), "an existing chat is not asked about");
    assert!(!needs_check(&asks, "120363000000000000@g.us", true), "a group");
    assert!(!needs_check(&pacing(0, 0), user, true), "the flag off");
}

#[test]
fn a_verdict_holds_for_its_ttl_and_not_a_moment_longer() {
    let checked = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    for (verdict, ttl) in [
        (Verdict::Registered, REGISTERED_TTL),
        (Verdict::Unregistered, UNREGISTERED_TTL),
    ] {
        assert!(fresh(verdict, checked, checked), "{verdict:?} just checked");
        let edge = checked + ttl;
        assert!(fresh(verdict, checked, edge - Duration::from_millis(1)), "{verdict:?}");
        assert!(!fresh(verdict, checked, edge), "{verdict:?} at its ttl");
        assert!(!fresh(verdict, checked, edge + Duration::from_secs(1)), "{verdict:?}");
    }
    assert_eq!(REGISTERED_TTL, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(UNREGISTERED_TTL, DAY);
}

#[test]
fn a_failed_lookup_waits_5_s_doubling_up_to_5_min() {
    let waits: Vec<u64> = (1..=9).map(|n| lookup_backoff(n).as_secs()).collect();
    assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
    assert_eq!(lookup_backoff(u32::MAX), Duration::from_secs(300));
}
