//! Reads that act on nothing are answered from the registry's table, not the
//! session's mailbox: a peek or a CONNECTED session's GetSession answers while its
//! actor is busy, a list pages the table, and read-your-writes holds (what a call
//! answered is what the next read sees).

use super::*;
use crate::{
    backend::{scripted::identity, Disconnect},
    domain::Status,
};

impl Daemon {
    /// Creates `id`, pairs it through the 515 and waits until it is CONNECTED;
    /// returns its live connection.
    pub(super) async fn connected(&self, id: &SessionId) -> Line {
        let n = self.backend.started() + 1;
        let (_, line) = self.create_paired(id, n).await;
        line.emit(BackendEvent::PairSuccess {
            phone_number: "15551234567".into(),
            jid: "15551234567:1@s.whatsapp.net".into(),
        });
        self.backend.link(id);
        line.emit(BackendEvent::Disconnected(Disconnect::RestartRequired));
        let resumed = self.backend.connection(n + 1).await;
        self.tell(&resumed, BackendEvent::Connected(identity("15551234567")))
            .await;
        assert_eq!(self.now(id).await.unwrap().status, Status::Connected);
        resumed
    }
}

#[tokio::test(start_paused = true)]
async fn a_connected_sessions_get_answers_while_its_actor_is_busy() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    daemon.connected(&alice).await;

    // The actor is held inside DisconnectSession, closing its connection.
    daemon.backend.hold_closes();
    let (sessions, target) = (daemon.sessions.clone(), alice.clone());
    let disconnecting = tokio::spawn(async move { sessions.disconnect(target).await });
    daemon.backend.close_held().await;

    let bound = Duration::from_secs(1);
    let got = tokio::time::timeout(bound, daemon.sessions.get(alice.clone(), fresh())).await;
    let view = got
        .expect("GetSession on a CONNECTED session does not wait for the busy actor")
        .unwrap();
    assert_eq!(view.status, Status::Connected, "the last published state");
    let peeked = tokio::time::timeout(bound, daemon.sessions.peek(alice.clone())).await;
    assert_eq!(
        peeked.expect("a peek does not wait either").unwrap().status,
        Status::Connected
    );
    assert!(!disconnecting.is_finished(), "the actor is still busy");

    daemon.backend.release_closes();
    let stopped = disconnecting.await.unwrap().unwrap();
    assert_eq!(stopped.status, Status::Disconnected);
    let after = daemon.sessions.get(alice.clone(), fresh()).await.unwrap();
    assert_eq!(
        (after.status, after.revision),
        (Status::Disconnected, stopped.revision),
        "the read after the call sees what the call answered"
    );
}

#[tokio::test(start_paused = true)]
async fn a_get_that_may_need_a_code_still_goes_to_the_actor() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    let (_, line) = daemon.create_paired(&alice, 1).await;
    line.emit(BackendEvent::QrExhausted);
    daemon.now(&alice).await.unwrap();

    // An exhausted batch: a plain GetSession starts one new connection.
    let getting = daemon.spawn_get(&alice, fresh());
    let code = daemon.backend.connection(2).await.qr(1, 6, FIRST_TTL);
    let view = getting.await.unwrap().unwrap();
    assert_eq!(view.qr.unwrap().code, code);
    assert_eq!(daemon.backend.started(), 2);
}

#[tokio::test(start_paused = true)]
async fn reads_of_unknown_restarting_and_deleted_sessions_answer_as_the_registry_does() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    let missing = daemon.sessions.peek(id("nobody")).await.unwrap_err();
    assert_eq!(missing, SessionError::NotFound("nobody".into()));

    daemon.connected(&alice).await;
    daemon.sessions.crash(alice.clone(), false).await.unwrap();
    let mut restarting = None;
    for _ in 0..100 {
        match daemon.sessions.peek(alice.clone()).await {
            Err(SessionError::Unavailable(m)) => {
                restarting = Some(m);
                break;
            }
            Ok(_) => tokio::task::yield_now().await,
            Err(other) => panic!("a crashed session answered {other:?}"),
        }
    }
    let message = restarting.expect("a restarting session is not read from its stale snapshot");
    assert!(
        message.contains("restarting") || message.contains("stopping"),
        "{message}"
    );

    daemon.sessions.delete(alice.clone()).await.unwrap();
    let gone = daemon.sessions.get(alice.clone(), fresh()).await.unwrap_err();
    assert_eq!(gone, SessionError::NotFound("alice".into()));
    let (page, _) = daemon.sessions.list(None, 10, None).await.unwrap();
    assert!(page.is_empty(), "a deleted session is not listed: {page:?}");
}

#[tokio::test(start_paused = true)]
async fn a_list_pages_the_table_in_id_order_with_the_latest_states() {
    let daemon = Daemon::start().await;
    for (n, name) in ["carol", "alice", "bob"].into_iter().enumerate() {
        daemon.create_paired(&id(name), n + 1).await;
    }
    daemon.connected(&id("dave")).await;
    let (first, next) = daemon.sessions.list(None, 2, None).await.unwrap();
    let names: Vec<&str> = first.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    let (rest, end) = daemon.sessions.list(None, 2, next).await.unwrap();
    assert_eq!(
        rest.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        ["carol", "dave"]
    );
    assert!(end.is_none());
    let (connected, _) = daemon.sessions.list(Some(Status::Connected), 10, None).await.unwrap();
    assert_eq!(connected.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["dave"]);
}
