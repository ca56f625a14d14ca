//! Unit tests of the session rules on tokio's paused clock.

use std::time::{Duration, SystemTime};

use tokio::time::{advance, Instant};

use super::*;
use crate::{backend::Disconnect, session::policy::Recovery};

const FIRST_TTL: Duration = Duration::from_secs(60);
const NEXT_TTL: Duration = Duration::from_secs(20);

fn state() -> SessionState {
    SessionState::new(
        SessionId::parse("alice").unwrap(),
        Default::default(),
        SystemTime::now(),
    )
}

fn code(index: u32) -> QrCode {
    QrCode {
        code: format!("ref-{index},noise,identity,adv,1"),
        ttl: if index == 1 { FIRST_TTL } else { NEXT_TTL },
        index,
        count: 6,
    }
}

fn pairing(s: &mut SessionState) -> ConnId {
    s.open_pairing(Instant::now(), SystemTime::now(), Duration::from_secs(30))
}

#[tokio::test(start_paused = true)]
async fn first_code_makes_the_session_qr_waiting_with_its_expiry() {
    let mut s = state();
    let conn = pairing(&mut s);
    assert_eq!(s.view().status, Status::Connecting);
    assert_eq!(s.qr_need(Instant::now(), Duration::ZERO, true), QrNeed::Wait);
    assert!(s.on_qr(conn, code(1), Instant::now(), SystemTime::now()));
    let qr = s.view().qr.clone().unwrap();
    assert_eq!(
        (s.view().status, qr.index, qr.count, qr.generation),
        (Status::QrWaiting, 1, 6, 1)
    );
    assert_eq!(qr.expires_at.duration_since(qr.issued_at).unwrap(), FIRST_TTL);
    assert_eq!(s.qr_need(Instant::now(), Duration::ZERO, true), QrNeed::Ready);
}

#[tokio::test(start_paused = true)]
async fn every_change_grows_the_revision_and_stale_events_change_nothing() {
    let mut s = state();
    let r0 = s.view().revision;
    let old = pairing(&mut s);
    let new = s.open_pairing(Instant::now(), SystemTime::now(), Duration::from_secs(30));
    let r1 = s.view().revision;
    assert!(r1 > r0);
    assert!(!s.on_qr(old, code(1), Instant::now(), SystemTime::now()));
    assert_eq!(s.view().revision, r1);
    assert!(s.on_qr(new, code(1), Instant::now(), SystemTime::now()));
    assert!(s.view().revision > r1);
    assert_eq!(s.view().qr.as_ref().unwrap().generation, 2);
}

#[tokio::test(start_paused = true)]
async fn exhausted_batch_is_lazy_until_someone_asks() {
    let mut s = state();
    let conn = pairing(&mut s);
    s.on_qr(conn, code(6), Instant::now(), SystemTime::now());
    advance(NEXT_TTL).await;
    assert!(s.on_qr_exhausted(conn, Instant::now(), SystemTime::now()));
    assert_eq!(s.view().status, Status::QrWaiting);
    assert!(s.conn().is_none());
    assert_eq!(s.qr_need(Instant::now(), Duration::ZERO, false), QrNeed::Ready);
    assert_eq!(s.qr_need(Instant::now(), Duration::ZERO, true), QrNeed::Regenerate);
    pairing(&mut s);
    assert_eq!(s.qr_need(Instant::now(), Duration::ZERO, true), QrNeed::Wait);
}

/// The client's own timer ends the batch; the code's expiry on our clock started
/// when its event arrived, a little later. The code died with its connection.
#[tokio::test(start_paused = true)]
async fn a_batch_that_runs_out_before_our_clock_says_so_shows_its_last_code_expired() {
    let mut s = state();
    let conn = pairing(&mut s);
    s.on_qr(conn, code(6), Instant::now(), SystemTime::now());
    advance(NEXT_TTL - Duration::from_millis(20)).await;
    let (now, sys) = (Instant::now(), SystemTime::now());
    assert!(s.on_qr_exhausted(conn, now, sys));
    let qr = s.view().qr.clone().expect("the last code stays");
    assert!(!qr.is_valid_at(now));
    assert_eq!((qr.expires_at, qr.index), (sys, 6));
    assert_eq!(s.qr_need(now, Duration::ZERO, true), QrNeed::Regenerate);
}

