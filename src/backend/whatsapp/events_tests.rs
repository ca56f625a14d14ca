//! The mapping from the library's own event values to what the session sees.

use std::time::{Duration, SystemTime};

use whatsapp_rust::{
    transport::DisconnectReason,
    types::events::{
        ClientOutdated, ConnectFailure, ConnectFailureReason, Connected, Disconnected, Event, LoggedOut, PairSuccess,
        PairingQrCode, PairingQrCodesExhausted, StreamReplaced, TempBanReason, TemporaryBan,
    },
    Jid,
};

use super::*;

fn device() -> OwnDevice {
    OwnDevice {
        jid: Some("15551234567:12@s.whatsapp.net".parse().unwrap()),
        push_name: "Alice".into(),
    }
}

fn unpaired() -> OwnDevice {
    OwnDevice::default()
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
}

fn qr(code: &str, secs: u64) -> Event {
    Event::PairingQrCode(
        PairingQrCode::builder()
            .code(code.to_owned())
            .timeout(Duration::from_secs(secs))
            .build(),
    )
}

fn pair_success() -> Event {
    let id: Jid = "15551234567:12@s.whatsapp.net".parse().unwrap();
    let lid: Jid = "123456789:12@lid".parse().unwrap();
    Event::PairSuccess(
        PairSuccess::builder()
            .id(id)
            .lid(lid)
            .business_name(String::new())
            .platform("android".into())
            .build(),
    )
}

fn map(mapper: &mut EventMapper, event: &Event) -> Option<BackendEvent> {
    mapper.on_event(event, device, now())
}

fn disconnected(why: Disconnect) -> Option<BackendEvent> {
    Some(BackendEvent::Disconnected(why))
}

#[test]
fn qr_codes_are_numbered_per_connection_with_the_ttl_whatsapp_gave() {
    let mut mapper = EventMapper::new(false);
    let first = map(&mut mapper, &qr("2@a,b,c,d", 60));
    let second = map(&mut mapper, &qr("2@e,b,c,d", 20));
    let expected = |code: &str, ttl, index| {
        Some(BackendEvent::Qr(QrCode {
            code: code.into(),
            ttl: Duration::from_secs(ttl),
            index,
            count: QR_BATCH,
        }))
    };
    assert_eq!(first, expected("2@a,b,c,d", 60, 1));
    assert_eq!(second, expected("2@e,b,c,d", 20, 2));
    let mut next = EventMapper::new(false);
    assert_eq!(map(&mut next, &qr("2@x", 60)), expected("2@x", 60, 1));
}

#[test]
fn a_code_past_the_usual_batch_still_has_index_within_count() {
    let mut mapper = EventMapper::new(false);
    let last = (0..7).map(|_| map(&mut mapper, &qr("2@a", 20))).last().flatten();
    let Some(BackendEvent::Qr(code)) = last else {
        panic!("{last:?}")
    };
    assert_eq!((code.index, code.count), (7, 7));
}

#[test]
fn exhaustion_ends_the_connection_and_nothing_follows() {
    let mut mapper = EventMapper::new(false);
    map(&mut mapper, &qr("2@a", 60));
    let exhausted = Event::PairingQrCodesExhausted(PairingQrCodesExhausted::builder().disconnected(true).build());
    assert_eq!(map(&mut mapper, &exhausted), Some(BackendEvent::QrExhausted));
    assert_eq!(map(&mut mapper, &qr("2@late", 20)), None);
    assert_eq!(mapper.on_run_ended(&unpaired()), RunEnd::Reported);
}

