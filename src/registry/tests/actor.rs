//! The session actor's own machinery as a caller sees it: no timer outlives what
//! armed it (a disconnect, a delete, a crash), a deleted session leaves no task
//! behind, and every answer comes after the registry's snapshot already shows it.

use std::time::Duration;

use super::*;
use crate::{
    backend::{scripted::identity, Disconnect},
    domain::Status,
};

impl Daemon {
    /// `id` as the registry's snapshot shows it (what ListSessions answers from).
    async fn listed(&self, id: &SessionId) -> SessionView {
        let (page, _) = self.sessions.list(None, 100, None).await.unwrap();
        page.into_iter().find(|view| &view.id == id).expect("listed")
    }
}

/// Tasks alive on the runtime, once every task that can finish has.
async fn settled_tasks() -> usize {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

#[tokio::test(start_paused = true)]
async fn a_reconnect_armed_before_disconnect_session_never_reconnects() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    let line = daemon.connected(&alice).await;
    daemon
        .tell(
            &line,
            BackendEvent::Disconnected(Disconnect::ConnectionLost("socket closed".into())),
        )
        .await;
    assert_eq!(daemon.now(&alice).await.unwrap().status, Status::Reconnecting);

    let stopped = daemon.sessions.disconnect(alice.clone()).await.unwrap();
    assert_eq!(stopped.status, Status::Disconnected);
    tokio::time::advance(Duration::from_secs(120)).await;

    let view = daemon.now(&alice).await.unwrap();
    assert_eq!(view.status, Status::Disconnected, "{view:?}");
    assert_eq!(view.revision, stopped.revision, "nothing changed it since");
    assert_eq!(daemon.backend.started(), 2, "no reconnect was started");
}

#[tokio::test(start_paused = true)]
async fn a_qr_expiry_armed_before_a_crash_never_changes_the_restarted_session() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    // The old incarnation's code expires at 60 s.
    daemon.create_paired(&alice, 1).await;
    daemon.sessions.crash(alice.clone(), true).await.unwrap();
    let back = daemon
        .now_until(&alice, FIRST_BACKOFF * 4, |answer| answer.is_ok())
        .await;
    assert_eq!(back.status, Status::QrWaiting);

    // The new incarnation shows the last code of a batch, valid past 60 s.
    let getting = daemon.spawn_get(&alice, fresh());
    let line = daemon.backend.connection(2).await;
    line.qr(6, 6, Duration::from_secs(90));
    let shown = getting.await.unwrap().unwrap();
    tokio::time::advance(Duration::from_secs(65)).await;

    let view = daemon.now(&alice).await.unwrap();
    assert_eq!(view.revision, shown.revision, "unchanged: {view:?}");
    assert_eq!(view.qr.map(|qr| qr.code), shown.qr.map(|qr| qr.code));
    assert!(line.is_open(), "the new batch's connection stays open");
}

#[tokio::test(start_paused = true)]
async fn a_deleted_session_leaves_no_timer_or_worker_behind_and_none_reaches_its_successor() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    let before = settled_tasks().await;
    // Armed: the first code's expiry (60 s), a waiting caller's deadline (15 s).
    daemon.create_paired(&alice, 1).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let waiting = daemon.spawn_get(
        &alice,
        QrRequest {
            min_validity: FIRST_TTL,
            ..fresh()
        },
    );
    let _ = daemon.now(&alice).await;
    daemon.sessions.delete(alice.clone()).await.unwrap();
    let gone = waiting.await.unwrap().unwrap_err();
    assert!(matches!(gone, SessionError::NotFound(_)), "{gone:?}");
    assert_eq!(settled_tasks().await, before, "every task of the session ended");

    tokio::time::advance(Duration::from_secs(10)).await;
    let creating = daemon.spawn_create(&alice, fresh());
    let line = daemon.backend.connection(2).await;
    line.qr(1, 6, FIRST_TTL);
    let created = creating.await.unwrap().unwrap();
    tokio::time::advance(Duration::from_secs(55)).await;
    let view = daemon.now(&alice).await.unwrap();
    assert_eq!(view.revision, created.revision, "unchanged: {view:?}");
    assert!(view.qr.is_some_and(|qr| qr.code == created.qr.unwrap().code));
}

#[tokio::test(start_paused = true)]
async fn every_answer_comes_after_the_registry_snapshot_shows_it() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    let _line = daemon.connected(&alice).await;
    let mut feed = daemon.ctx.events.subscribe();

    let stopped = daemon.sessions.disconnect(alice.clone()).await.unwrap();
    let fed = feed.try_recv().expect("the change is already in the feed");
    assert_eq!(
        (fed.view.status, fed.view.revision),
        (Status::Disconnected, stopped.revision)
    );
    let listed = daemon.listed(&alice).await;
    assert_eq!(
        (listed.status, listed.revision),
        (Status::Disconnected, stopped.revision)
    );

    let connecting = tokio::spawn({
        let (sessions, alice) = (daemon.sessions.clone(), alice.clone());
        async move { sessions.connect(alice, fresh()).await }
    });
    let line = daemon.backend.connection(3).await;
    line.emit(BackendEvent::Connected(identity("15551234567")));
    let connected = connecting.await.unwrap().unwrap();
    let listed = daemon.listed(&alice).await;
    assert_eq!(
        (listed.status, listed.revision),
        (Status::Connected, connected.revision)
    );

    let out = daemon.sessions.logout(alice.clone()).await.unwrap();
    let listed = daemon.listed(&alice).await;
    assert_eq!((listed.status, listed.revision), (Status::LoggedOut, out.revision));
}
