//! Nothing WhatsApp delivers is lost on the real backend, against the fake: a
//! message whose first commit the event log refused is logged within the retry
//! bound on the same connection; logging out a session that is not connected
//! logs what WhatsApp held for it before the device is unlinked; and a logout
//! whose unlink WhatsApp refuses, or that could not ask WhatsApp at all, says so
//! instead of reporting a clean logout.

use std::time::Duration;

use fake_whatsapp::proto::{FailConnectsRequest, RefuseUnlinksRequest, ScanQrRequest};
use tonic::transport::Channel;
use wa_sessiond::proto::{
    session_service_client::SessionServiceClient, DisconnectSessionRequest, EventKind, LogoutSessionRequest, Session,
    SessionStatus,
};

use super::{
    common::{
        fake::{logged_messages, until_logged},
        process::Process,
        *,
    },
    pair, wait_until, Fake, STEP_BOUND,
};

/// The linked account's phone.
const OWNER: &str = "15550001111";

/// A phone that writes to it.
const FRIEND: &str = "15550002222";

/// The README's bound on a refused commit once the log takes writes again: the
/// longest wait between two tries (5 s), with room for the commit and the stream.
const RETRY_BOUND: Duration = Duration::from_secs(8);

/// A trigger in the daemon's event log refusing every message row, as a full
/// disk would; dropped again by [`RefusedMessages::lift`].
struct RefusedMessages(rusqlite::Connection);

impl RefusedMessages {
    fn start(data_dir: &std::path::Path) -> Self {
        let conn = rusqlite::Connection::open(data_dir.join("events.db")).unwrap();
        conn.busy_timeout(STEP_BOUND).unwrap();
        let kind = EventKind::Message as i32;
        conn.execute_batch(&format!(
            "CREATE TRIGGER refuse_messages BEFORE INSERT ON events WHEN NEW.kind = {kind}
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ))
        .unwrap();
        Self(conn)
    }

    fn lift(self) {
        self.0.execute_batch("DROP TRIGGER refuse_messages").unwrap();
    }
}

#[tokio::test]
async fn a_message_whose_first_commit_failed_is_logged_within_the_retry_bound_without_a_reconnect() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    pair(&daemon, &fake, "ivy", OWNER).await;
    let (connections_before, _) = fake.connections().await;
    let mut messages = logged_messages(&daemon, "ivy").await;

    let refused = RefusedMessages::start(dir.path());
    let id = fake.send(OWNER, FRIEND, "kept although its first commit failed").await;
    wait_for(STEP_BOUND, "the log to refuse the message's commit", || async {
        let failures = daemon
            .scrape()
            .await
            .value("wa_sessiond_events_inbound_commit_failures_total", &[]);
        (failures >= 1.0).then_some(())
    })
    .await;
    assert_eq!(fake.pending(OWNER).await, 1, "not acked while it is not on disk");
    refused.lift();

    let got = until_logged(&mut messages, std::slice::from_ref(&id), RETRY_BOUND).await;
    assert_eq!(got.iter().filter(|m| m.id == id).count(), 1, "logged once");
    fake.wait_pending(OWNER, 0).await;
    let (connections_after, open) = fake.connections().await;
    assert_eq!(
        (connections_after, open),
        (connections_before, 1),
        "the same connection: nobody reconnected"
    );
    daemon.stop().await;
    fake.running.stop().await;
}

/// Pairs `id` with `phone` and disconnects it on request: linked, not connected.
async fn linked_but_disconnected(daemon: &Daemon, fake: &Fake, id: &str, phone: &str) {
    pair(daemon, fake, id, phone).await;
    let request = DisconnectSessionRequest { session_id: id.into() };
    daemon.sessions().await.disconnect_session(request).await.unwrap();
    wait_until(daemon, id, "DISCONNECTED", |s| status(s) == SessionStatus::Disconnected).await;
    fake.wait_open(0).await;
}

async fn logout(daemon: &Daemon, id: &str) -> Session {
    let request = LogoutSessionRequest { session_id: id.into() };
    let answer = tokio::time::timeout(STEP_BOUND * 2, daemon.sessions().await.logout_session(request)).await;
    answer
        .expect("the logout answers within the bound")
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn logging_out_a_session_that_is_not_connected_logs_every_message_whatsapp_held_for_it() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    linked_but_disconnected(&daemon, &fake, "jade", OWNER).await;
    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        ids.push(fake.send(OWNER, FRIEND, text).await);
    }
    assert_eq!(fake.pending(OWNER).await, 3, "held while the session is away");

    let session = logout(&daemon, "jade").await;
    assert_eq!(status(&session), SessionStatus::LoggedOut);
    assert_eq!(session.last_error, "", "a clean logout");

    let mut messages = logged_messages(&daemon, "jade").await;
    let got = until_logged(&mut messages, &ids, STEP_BOUND).await;
    let texts: Vec<_> = got.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["one", "two", "three"], "each logged once, in order");
    assert!(got.iter().all(|m| m.offline), "from the offline queue: {got:?}");
    assert_eq!(fake.pending(OWNER).await, 0);
    daemon.stop().await;
    fake.running.stop().await;
}