#[test]
fn pair_success_gives_digits_and_the_device_jid_then_the_515_restarts() {
    let mut mapper = EventMapper::new(false);
    map(&mut mapper, &qr("2@a", 60));
    assert_eq!(
        map(&mut mapper, &pair_success()),
        Some(BackendEvent::PairSuccess {
            phone_number: "15551234567".into(),
            jid: "15551234567:12@s.whatsapp.net".into(),
        })
    );
    // With auto-reconnect off the library ends run() on the 515, without an event.
    assert_eq!(
        mapper.on_run_ended(&device()),
        RunEnd::Report(vec![BackendEvent::Disconnected(Disconnect::RestartRequired)])
    );
    assert_eq!(map(&mut mapper, &pair_success()), None);
}

#[test]
fn a_515_before_the_pair_success_event_still_reports_both() {
    let mut mapper = EventMapper::new(false);
    map(&mut mapper, &qr("2@a", 60));
    let RunEnd::Report(events) = mapper.on_run_ended(&device()) else {
        panic!()
    };
    assert_eq!(
        events,
        vec![
            BackendEvent::PairSuccess {
                phone_number: "15551234567".into(),
                jid: "15551234567:12@s.whatsapp.net".into(),
            },
            BackendEvent::Disconnected(Disconnect::RestartRequired),
        ]
    );
    assert_eq!(
        map(&mut mapper, &pair_success()),
        None,
        "the late event is not reported twice"
    );
}

#[test]
fn connected_reports_the_identity_from_the_device_store() {
    let mut mapper = EventMapper::new(true);
    let connected = map(&mut mapper, &Event::Connected(Connected::builder().build()));
    assert_eq!(
        connected,
        Some(BackendEvent::Connected(Identity {
            phone_number: "15551234567".into(),
            jid: "15551234567:12@s.whatsapp.net".into(),
            push_name: "Alice".into(),
            connected_at: None,
        }))
    );
    // run() returning on its own while online is a lost connection.
    let RunEnd::Report(events) = mapper.on_run_ended(&device()) else {
        panic!()
    };
    assert!(matches!(
        &events[..],
        [BackendEvent::Disconnected(Disconnect::ConnectionLost(_))]
    ));
}

#[test]
fn fatal_server_verdicts_map_to_their_disconnect_kind() {
    let logged_out = Event::LoggedOut(
        LoggedOut::builder()
            .on_connect(true)
            .reason(ConnectFailureReason::LoggedOut)
            .build(),
    );
    let cases = [
        (logged_out, Disconnect::LoggedOut),
        (
            Event::StreamReplaced(StreamReplaced::builder().build()),
            Disconnect::Replaced,
        ),
        (
            Event::ClientOutdated(ClientOutdated::builder().build()),
            Disconnect::ClientOutdated { pinned: false },
        ),
    ];
    for (event, expected) in cases {
        let mut mapper = EventMapper::new(true);
        assert_eq!(map(&mut mapper, &event), disconnected(expected));
        assert!(mapper.ended());
        assert_eq!(mapper.on_run_ended(&device()), RunEnd::Reported);
    }
}

#[test]
fn a_temporary_ban_ends_when_whatsapp_said() {
    let ban = Event::TemporaryBan(
        TemporaryBan::builder()
            .code(TempBanReason::SentToTooManyPeople)
            .expire(whatsapp_rust::chrono::Duration::seconds(3600))
            .build(),
    );
    let mut mapper = EventMapper::new(true);
    assert_eq!(
        map(&mut mapper, &ban),
        disconnected(Disconnect::TemporaryBan {
            ends_at: Some(now() + Duration::from_secs(3600)),
            code: 101,
        })
    );
}

#[test]
fn a_dropped_socket_is_held_then_a_lost_connection_with_the_reason() {
    let mut mapper = EventMapper::new(true);
    map(&mut mapper, &Event::Connected(Connected::builder().build()));
    let dropped = Event::Disconnected(Disconnected::builder().reason(DisconnectReason::StreamEnded).build());
    assert_eq!(map(&mut mapper, &dropped), None, "held while a failure may follow");
    assert!(mapper.has_pending_loss() && mapper.is_up());
    let Some(BackendEvent::Disconnected(Disconnect::ConnectionLost(cause))) = mapper.take_pending_loss() else {
        panic!()
    };
    assert!(!cause.is_empty());
    assert!(!mapper.has_pending_loss());
    assert_eq!(mapper.on_run_ended(&device()), RunEnd::Reported);
}

