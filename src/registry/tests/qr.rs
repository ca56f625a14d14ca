//! The QR rules as a caller sees them: the first code answers CreateSession, the
//! batch rotates, an exhausted batch waits lazily and regenerates once for any
//! number of callers, every wait has its bound, and the 515 after pairing is a
//! restart, not a failure.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::{
    backend::{scripted::identity, BackendEvent, Disconnect},
    domain::{DisconnectReason, Status},
};

/// Shows codes 2..=6 of `line`'s batch, each as the one before expires, then runs
/// the batch out as WhatsApp does (the last code expires, the server closes).
async fn run_out(daemon: &Daemon, line: &Line) {
    tokio::time::advance(FIRST_TTL).await;
    for index in 2..=6 {
        daemon.show(line, index, NEXT_TTL).await;
        tokio::time::advance(NEXT_TTL).await;
    }
    daemon.tell(line, BackendEvent::QrExhausted).await;
}

#[tokio::test(start_paused = true)]
async fn create_answers_with_the_first_code_and_when_it_expires() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    let start = Instant::now();
    let creating = daemon.spawn_create(&alice, fresh());
    let line = daemon.backend.connection(1).await;
    let code = line.qr(1, 6, FIRST_TTL);

    let view = creating.await.unwrap().unwrap();
    assert_eq!(view.status, Status::QrWaiting);
    let qr = view.qr.expect("a code");
    assert_eq!(
        (qr.code.as_str(), qr.index, qr.count, qr.generation),
        (code.as_str(), 1, 6, 1)
    );
    assert_eq!(qr.expires_at, qr.issued_at + FIRST_TTL);
    assert_eq!(Instant::now(), start, "no time passes between the code and the answer");

    let again = daemon.sessions.create(alice.clone(), labels(), fresh()).await.unwrap();
    assert_eq!(again.qr.unwrap().code, code, "creating it again returns it as it is");
    assert_eq!((daemon.backend.started(), daemon.backend.open()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn the_next_code_of_the_batch_answers_a_get_once_the_first_expires() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    let (_, line) = daemon.create_paired(&alice, 1).await;
    tokio::time::advance(FIRST_TTL).await;

    let getting = daemon.spawn_get(&alice, fresh());
    daemon.now(&alice).await.unwrap(); // the get is parked: its answer comes from the next code
    let code = line.qr(2, 6, NEXT_TTL);
    let qr = getting.await.unwrap().unwrap().qr.unwrap();
    assert_eq!((qr.code, qr.index, qr.generation), (code, 2, 1));
    assert_eq!(qr.expires_at, qr.issued_at + NEXT_TTL);
    assert_eq!(daemon.backend.started(), 1, "the same connection rotates its codes");
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_batch_waits_without_a_connection_until_the_next_get_starts_one() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    let (_, line) = daemon.create_paired(&alice, 1).await;
    run_out(&daemon, &line).await;

    let view = daemon.now(&alice).await.unwrap();
    assert_eq!(view.status, Status::QrWaiting);
    assert_eq!(view.disconnect_reason, DisconnectReason::QrExhausted);
    assert_eq!(view.qr.map(|qr| qr.index), Some(6), "the last, expired code stays");
    assert_eq!((daemon.backend.started(), daemon.backend.open()), (1, 0));

    tokio::time::advance(Duration::from_secs(600)).await;
    daemon.now(&alice).await.unwrap();
    assert_eq!(daemon.backend.started(), 1, "nobody asking means no connection");

    let getting = daemon.spawn_get(&alice, fresh());
    let code = daemon.backend.connection(2).await.qr(1, 6, FIRST_TTL);
    let qr = getting.await.unwrap().unwrap().qr.unwrap();
    assert_eq!((qr.code, qr.index, qr.generation), (code, 1, 2));
    assert_eq!((daemon.backend.started(), daemon.backend.open()), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn concurrent_gets_on_an_exhausted_batch_share_one_regeneration() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    let (_, line) = daemon.create_paired(&alice, 1).await;
    run_out(&daemon, &line).await;

    let gets = start_together((0..8).map(|_| daemon.get_call(&alice, fresh())).collect());
    // Answered after all eight: each has asked, and each is waiting for a code.
    assert_eq!(daemon.now(&alice).await.unwrap().status, Status::Connecting);
    assert_eq!(daemon.backend.started(), 2, "one regeneration for eight callers");

    let code = daemon.backend.connection(2).await.qr(1, 6, FIRST_TTL);
    for get in gets {
        let qr = get.await.unwrap().unwrap().qr.unwrap();
        assert_eq!((qr.code.as_str(), qr.generation), (code.as_str(), 2));
    }
    assert_eq!(daemon.backend.started(), 2);
}

#[tokio::test(start_paused = true)]
async fn refresh_qr_closes_the_old_connection_before_it_starts_the_next() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    let (_, old) = daemon.create_paired(&alice, 1).await;
    daemon.backend.hold_closes();

    let (sessions, id) = (daemon.sessions.clone(), alice.clone());
    let refreshing = tokio::spawn(async move { sessions.refresh_qr(id, fresh()).await });
    daemon.backend.close_held().await;
    assert_eq!(daemon.backend.started(), 1, "nothing new while the old one closes");
    daemon.backend.release_closes();

    let code = daemon.backend.connection(2).await.qr(1, 6, FIRST_TTL);
    let qr = refreshing.await.unwrap().unwrap().qr.unwrap();
    assert_eq!((qr.code, qr.generation), (code, 2));
    assert!(!old.is_open());
    assert_eq!(daemon.backend.open(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_backend_that_shows_no_code_fails_the_create_after_the_qr_timeout() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    let start = Instant::now();
    let creating = daemon.spawn_create(&alice, fresh());
    daemon.backend.connection(1).await; // it never shows a code

    let error = creating.await.unwrap().unwrap_err();
    assert!(
        matches!(&error, SessionError::DeadlineExceeded(m) if m.contains("the session is FAILED")),
        "{error:?}"
    );
    // The QR timeout (30 s), as the defaults have it longer than the refresh timeout.
    assert_eq!(Instant::now() - start, QR_TIMEOUT);
    let view = daemon.now(&alice).await.unwrap();
    assert_eq!(view.status, Status::Failed);
    assert_eq!(view.disconnect_reason, DisconnectReason::QrTimeout);
    assert!(view.last_error.contains("30s"), "{}", view.last_error);
    assert_eq!(daemon.backend.open(), 0, "the silent connection is closed");
}

#[tokio::test(start_paused = true)]
async fn a_callers_deadline_shorter_than_the_servers_is_honoured_and_pairing_goes_on() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(5);
    let creating = daemon.spawn_create(
        &alice,
        QrRequest {
            deadline: Some(deadline),
            ..fresh()
        },
    );
    let line = daemon.backend.connection(1).await;

    let error = creating.await.unwrap().unwrap_err();
    assert!(
        matches!(&error, SessionError::DeadlineExceeded(m) if m.contains("the call's deadline passed")),
        "{error:?}"
    );
    let waited = Instant::now() - start;
    assert!(
        waited < Duration::from_secs(5) && waited >= Duration::from_millis(4900),
        "{waited:?}"
    );
    assert_eq!(daemon.now(&alice).await.unwrap().status, Status::Connecting);
    assert_eq!(daemon.backend.open(), 1, "the session keeps pairing");

    let code = line.qr(1, 6, FIRST_TTL);
    assert_eq!(daemon.now(&alice).await.unwrap().qr.unwrap().code, code);
}

#[tokio::test(start_paused = true)]
async fn a_min_validity_longer_than_any_code_is_out_of_range_naming_the_longest() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    daemon.create_paired(&alice, 1).await;

    let as_long_as_the_first = QrRequest {
        min_validity: FIRST_TTL,
        ..fresh()
    };
    let view = daemon.sessions.get(alice.clone(), as_long_as_the_first).await.unwrap();
    assert_eq!(view.qr.unwrap().index, 1, "a fresh first code lives exactly that long");

    let longer = QrRequest {
        min_validity: Duration::from_secs(600),
        ..fresh()
    };
    let error = daemon.sessions.get(alice.clone(), longer).await.unwrap_err();
    assert!(
        matches!(&error, SessionError::OutOfRange(m) if m.contains("10m") && m.contains("valid 1m")),
        "{error:?}"
    );
    assert_eq!(
        daemon.backend.started(),
        1,
        "no connection for a request none can satisfy"
    );
}

#[tokio::test(start_paused = true)]
async fn a_515_after_pair_success_restarts_then_connects_with_restart_count_one() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    let (_, line) = daemon.create_paired(&alice, 1).await;
    let mut changes = daemon.sessions.watch(alice.clone(), false).await.unwrap();

    line.emit(BackendEvent::PairSuccess {
        phone_number: "15551234567".into(),
        jid: "15551234567:1@s.whatsapp.net".into(),
    });
    daemon.backend.link(&alice);
    line.emit(BackendEvent::Disconnected(Disconnect::RestartRequired));
    let resumed = daemon.backend.connection(2).await;
    resumed.emit(BackendEvent::Connected(identity("15551234567")));
    let view = daemon.now(&alice).await.unwrap();

    let mut seen = Vec::new();
    while let Ok(change) = changes.try_recv() {
        seen.push((change.status, change.restart_count, change.revision));
    }
    let statuses: Vec<_> = seen.iter().map(|(status, count, _)| (*status, *count)).collect();
    assert_eq!(
        statuses,
        [
            (Status::QrWaiting, 0),
            (Status::Pairing, 0),
            (Status::Restarting, 1),
            (Status::Connected, 1)
        ]
    );
    assert!(seen.windows(2).all(|w| w[0].2 < w[1].2), "revisions grow: {seen:?}");
    assert_eq!((view.status, view.restart_count), (Status::Connected, 1));
    assert_eq!(view.jid, "15551234567:1@s.whatsapp.net");
    assert!(!line.is_open() && resumed.is_open());
    let stored = daemon.ctx.store.load(&alice).await.unwrap().unwrap();
    assert_eq!(stored.jid, view.jid, "the link is stored");
}