/// The logout of a session (connected or not) whose unlink the fake refuses.
async fn refused_unlink_is_reported(connected: bool) {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    if connected {
        pair(&daemon, &fake, "kim", OWNER).await;
    } else {
        linked_but_disconnected(&daemon, &fake, "kim", OWNER).await;
    }
    let refuse = RefuseUnlinksRequest { count: 1 };
    fake.control.clone().refuse_unlinks(refuse).await.unwrap();

    let session = logout(&daemon, "kim").await;
    assert_eq!(
        status(&session),
        SessionStatus::LoggedOut,
        "logged out here all the same"
    );
    assert!(
        session.last_error.contains("whatsapp refused to unlink the device")
            && session.last_error.contains("remove the device under Linked devices"),
        "the answer says the unlink failed: {:?}",
        session.last_error
    );
    let still = fake.phone_logout(OWNER).await;
    assert_eq!(still, 1, "whatsapp still lists the device: the answer was true");
    daemon.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn a_logout_whose_unlink_whatsapp_refuses_on_the_open_connection_says_so() {
    refused_unlink_is_reported(true).await;
}

#[tokio::test]
async fn a_logout_whose_unlink_whatsapp_refuses_from_the_stored_credentials_says_so() {
    refused_unlink_is_reported(false).await;
}

/// Waits (bounded) until `id`, read through `client`, is `wanted`.
async fn wait_status(client: &SessionServiceClient<Channel>, id: &str, wanted: SessionStatus) {
    let what = format!("{id} {}", wanted.as_str_name());
    wait_for(STEP_BOUND, &what, || {
        let mut client = client.clone();
        async move {
            let session = client.get_session(peek(id)).await.ok()?.into_inner();
            (status(&session) == wanted).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn a_logout_that_could_not_reach_whatsapp_to_unlink_says_so_and_still_logs_out_here() {
    // The binary, so its warn line can be read too.
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Process::start_real(dir.path(), &fake.running.url(), &[]).await;
    let mut client = daemon.sessions().await;
    let created = client.create_session(create("lou")).await.unwrap().into_inner();
    let scan = ScanQrRequest {
        code: created.qr.expect("a first qr code").code,
        phone_number: OWNER.into(),
    };
    fake.control.clone().scan_qr(scan).await.unwrap();
    wait_status(&client, "lou", SessionStatus::Connected).await;
    let stop = DisconnectSessionRequest {
        session_id: "lou".into(),
    };
    client.disconnect_session(stop).await.unwrap();
    wait_status(&client, "lou", SessionStatus::Disconnected).await;
    fake.wait_open(0).await;
    // Every connection is refused before its handshake: the stored device cannot
    // log in, so the unlink request is never sent.
    let refuse = FailConnectsRequest { count: 1_000 };
    fake.control.clone().fail_connects(refuse).await.unwrap();

    let request = LogoutSessionRequest {
        session_id: "lou".into(),
    };
    let answer = tokio::time::timeout(STEP_BOUND * 2, client.logout_session(request)).await;
    let session = answer
        .expect("the logout answers within the bound")
        .unwrap()
        .into_inner();
    assert_eq!(
        status(&session),
        SessionStatus::LoggedOut,
        "logged out here all the same"
    );
    for said in [
        "logged out here, but whatsapp could not be told",
        "whatsapp was not asked to unlink it",
        "remove the device under Linked devices",
    ] {
        assert!(
            session.last_error.contains(said),
            "the answer says the unlink was not sent ({said}): {:?}",
            session.last_error
        );
    }
    let read = client.get_session(peek("lou")).await.unwrap().into_inner();
    assert_eq!(status(&read), SessionStatus::LoggedOut);
    assert_eq!(read.last_error, session.last_error, "last_error keeps it");
    assert!(
        !dir.path().join("sessions/lou/whatsapp.db").exists(),
        "its credentials are wiped either way"
    );
    let warned =
        daemon.log().await.into_iter().find(|line| {
            line.contains("WARN") && line.contains("logged out here, but whatsapp did not unlink the device")
        });
    let warned = warned.expect("a warn line says the device was not unlinked");
    assert!(warned.contains("lou") && warned.contains("was not asked"), "{warned}");

    let open = FailConnectsRequest { count: 0 };
    fake.control.clone().fail_connects(open).await.unwrap();
    let still = fake.phone_logout(OWNER).await;
    assert_eq!(still, 1, "whatsapp still lists the device: the answer was true");
    drop(daemon);
    fake.running.stop().await;
}
