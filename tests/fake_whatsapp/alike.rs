//! Where the emulator and the real backend should behave alike, one test body
//! each, run twice: `alike::emulator::NAME` (the in-process emulator, through
//! `EmulatorService`) and `alike::real::NAME` (the real backend against the
//! protocol-level fake, through its control API). Pairing through the 515 restart
//! and back after a daemon restart; the phone logging the device out; a replaced
//! stream; a dropped socket; and a QR batch that runs out.

use std::time::Duration;

use tonic::Code;
use wa_sessiond::proto::{DisconnectReason, RefreshQrRequest, Session, SessionStatus, WatchSessionRequest};

use super::{
    common::*,
    next_change,
    phone::{EmulatorPhone, FakePhone, Linked, Phone},
    wait_until, STEP_BOUND,
};

/// How long "no reconnect" is watched for.
const NO_RETRY_SPAN: Duration = Duration::from_secs(3);

/// Runs each body as two tests, one per backend; `refs` is the codes per batch
/// (`None`: each world's usual).
macro_rules! alike {
    ($($name:ident($refs:expr) => $body:ident;)*) => {
        mod emulator {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    $body(&EmulatorPhone::start($refs).await).await;
                }
            )*
        }
        mod real {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    $body(&FakePhone::start($refs).await).await;
                }
            )*
        }
    };
}

alike! {
    a_scanned_code_pairs_restarts_on_515_and_connects_then_a_restart_reconnects_without_a_qr(None) => pairing_and_restart;
    the_phone_logging_the_device_out_leaves_it_logged_out_until_asked_then_it_pairs_again(None) => logged_out_by_the_phone;
    a_replaced_stream_stays_disconnected_without_a_reconnect_loop(None) => replaced_stream;
    a_dropped_socket_reconnects_to_connected(None) => dropped_socket;
}

/// Exhaustion, run by hand: the real backend's fresh batch also shows the same
/// stored device.
mod exhaustion {
    use super::*;

    #[tokio::test]
    async fn emulator_an_exhausted_batch_waits_without_a_connection_and_the_next_get_starts_exactly_one() {
        exhausted_batch(&EmulatorPhone::start(None).await).await;
    }

    /// With one ref per connection the batch runs out when the client's own timer
    /// for its first code does: 60 s of real time, which the server cannot shorten.
    #[tokio::test]
    async fn real_an_exhausted_batch_waits_without_a_connection_and_the_next_get_starts_exactly_one_on_the_same_store()
    {
        let phone = FakePhone::start(Some(1)).await;
        let (lazy, fresh) = exhausted_batch(&phone).await;
        assert!(phone.credentials("erin").exists());
        let device = |s: &Session| {
            let code = s.qr.as_ref().unwrap().code.clone();
            let fields: Vec<String> = code.split(',').map(str::to_owned).collect();
            assert!(fields.len() >= 4, "ref,noise key,identity key,adv secret");
            fields
        };
        let (before, after) = (device(&lazy), device(&fresh));
        assert_ne!(before[0], after[0], "a fresh ref");
        assert_eq!(before[1..3], after[1..3], "the same device keys: the same store");
    }
}

/// A watch of `id` from now on.
async fn watch(daemon: &Daemon, id: &str) -> tonic::Streaming<Session> {
    let request = WatchSessionRequest {
        session_id: id.into(),
        ..Default::default()
    };
    daemon
        .sessions()
        .await
        .watch_session(request)
        .await
        .unwrap()
        .into_inner()
}

/// Creates `id`, scans its first code with the phone `number` and waits for
/// CONNECTED.
async fn link(phone: &impl Phone, daemon: &Daemon, id: &str, number: &str) -> Session {
    let created = daemon.sessions().await.create_session(create(id)).await.unwrap();
    let code = created.into_inner().qr.expect("a first qr code").code;
    let linked: Linked = phone.scan(daemon, id, &code, number).await;
    let session = wait_until(daemon, id, "CONNECTED", |s| status(s) == SessionStatus::Connected).await;
    assert_eq!(session.jid, linked.jid, "the device the phone linked");
    assert!(session.jid.starts_with(&format!("{number}:")), "{}", session.jid);
    session
}