#[test]
fn a_dropped_socket_still_held_when_the_run_ends_is_reported_then() {
    let mut mapper = EventMapper::new(true);
    map(&mut mapper, &Event::Connected(Connected::builder().build()));
    let dropped = Event::Disconnected(Disconnected::builder().reason(DisconnectReason::StreamEnded).build());
    map(&mut mapper, &dropped);
    let RunEnd::Report(events) = mapper.on_run_ended(&device()) else {
        panic!()
    };
    assert!(matches!(
        &events[..],
        [BackendEvent::Disconnected(Disconnect::ConnectionLost(_))]
    ));
}

#[test]
fn a_failure_dispatched_after_the_socket_ended_names_the_end() {
    // whatsapp-rust ends the connection of a <failure> before its event.
    let verdicts = [
        (
            Event::ClientOutdated(ClientOutdated::builder().build()),
            Disconnect::ClientOutdated { pinned: true },
        ),
        (
            Event::ConnectFailure(
                ConnectFailure::builder()
                    .reason(ConnectFailureReason::ClientOutdated)
                    .build(),
            ),
            Disconnect::ClientOutdated { pinned: true },
        ),
        (
            Event::LoggedOut(
                LoggedOut::builder()
                    .on_connect(true)
                    .reason(ConnectFailureReason::LoggedOut)
                    .build(),
            ),
            Disconnect::LoggedOut,
        ),
    ];
    for (verdict, expected) in verdicts {
        let mut mapper = EventMapper::new(true).version_pinned(true);
        let dropped = Event::Disconnected(Disconnected::builder().reason(DisconnectReason::StreamEnded).build());
        assert_eq!(map(&mut mapper, &dropped), None);
        assert_eq!(map(&mut mapper, &verdict), disconnected(expected));
        assert_eq!(mapper.take_pending_loss(), None, "the loss is explained, not reported");
        assert_eq!(mapper.on_run_ended(&device()), RunEnd::Reported);
    }
}

#[test]
fn login_failures_map_by_reason_code() {
    let failure =
        |reason| Event::ConnectFailure(ConnectFailure::builder().reason(reason).message("nope".into()).build());
    let check = |reason, expected: Disconnect| {
        let mut mapper = EventMapper::new(true);
        assert_eq!(map(&mut mapper, &failure(reason)), disconnected(expected), "{reason:?}");
    };
    check(ConnectFailureReason::AccountLocked, Disconnect::LoggedOut);
    check(
        ConnectFailureReason::ClientOutdated,
        Disconnect::ClientOutdated { pinned: false },
    );
    check(
        ConnectFailureReason::TempBanned,
        Disconnect::TemporaryBan { ends_at: None, code: 0 },
    );
    check(
        ConnectFailureReason::ServiceUnavailable,
        Disconnect::ConnectionLost("whatsapp refused the login (503): nope".into()),
    );
}

#[test]
fn a_run_that_never_came_up_asks_for_the_cause() {
    let mut mapper = EventMapper::new(false);
    assert_eq!(mapper.on_run_ended(&unpaired()), RunEnd::NeverUp);
    let mut resuming = EventMapper::new(true);
    assert_eq!(resuming.on_run_ended(&device()), RunEnd::NeverUp);
}

#[test]
fn a_pairing_socket_that_closes_between_codes_is_a_lost_connection() {
    let mut mapper = EventMapper::new(false);
    map(&mut mapper, &qr("2@a", 60));
    let RunEnd::Report(events) = mapper.on_run_ended(&unpaired()) else {
        panic!()
    };
    assert!(matches!(
        &events[..],
        [BackendEvent::Disconnected(Disconnect::ConnectionLost(_))]
    ));
}
