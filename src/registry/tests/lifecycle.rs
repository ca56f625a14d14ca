//! Supervision as a caller sees it: a crashed session is UNAVAILABLE while it
//! restarts and comes back with its record; past its budget it is FAILED with the
//! cause until ConnectSession starts it afresh; a delete while it restarts finishes
//! once and leaves nothing behind.

use tokio::time::Instant;

use super::*;
use crate::domain::Status;

impl Daemon {
    /// Crashes `id` on purpose (an error, or a panic) and waits, without letting
    /// time pass, until the registry answers for it that it is restarting.
    async fn crash(&self, id: &SessionId, panic: bool) {
        self.sessions.crash(id.clone(), panic).await.unwrap();
        for _ in 0..100 {
            match self.now(id).await {
                Err(SessionError::Unavailable(m)) if m.contains("restarting after a crash: retry") => return,
                Err(SessionError::Unavailable(_)) => {} // the crashed actor is still stopping
                other => panic!("a crashed session answered {other:?}"),
            }
        }
        panic!("the registry never noticed the crash");
    }

    /// DeleteSession, not yet sent (see [`start_together`]).
    fn delete_call(&self, id: &SessionId) -> Call<()> {
        let (sessions, id) = (self.sessions.clone(), id.clone());
        Box::pin(async move { sessions.delete(id).await })
    }
}

/// Whether the session answered, with `status`.
fn is(status: Status) -> impl Fn(&Result<SessionView, SessionError>) -> bool {
    move |answer| answer.as_ref().is_ok_and(|view| view.status == status)
}

#[tokio::test(start_paused = true)]
async fn a_crashed_session_is_unavailable_while_restarting_then_back_with_its_record() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    let (before, _) = daemon.create_paired(&alice, 1).await;

    daemon.crash(&alice, false).await;
    let crashed_at = Instant::now();
    let back = daemon
        .now_until(&alice, FIRST_BACKOFF * 2, |answer| answer.is_ok())
        .await;
    assert!(
        Instant::now() - crashed_at >= FIRST_BACKOFF,
        "restarted after its backoff"
    );
    assert_eq!((back.labels, back.created_at), (before.labels, before.created_at));
    assert_eq!(
        back.status,
        Status::QrWaiting,
        "unlinked: it waits for someone to ask for a code"
    );
    assert!(back.revision > before.revision, "revisions go on growing");
    assert_eq!(
        (daemon.backend.started(), daemon.backend.open()),
        (1, 0),
        "the crashed actor's connection is closed and none is opened unasked"
    );

    let getting = daemon.spawn_get(&alice, fresh());
    let code = daemon.backend.connection(2).await.qr(1, 6, FIRST_TTL);
    let regenerated = getting.await.unwrap().unwrap().qr.unwrap();
    assert_eq!(regenerated.code, code);
    assert_eq!(regenerated.generation, 2, "generations go on growing across a crash");
}

#[tokio::test(start_paused = true)]
async fn a_session_crashing_past_its_budget_is_failed_with_the_cause_until_connect_starts_it_afresh() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    daemon.create_paired(&alice, 1).await;
    for crash in 1..CRASH_BUDGET {
        daemon.crash(&alice, crash == 1).await;
        daemon.now_until(&alice, CRASH_WINDOW, is(Status::QrWaiting)).await;
    }

    daemon.crash(&alice, false).await;
    let failed = daemon.now_until(&alice, CRASH_WINDOW, is(Status::Failed)).await;
    assert!(
        failed.last_error.contains("crashed 3 times within 1m"),
        "{}",
        failed.last_error
    );
    assert!(
        failed.last_error.contains("session crashed on request"),
        "{}",
        failed.last_error
    );
    tokio::time::advance(CRASH_WINDOW * 2).await;
    assert_eq!(
        daemon.now(&alice).await.unwrap().status,
        Status::Failed,
        "it stays FAILED"
    );

    let (sessions, id) = (daemon.sessions.clone(), alice.clone());
    let connecting = tokio::spawn(async move { sessions.connect(id, fresh()).await });
    let code = daemon.backend.connection(2).await.qr(1, 6, FIRST_TTL);
    let view = connecting.await.unwrap().unwrap();
    assert_eq!((view.status, view.qr.unwrap().code), (Status::QrWaiting, code));
    assert!(view.last_error.is_empty(), "{}", view.last_error);

    daemon.crash(&alice, false).await;
    daemon.now_until(&alice, CRASH_WINDOW, is(Status::QrWaiting)).await; // its budget is whole again
}

#[tokio::test(start_paused = true)]
async fn deleting_a_session_restarting_after_a_crash_finishes_once_and_leaves_nothing_behind() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    daemon.create_paired(&alice, 1).await;
    let folder = daemon.ctx.data.session_dir(&alice);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("credentials"), b"keys").unwrap();
    let (_, mut changes) = daemon.sessions.watch_all().await.unwrap();

    daemon.crash(&alice, false).await;
    let deletes = start_together(vec![daemon.delete_call(&alice), daemon.delete_call(&alice)]);
    for delete in deletes {
        delete.await.unwrap().expect("both callers hear the one delete finish");
    }

    let (listed, _) = daemon.sessions.list(None, 10, None).await.unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    assert_eq!(daemon.ctx.store.load(&alice).await.unwrap(), None, "the record is gone");
    assert!(!folder.exists(), "the folder is gone");
    let mut deleted = 0;
    while let Ok(change) = changes.try_recv() {
        deleted += usize::from(change.deleted);
    }
    assert_eq!(deleted, 1, "deleted once");

    tokio::time::advance(CRASH_WINDOW).await;
    let error = daemon.now(&alice).await.unwrap_err();
    assert!(
        matches!(error, SessionError::NotFound(_)),
        "the pending restart is cancelled: {error:?}"
    );
    assert_eq!(daemon.backend.started(), 1, "nothing started it again");
}
