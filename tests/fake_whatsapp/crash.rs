//! The daemon binary, real backend against the fake, killed with -9 between the
//! phone's scan and CONNECTED; then restarted on the same data dir. Once PAIRING
//! was shown the pairing is kept: the session reconnects as the device the phone
//! linked. Killed at once after the scan (anywhere in the pairing), it is CONNECTED
//! or pairs again with a fresh code that links it. Never stuck.

use fake_whatsapp::proto::{FailConnectsRequest, ScanQrRequest};
use tonic::transport::Channel;
use wa_sessiond::proto::{session_service_client::SessionServiceClient, Session, SessionStatus};

use super::{common::process::Process, common::*, Fake, STEP_BOUND};

/// Refusals enough to hold every reconnect back until the kill.
const HOLD_BACK: u32 = 1_000;

/// The phone that scans.
const PHONE: &str = "15550009999";

/// Reads the session until `pred` holds, bounded by `STEP_BOUND`.
async fn wait_for_session(
    client: &SessionServiceClient<Channel>,
    id: &str,
    what: &str,
    pred: impl Fn(&Session) -> bool,
) -> Session {
    wait_for(STEP_BOUND, what, || {
        let (mut client, pred) = (client.clone(), &pred);
        async move {
            let session = client.get_session(peek(id)).await.ok()?.into_inner();
            pred(&session).then_some(session)
        }
    })
    .await
}

/// A daemon process on `dir` with a session "alice" whose first code the phone
/// scanned; every connection after the pairing one is refused. Returns the
/// daemon and the JID the phone linked.
async fn scanned(fake: &Fake, dir: &std::path::Path) -> (Process, String) {
    let daemon = Process::start_real(dir, &fake.running.url(), &[]).await;
    let created = daemon.sessions().await.create_session(create("alice")).await.unwrap();
    let code = created.into_inner().qr.expect("a first qr code").code;
    // The pairing connection is open: refuse the ones after it.
    let mut control = fake.control.clone();
    let hold = FailConnectsRequest { count: HOLD_BACK };
    control.fail_connects(hold).await.unwrap();
    let scan = ScanQrRequest {
        code,
        phone_number: PHONE.into(),
    };
    let linked = control.scan_qr(scan).await.unwrap().into_inner();
    (daemon, linked.jid)
}

/// Lets connections through again and restarts the daemon on `dir`.
async fn restarted(fake: &Fake, dir: &std::path::Path) -> (Process, SessionServiceClient<Channel>) {
    let open = FailConnectsRequest { count: 0 };
    fake.control.clone().fail_connects(open).await.unwrap();
    let daemon = Process::start_real(dir, &fake.running.url(), &[]).await;
    let client = daemon.sessions().await;
    (daemon, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_with_9_after_pairing_showed_the_session_reconnects_as_the_linked_device() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (daemon, jid) = scanned(&fake, dir.path()).await;
    let (pairing_started, _) = fake.connections().await;
    let client = daemon.sessions().await;
    let held = wait_for_session(&client, "alice", "the reconnect after the 515 held back", |s| {
        matches!(status(s), SessionStatus::Restarting | SessionStatus::Reconnecting) && s.restart_count >= 1
    })
    .await;
    wait_for(STEP_BOUND, "a refused reconnect", || async {
        (fake.connections().await.0 > pairing_started).then_some(())
    })
    .await;
    assert_eq!(held.jid, jid, "the pairing was reported");
    assert!(held.qr.is_none());
    daemon.kill9();

    let (_daemon, client) = restarted(&fake, dir.path()).await;
    let back = wait_for_session(&client, "alice", "CONNECTED", |s| {
        assert!(s.qr.is_none(), "a paired session shows no qr code: {s:?}");
        status(s) == SessionStatus::Connected
    })
    .await;
    assert_eq!((back.jid.as_str(), back.phone_number.as_str()), (jid.as_str(), PHONE));
    assert_eq!(fake.connections().await.1, 1, "one connection, online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_with_9_right_after_the_scan_the_session_connects_or_pairs_again_with_a_fresh_code() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (daemon, jid) = scanned(&fake, dir.path()).await;
    daemon.kill9();

    let (_daemon, client) = restarted(&fake, dir.path()).await;
    // Linked: CONNECTING, RECONNECTING, then CONNECTED. Not linked (the pairing
    // was lost, or WhatsApp never heard the device's answer and refuses its
    // login): QR_WAITING or LOGGED_OUT at rest, until someone asks for a code.
    let settled = wait_for_session(&client, "alice", "CONNECTED, or at rest to pair again", |s| {
        let at_rest = matches!(status(s), SessionStatus::QrWaiting | SessionStatus::LoggedOut);
        status(s) == SessionStatus::Connected || at_rest
    })
    .await;
    let connected = if status(&settled) == SessionStatus::Connected {
        assert_eq!(settled.jid, jid, "the device linked before the kill");
        settled
    } else {
        let fresh = client.clone().get_session(get("alice")).await.unwrap().into_inner();
        assert_eq!(status(&fresh), SessionStatus::QrWaiting);
        assert!(qr_is_valid_now(&fresh), "a fresh code");
        let scan = ScanQrRequest {
            code: fresh.qr.unwrap().code,
            phone_number: PHONE.into(),
        };
        fake.control.clone().scan_qr(scan).await.unwrap();
        wait_for_session(&client, "alice", "CONNECTED after pairing again", |s| {
            status(s) == SessionStatus::Connected
        })
        .await
    };
    assert_eq!(connected.phone_number, PHONE);
    assert!(connected.qr.is_none());
    assert_eq!(fake.connections().await.1, 1, "one connection, online");
}