async fn pairing_and_restart(phone: &impl Phone) {
    let daemon = phone.daemon().await;
    let mut client = daemon.sessions().await;

    let created = client.create_session(create("alice")).await.unwrap().into_inner();
    assert_eq!(status(&created), SessionStatus::QrWaiting);
    let qr = created.qr.clone().expect("a first qr code");
    assert_eq!((qr.index, qr.count, qr.generation), (1, phone.refs(), 1));
    let (ttl, first) = (qr_ttl(&created), phone.first_ttl());
    assert!(
        ttl > first - first / 12 && ttl <= first,
        "the first code is valid about {first:?}: {ttl:?}"
    );
    assert!(qr_is_valid_now(&created));

    let mut stream = watch(&daemon, "alice").await;
    let scanned = phone.scan(&daemon, "alice", &qr.code, "15550001111").await;
    assert_eq!(scanned.phone_number, "15550001111");
    assert!(
        scanned.jid.starts_with("15550001111:") && scanned.jid.ends_with("@s.whatsapp.net"),
        "{}",
        scanned.jid
    );
    let mut seen = vec![next(&mut stream).await.unwrap()];
    while status(seen.last().unwrap()) != SessionStatus::Connected {
        seen.push(next_change(&mut stream).await);
    }
    let order: Vec<_> = seen
        .iter()
        .map(status)
        .filter(|s| {
            matches!(
                s,
                SessionStatus::Pairing | SessionStatus::Restarting | SessionStatus::Connected
            )
        })
        .collect();
    let wanted = [
        SessionStatus::Pairing,
        SessionStatus::Restarting,
        SessionStatus::Connected,
    ];
    assert_eq!(order, wanted, "PAIRING, then RESTARTING, then CONNECTED: {seen:?}");
    let connected = seen.last().unwrap().clone();
    assert_eq!(connected.restart_count, 1, "the 515 restart is counted");
    assert_eq!(connected.phone_number, "15550001111");
    assert_eq!(connected.jid, scanned.jid, "the device the phone linked");
    assert_eq!(connected.push_name, phone.push_name("15550001111"));
    assert!(connected.qr.is_none());
    assert!(connected.connected_at.is_some());
    let (started, _) = phone.connections().await;
    assert_eq!(started, 2, "one pairing connection, one after the 515");
    let refresh = RefreshQrRequest {
        session_id: "alice".into(),
        ..Default::default()
    };
    let refused = client.refresh_qr(refresh).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);

    // An unlinked session beside it, to see it wait after the restart.
    client.create_session(create("dan")).await.unwrap();
    daemon.stop().await;
    let (before, _) = phone.connections().await;
    back_after_a_restart(phone, &connected, before).await;
}

/// After a daemon restart: `connected` ("alice") reconnects with no qr code over
/// exactly one new connection (`before`: started until then), and the unlinked
/// "dan" waits until asked, then pairs again.
async fn back_after_a_restart(phone: &impl Phone, connected: &Session, before: u64) {
    let daemon = phone.daemon().await;
    let mut client = daemon.sessions().await;
    let mut stream = watch(&daemon, "alice").await;
    let back = loop {
        let change = next_change(&mut stream).await;
        assert!(change.qr.is_none(), "a linked session shows no qr code");
        if status(&change) == SessionStatus::Connected {
            break change;
        }
    };
    assert_eq!(back.jid, connected.jid, "the same linked device, no new qr");
    assert!(
        back.revision > connected.revision,
        "revisions keep growing across restarts"
    );
    let (after, open) = phone.connections().await;
    assert_eq!((after - before, open), (1, 1), "exactly one new connection, open");

    let unpaired = client.get_session(get("dan")).await.unwrap().into_inner();
    assert_eq!(status(&unpaired), SessionStatus::QrWaiting);
    assert!(unpaired.qr.is_some(), "an unpaired session pairs again on request");
    daemon.stop().await;
}

/// Asserts no new connection starts for `NO_RETRY_SPAN`.
async fn no_new_connection(phone: &impl Phone, what: &str) {
    let (started, _) = phone.connections().await;
    stays_false(NO_RETRY_SPAN, what, || async { phone.connections().await.0 != started }).await;
}