#[tokio::test(start_paused = true)]
async fn last_code_expiring_with_the_connection_open_counts_as_exhausted() {
    let mut s = state();
    let conn = pairing(&mut s);
    s.on_qr(conn, code(6), Instant::now(), SystemTime::now());
    assert_eq!(s.on_last_qr_expired(1, 6, Instant::now(), SystemTime::now()), None);
    advance(NEXT_TTL).await;
    assert_eq!(
        s.on_last_qr_expired(1, 6, Instant::now(), SystemTime::now()),
        Some(conn)
    );
    assert_eq!(s.view().disconnect_reason, DisconnectReason::QrExhausted);
}

#[tokio::test(start_paused = true)]
async fn min_validity_waits_for_the_next_code_or_regenerates_when_none_can_do() {
    let mut s = state();
    let conn = pairing(&mut s);
    s.on_qr(conn, code(1), Instant::now(), SystemTime::now());
    advance(Duration::from_secs(55)).await;
    let now = Instant::now();
    assert_eq!(s.qr_need(now, Duration::from_secs(10), true), QrNeed::Wait);
    assert_eq!(s.qr_need(now, Duration::from_secs(4), true), QrNeed::Ready);
    s.on_qr(conn, code(2), now, SystemTime::now());
    assert_eq!(s.qr_need(now, Duration::from_secs(10), true), QrNeed::Ready);
    assert_eq!(s.qr_need(now, Duration::from_secs(30), true), QrNeed::Regenerate);
    // A wish longer than any code lives cannot be met: out of range, naming the
    // longest TTL issued (the first code's), never a code that breaks it.
    pairing(&mut s);
    let conn = s.conn().unwrap().id;
    s.on_qr(conn, code(1), now, SystemTime::now());
    let out_of_range = QrNeed::OutOfRange { longest: FIRST_TTL };
    assert_eq!(s.qr_need(now, Duration::from_secs(600), true), out_of_range);
    assert_eq!(s.qr_need(now, FIRST_TTL, true), QrNeed::Ready);
}

#[tokio::test(start_paused = true)]
async fn no_code_in_time_fails_with_qr_timeout_and_a_refresh_may_start_again() {
    let mut s = state();
    let conn = pairing(&mut s);
    let closed = s.on_first_qr_timeout(conn, SystemTime::now());
    assert_eq!(closed, Some(conn));
    assert_eq!(s.view().status, Status::Failed);
    assert_eq!(s.view().disconnect_reason, DisconnectReason::QrTimeout);
    assert!(s.view().last_error.contains("30s"), "{}", s.view().last_error);
    assert_eq!(s.qr_need(Instant::now(), Duration::ZERO, true), QrNeed::Regenerate);
}

#[tokio::test(start_paused = true)]
async fn scan_then_515_then_connected_is_the_routine_path() {
    let mut s = state();
    let conn = pairing(&mut s);
    s.on_qr(conn, code(1), Instant::now(), SystemTime::now());
    assert!(s.on_pair_success(
        conn,
        "15551234567".into(),
        "15551234567:7@s.whatsapp.net".into(),
        SystemTime::now()
    ));
    assert_eq!((s.view().status, s.view().qr.is_none()), (Status::Pairing, true));
    let next = s.on_disconnected(conn, &Disconnect::RestartRequired, SystemTime::now());
    assert_eq!(next, Some(Recovery::RestartNow));
    assert_eq!((s.view().status, s.view().restart_count), (Status::Restarting, 1));
    let resumed = s.open_resume(Status::Restarting, SystemTime::now());
    let identity = Identity {
        phone_number: "15551234567".into(),
        jid: "15551234567:7@s.whatsapp.net".into(),
        push_name: "Alice".into(),
        connected_at: None,
    };
    assert!(s.on_connected(resumed, identity, SystemTime::now()));
    assert_eq!(s.view().status, Status::Connected);
    assert_eq!(s.view().disconnect_reason, DisconnectReason::Unspecified);
    assert!(s.view().connected_at.is_some());
    assert_eq!(s.qr_need(Instant::now(), Duration::ZERO, true), QrNeed::Ready);
}

