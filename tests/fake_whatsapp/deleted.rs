//! DeleteSession racing WhatsApp's deliveries, on the real backend against the fake
//! (issue 23 item 3): while the log cannot write, one message's commit is already
//! waiting and the phone sends another as the delete runs; once the log writes
//! again, the deleted session's past is gone and nothing of it comes back after its
//! `deleted` event, neither the message that waited nor one that raced the delete.

use std::time::Duration;

use wa_sessiond::proto::{
    event::Body, event_service_client::EventServiceClient, DeleteSessionRequest, StreamEventsRequest,
};

use super::{common::*, pair, Fake, STEP_BOUND};

/// The linked account's phone.
const OWNER: &str = "15550001111";

/// A phone that writes to it.
const FRIEND: &str = "15550003333";

/// How long each step holds: well past a delivery to the device (milliseconds).
const HELD: Duration = Duration::from_millis(1000);

/// Every event the log holds for `session`, read until it has been quiet a while.
async fn events_of(daemon: &Daemon, session: &str) -> Vec<Option<Body>> {
    let mut client = EventServiceClient::new(daemon.channel().await);
    let request = StreamEventsRequest {
        from_beginning: true,
        ..Default::default()
    };
    let mut stream = client.stream_events(request).await.unwrap().into_inner();
    let mut bodies = Vec::new();
    while let Ok(Ok(Some(event))) = tokio::time::timeout(Duration::from_millis(500), stream.message()).await {
        if event.session_id == session {
            bodies.push(event.body);
        }
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_racing_deliveries_leaves_only_the_deleted_event_and_nothing_after_it() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    pair(&daemon, &fake, "dora", OWNER).await;
    fake.send(OWNER, FRIEND, "logged before").await;
    fake.wait_pending(OWNER, 0).await;

    // The log cannot write (another writer holds it): a message's commit waits.
    let blocker = rusqlite::Connection::open(dir.path().join("events.db")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    fake.send(OWNER, FRIEND, "waiting to be committed").await;
    stays_false(HELD, "a message acked before it is on disk", || async {
        fake.pending(OWNER).await == 0
    })
    .await;

    // The delete starts while that commit waits (it answers once the session is
    // gone from the session list; its events go through the log); the phone
    // writes again meanwhile.
    let mut sessions = daemon.sessions().await;
    let delete = tokio::spawn(async move {
        let request = DeleteSessionRequest {
            session_id: "dora".into(),
        };
        sessions.delete_session(request).await
    });
    let racing = fake_whatsapp::proto::SendMessageRequest {
        to_phone_number: OWNER.into(),
        from_phone_number: FRIEND.into(),
        text: "sent while the delete runs".into(),
        ..Default::default()
    };
    // The device may already be unlinked (the fake then has no one to send it to).
    if let Err(refused) = fake.control.clone().send_message(racing).await {
        assert_eq!(refused.code(), tonic::Code::NotFound, "{refused}");
    }
    blocker.execute_batch("COMMIT").unwrap();
    let deleted = tokio::time::timeout(STEP_BOUND, delete).await;
    deleted.expect("the delete answers").unwrap().expect("deleted");
    wait_for(STEP_BOUND, "the deleted event in the log", || async {
        let bodies = events_of(&daemon, "dora").await;
        bodies
            .iter()
            .any(|body| matches!(body, Some(Body::Status(status)) if status.deleted))
            .then_some(())
    })
    .await;

    let bodies = events_of(&daemon, "dora").await;
    match bodies.as_slice() {
        [Some(Body::Status(status))] => assert!(status.deleted, "{status:?}"),
        other => panic!("only the deleted event is left, and nothing came after it: {other:?}"),
    }
    daemon.stop().await;
    fake.running.stop().await;
}