async fn logged_out_by_the_phone(phone: &impl Phone) {
    let daemon = phone.daemon().await;
    let mut client = daemon.sessions().await;
    link(phone, &daemon, "bob", "15550002222").await;
    assert!(phone.credentials("bob").exists());

    assert_eq!(phone.log_out(&daemon, "bob", "15550002222").await, 1);
    let out = wait_until(&daemon, "bob", "LOGGED_OUT", |s| status(s) == SessionStatus::LoggedOut).await;
    assert_eq!(out.disconnect_reason, DisconnectReason::LoggedOut as i32);
    assert!(out.qr.is_none());
    assert!(out.jid.is_empty());
    no_new_connection(phone, "no reconnect after a logout (401)").await;
    assert!(!phone.credentials("bob").exists(), "the credentials are wiped");

    let fresh = client.get_session(get("bob")).await.unwrap().into_inner();
    assert_eq!(status(&fresh), SessionStatus::QrWaiting);
    assert!(fresh.qr.is_some());
    assert_eq!(
        fresh.disconnect_reason,
        DisconnectReason::LoggedOut as i32,
        "the reason stays visible"
    );
    daemon.stop().await;
}

async fn replaced_stream(phone: &impl Phone) {
    let daemon = phone.daemon().await;
    let mut client = daemon.sessions().await;
    link(phone, &daemon, "carol", "15550003333").await;

    assert_eq!(phone.replace(&daemon, "carol", "15550003333").await, 1);
    let replaced = wait_until(&daemon, "carol", "DISCONNECTED", |s| {
        status(s) == SessionStatus::Disconnected
    })
    .await;
    assert_eq!(replaced.disconnect_reason, DisconnectReason::Replaced as i32);
    no_new_connection(phone, "no blind retry after a replaced stream (440)").await;
    let still = client.get_session(get("carol")).await.unwrap().into_inner();
    assert_eq!(status(&still), SessionStatus::Disconnected);
    daemon.stop().await;
}

async fn dropped_socket(phone: &impl Phone) {
    let daemon = phone.daemon().await;
    let linked = link(phone, &daemon, "dave", "15550004444").await;
    let (started, _) = phone.connections().await;
    let mut stream = watch(&daemon, "dave").await;

    assert_eq!(phone.drop_socket(&daemon, "dave", "15550004444").await, 1);
    let mut seen = vec![next(&mut stream).await.unwrap()];
    let back = loop {
        let change = next_change(&mut stream).await;
        if status(&change) == SessionStatus::Connected && change.restart_count > linked.restart_count {
            break change;
        }
        seen.push(change);
    };
    let lost = seen.iter().find(|s| status(s) == SessionStatus::Reconnecting);
    let lost = lost.unwrap_or_else(|| panic!("RECONNECTING before CONNECTED: {seen:?}"));
    assert_eq!(lost.disconnect_reason, DisconnectReason::ConnectionLost as i32);
    assert_eq!(back.jid, linked.jid);
    let (after, open) = phone.connections().await;
    assert_eq!((after - started, open), (1, 1), "one reconnect, open");
    daemon.stop().await;
}

/// Lets the batch run out and gets a fresh one; returns the exhausted state and
/// the fresh one.
async fn exhausted_batch(phone: &impl Phone) -> (Session, Session) {
    let daemon = phone.daemon().await;
    let mut client = daemon.sessions().await;
    client.create_session(create("erin")).await.unwrap();

    let lazy = wait_for(phone.batch_life() + STEP_BOUND, "the batch to run out", || {
        let mut client = client.clone();
        async move {
            let session = client.get_session(peek("erin")).await.unwrap().into_inner();
            (session.disconnect_reason == DisconnectReason::QrExhausted as i32).then_some(session)
        }
    })
    .await;
    assert_eq!(status(&lazy), SessionStatus::QrWaiting);
    let last = lazy.qr.as_ref().expect("the last code stays");
    assert_eq!((last.index, last.generation), (phone.refs(), 1));
    assert!(!qr_is_valid_now(&lazy), "the last code stays, expired");
    wait_for(STEP_BOUND, "the pairing connection to close", || async {
        (phone.connections().await.1 == 0).then_some(())
    })
    .await;
    let (started, _) = phone.connections().await;
    assert_eq!(started, 1, "nobody asked: no new connection");

    let fresh = client.get_session(get("erin")).await.unwrap().into_inner();
    assert_eq!(status(&fresh), SessionStatus::QrWaiting);
    let qr = fresh.qr.as_ref().expect("a fresh code");
    assert_eq!((qr.generation, qr.index), (2, 1));
    assert!(qr_is_valid_now(&fresh));
    assert_eq!(phone.connections().await, (2, 1), "exactly one new connection");
    daemon.stop().await;
    (lazy, fresh)
}