#[tokio::test(start_paused = true)]
async fn logged_out_forgets_the_device_and_pairs_again_on_request() {
    let mut s = state();
    let conn = s.open_resume(Status::Connecting, SystemTime::now());
    let identity = Identity {
        jid: "1@s.whatsapp.net".into(),
        ..Default::default()
    };
    s.on_connected(conn, identity, SystemTime::now());
    assert_eq!(
        s.on_disconnected(conn, &Disconnect::LoggedOut, SystemTime::now()),
        Some(Recovery::StopAndWipe)
    );
    assert_eq!((s.view().status, s.is_linked()), (Status::LoggedOut, false));
    assert_eq!(s.qr_need(Instant::now(), Duration::ZERO, false), QrNeed::Ready);
    assert_eq!(s.qr_need(Instant::now(), Duration::ZERO, true), QrNeed::Regenerate);
}

#[tokio::test(start_paused = true)]
async fn failed_connect_of_a_pairing_connection_names_the_cause() {
    let mut s = state();
    let conn = pairing(&mut s);
    assert_eq!(
        s.on_connect_failed(conn, "dns lookup failed", SystemTime::now()),
        Some(Recovery::Stop)
    );
    assert_eq!(s.view().status, Status::Failed);
    assert!(s.view().last_error.contains("dns lookup failed"));
}

#[tokio::test(start_paused = true)]
async fn lost_connection_of_a_linked_session_backs_off() {
    let mut s = state();
    let conn = s.open_resume(Status::Connecting, SystemTime::now());
    s.on_connected(
        conn,
        Identity {
            jid: "1@s.whatsapp.net".into(),
            ..Default::default()
        },
        SystemTime::now(),
    );
    let lost = Disconnect::ConnectionLost("socket closed".into());
    assert_eq!(
        s.on_disconnected(conn, &lost, SystemTime::now()),
        Some(Recovery::Backoff)
    );
    assert_eq!((s.view().status, s.reconnect_attempt()), (Status::Reconnecting, 1));
    assert_eq!(s.qr_need(Instant::now(), Duration::ZERO, true), QrNeed::Ready);
}

#[tokio::test(start_paused = true)]
async fn a_405_on_a_resolved_version_backs_off_and_on_a_pairing_connection_waits_for_a_caller() {
    let mut linked = state();
    let conn = linked.open_resume(Status::Connecting, SystemTime::now());
    let device = Identity {
        jid: "1@s.whatsapp.net".into(),
        ..Default::default()
    };
    linked.on_connected(conn, device, SystemTime::now());
    let outdated = Disconnect::ClientOutdated { pinned: false };
    assert_eq!(
        linked.on_disconnected(conn, &outdated, SystemTime::now()),
        Some(Recovery::Backoff)
    );
    let view = linked.view();
    assert_eq!(
        (view.status, view.disconnect_reason),
        (Status::Reconnecting, DisconnectReason::ClientOutdated)
    );

    let mut unlinked = state();
    let conn = pairing(&mut unlinked);
    assert_eq!(
        unlinked.on_disconnected(conn, &outdated, SystemTime::now()),
        Some(Recovery::Stop)
    );
    let view = unlinked.view();
    assert_eq!(
        (view.status, view.disconnect_reason),
        (Status::QrWaiting, DisconnectReason::ClientOutdated)
    );
    assert!(view.last_error.contains("405"), "{}", view.last_error);
}

#[tokio::test(start_paused = true)]
async fn a_qr_timeout_names_the_bound_its_own_connection_had() {
    let mut s = state();
    let conn = s.open_pairing(Instant::now(), SystemTime::now(), Duration::from_secs(15));
    s.on_first_qr_timeout(conn, SystemTime::now());
    assert!(s.view().last_error.contains("15s"), "{}", s.view().last_error);
}
