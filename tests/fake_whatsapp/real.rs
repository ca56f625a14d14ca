//! The daemon's real backend (the unmodified whatsapp-rust client) against the
//! protocol-level fake WhatsApp server, over real gRPC and offline: pairing by QR
//! code through the 515 restart, reconnecting from stored credentials after a
//! daemon restart, and what the server can do to a linked device (log it out,
//! replace its stream, drop its socket).

mod common;

use std::time::Duration;

use common::*;
use fake_whatsapp::proto::{
    fake_whatsapp_client::FakeWhatsappClient, CountConnectionsRequest, DropConnectionsRequest, EnterPairingCodeRequest,
    FailConnectsRequest, ListReceivedMessagesRequest, LogoutDeviceRequest, ReplaceStreamRequest, ScanQrRequest,
};
use tonic::transport::Channel;
use wa_sessiond::{
    config::{BackendKind, Config, WhatsappUrl},
    proto::{
        DisconnectReason, LogoutSessionRequest, RequestPairingCodeRequest, SendTextMessageRequest, Session,
        SessionStatus, WatchSessionRequest,
    },
};

/// The bound on each step that involves the client library (a build of a
/// client, a handshake, a login).
const STEP_BOUND: Duration = Duration::from_secs(30);

/// The name the fake's phones show.
const PUSH_NAME: &str = "Fake Phone";

/// A fake WhatsApp on loopback ports, and its control API.
struct Fake {
    /// The server.
    running: fake_whatsapp::Running,
    /// Its controls.
    control: FakeWhatsappClient<Channel>,
}

impl Fake {
    async fn start() -> Self {
        let running = fake_whatsapp::Running::start(fake_whatsapp::Options::default())
            .await
            .expect("the fake starts");
        let control = FakeWhatsappClient::connect(running.control_endpoint())
            .await
            .expect("the fake's control api answers");
        Self { running, control }
    }

    /// The daemon's config tweak: the real backend, dialing this fake.
    fn wire(&self) -> impl FnOnce(&mut Config) {
        let url = WhatsappUrl::parse(&self.running.url()).unwrap();
        move |config| {
            config.backend = BackendKind::Whatsapp;
            config.whatsapp_url = url;
            config.qr_timeout = STEP_BOUND;
        }
    }

    /// Connections the fake accepted so far, and open now.
    async fn connections(&self) -> (u64, u64) {
        let counted = self.control.clone().count_connections(CountConnectionsRequest {}).await;
        let counted = counted.unwrap().into_inner();
        (counted.started, counted.open)
    }
}

/// Waits (bounded by `STEP_BOUND`) until the session satisfies `pred`.
async fn wait_until(daemon: &Daemon, id: &str, what: &str, pred: impl Fn(&Session) -> bool) -> Session {
    let mut client = daemon.sessions().await;
    wait_for(STEP_BOUND, what, || {
        let mut client = client.clone();
        let pred = &pred;
        async move {
            let session = client.get_session(peek(id)).await.ok()?.into_inner();
            pred(&session).then_some(session)
        }
    })
    .await;
    client.get_session(peek(id)).await.unwrap().into_inner()
}

/// Creates `id`, scans its first code with `phone`'s phone and waits for CONNECTED.
async fn pair(daemon: &Daemon, fake: &Fake, id: &str, phone: &str) -> Session {
    let mut client = daemon.sessions().await;
    let created = client.create_session(create(id)).await.unwrap().into_inner();
    let scan = ScanQrRequest {
        code: created.qr.expect("a first qr code").code,
        phone_number: phone.into(),
    };
    fake.control.clone().scan_qr(scan).await.unwrap();
    wait_until(daemon, id, "CONNECTED", |s| status(s) == SessionStatus::Connected).await
}

#[tokio::test]
async fn a_scanned_code_pairs_restarts_on_515_and_connects_then_a_restart_reconnects_without_a_qr() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    let mut client = daemon.sessions().await;

    let created = client.create_session(create("alice")).await.unwrap().into_inner();
    assert_eq!(status(&created), SessionStatus::QrWaiting);
    let qr = created.qr.clone().expect("a first qr code");
    assert_eq!((qr.index, qr.count), (1, 6));
    let ttl = qr_ttl(&created);
    assert!(
        ttl > Duration::from_secs(55) && ttl <= Duration::from_secs(60),
        "the first code is valid about 60 s: {ttl:?}"
    );
    assert!(qr_is_valid_now(&created));

    let watch = WatchSessionRequest {
        session_id: "alice".into(),
        ..Default::default()
    };
    let mut stream = client.watch_session(watch).await.unwrap().into_inner();
    let scan = ScanQrRequest {
        code: qr.code,
        phone_number: "15550001111".into(),
    };
    let scanned = fake.control.clone().scan_qr(scan).await.unwrap().into_inner();
    assert_eq!(scanned.jid, "15550001111:1@s.whatsapp.net");

    let mut seen = vec![next(&mut stream).await.unwrap()];
    while status(seen.last().unwrap()) != SessionStatus::Connected {
        let change = tokio::time::timeout(STEP_BOUND, stream.message())
            .await
            .expect("a change within the bound")
            .unwrap()
            .expect("the stream goes on");
        seen.push(change);
    }
    let statuses: Vec<_> = seen.iter().map(status).collect();
    let position = |wanted| statuses.iter().position(|s| *s == wanted);
    let (pairing, restarting) = (position(SessionStatus::Pairing), position(SessionStatus::Restarting));
    assert!(
        pairing.is_some() && pairing < restarting,
        "PAIRING, then RESTARTING, then CONNECTED: {statuses:?}"
    );
    let connected = seen.last().unwrap();
    assert_eq!(connected.restart_count, 1);
    assert_eq!(connected.phone_number, "15550001111");
    assert_eq!(connected.jid, "15550001111:1@s.whatsapp.net");
    assert_eq!(connected.push_name, PUSH_NAME);
    assert!(connected.qr.is_none());
    let (started, _) = fake.connections().await;
    assert_eq!(started, 2, "one pairing connection, one after the 515");

    daemon.stop().await;
    let (before, _) = fake.connections().await;
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    let mut client = daemon.sessions().await;
    let mut stream = client
        .watch_session(WatchSessionRequest {
            session_id: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    loop {
        let change = tokio::time::timeout(STEP_BOUND, stream.message())
            .await
            .expect("a change within the bound")
            .unwrap()
            .expect("the stream goes on");
        assert!(change.qr.is_none(), "a linked session shows no qr code");
        if status(&change) == SessionStatus::Connected {
            assert_eq!(change.jid, "15550001111:1@s.whatsapp.net");
            break;
        }
    }
    let (after, open) = fake.connections().await;
    assert_eq!((after - before, open), (1, 1), "exactly one new connection, open");
    daemon.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn the_phone_logging_the_device_out_leaves_the_session_logged_out_for_good() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    pair(&daemon, &fake, "bob", "15550002222").await;

    let logout = LogoutDeviceRequest {
        phone_number: "15550002222".into(),
    };
    let removed = fake.control.clone().logout_device(logout).await.unwrap().into_inner();
    assert_eq!(removed.removed, 1);
    let session = wait_until(&daemon, "bob", "LOGGED_OUT", |s| status(s) == SessionStatus::LoggedOut).await;
    assert_eq!(session.disconnect_reason, DisconnectReason::LoggedOut as i32);
    assert!(session.qr.is_none());

    let (started, _) = fake.connections().await;
    stays_false(Duration::from_secs(3), "no reconnect after a logout", || async {
        fake.connections().await.0 != started
    })
    .await;
    assert!(
        !dir.path().join("sessions/bob/whatsapp.db").exists(),
        "the credentials are wiped"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_replaced_stream_stops_the_session_without_a_reconnect_loop() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    pair(&daemon, &fake, "carol", "15550003333").await;

    let replace = ReplaceStreamRequest {
        phone_number: "15550003333".into(),
    };
    let replaced = fake.control.clone().replace_stream(replace).await.unwrap().into_inner();
    assert_eq!(replaced.replaced, 1);
    let session = wait_until(&daemon, "carol", "DISCONNECTED", |s| {
        status(s) == SessionStatus::Disconnected
    })
    .await;
    assert_eq!(session.disconnect_reason, DisconnectReason::Replaced as i32);

    let (started, _) = fake.connections().await;
    stays_false(
        Duration::from_secs(3),
        "no reconnect after a replaced stream",
        || async { fake.connections().await.0 != started },
    )
    .await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_dropped_socket_reconnects_to_connected() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    let paired = pair(&daemon, &fake, "dave", "15550004444").await;
    let (started, _) = fake.connections().await;

    let drop = DropConnectionsRequest {
        phone_number: "15550004444".into(),
    };
    let dropped = fake.control.clone().drop_connections(drop).await.unwrap().into_inner();
    assert_eq!(dropped.dropped, 1);
    let session = wait_until(&daemon, "dave", "CONNECTED again", |s| {
        status(s) == SessionStatus::Connected && s.restart_count > paired.restart_count
    })
    .await;
    assert_eq!(session.jid, "15550004444:1@s.whatsapp.net");
    let (after, open) = fake.connections().await;
    assert_eq!((after - started, open), (1, 1), "one reconnect, open");
    daemon.stop().await;
}

#[tokio::test]
async fn a_sent_text_reaches_whatsapp_encrypted_and_the_fake_decrypts_it_for_the_right_jid() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    pair(&daemon, &fake, "erin", "15550005555").await;
    let mut client = daemon.sessions().await;

    let text = "hello from the real backend: ünïcödé ✓";
    let send = SendTextMessageRequest {
        session_id: "erin".into(),
        to: "+15559990000".into(),
        text: text.into(),
    };
    let sent = tokio::time::timeout(STEP_BOUND, client.send_text_message(send))
        .await
        .expect("the send answers within the bound")
        .unwrap()
        .into_inner();
    assert!(!sent.message_id.is_empty());

    let received = wait_for(STEP_BOUND, "the fake to decrypt the message", || {
        let (mut control, id) = (fake.control.clone(), sent.message_id.clone());
        async move {
            let listed = control.list_received_messages(ListReceivedMessagesRequest {}).await;
            let messages = listed.unwrap().into_inner().messages;
            messages.into_iter().find(|m| m.id == id)
        }
    })
    .await;
    assert_eq!(received.text, text);
    assert_eq!(received.to, "15559990000@s.whatsapp.net");
    assert_eq!(received.from_jid, "15550005555:1@s.whatsapp.net");
    daemon.stop().await;
}

#[tokio::test]
async fn logging_a_session_out_unlinks_the_device_at_whatsapp() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    pair(&daemon, &fake, "frank", "15550006666").await;
    let mut client = daemon.sessions().await;

    let logout = LogoutSessionRequest {
        session_id: "frank".into(),
    };
    let session = tokio::time::timeout(STEP_BOUND, client.logout_session(logout))
        .await
        .expect("the logout answers within the bound")
        .unwrap()
        .into_inner();
    assert_eq!(status(&session), SessionStatus::LoggedOut);

    let phone_side = LogoutDeviceRequest {
        phone_number: "15550006666".into(),
    };
    let left = fake
        .control
        .clone()
        .logout_device(phone_side)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(left.removed, 0, "whatsapp no longer lists the device");
    assert!(!dir.path().join("sessions/frank/whatsapp.db").exists());
    daemon.stop().await;
}

#[tokio::test]
async fn a_pairing_code_typed_on_the_phone_links_the_session() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    let mut client = daemon.sessions().await;
    client.create_session(create("gina")).await.unwrap();

    let request = RequestPairingCodeRequest {
        session_id: "gina".into(),
        phone_number: "+15550007777".into(),
    };
    let issued = tokio::time::timeout(STEP_BOUND, client.request_pairing_code(request))
        .await
        .expect("a pairing code within the bound")
        .unwrap()
        .into_inner();
    assert_eq!(issued.code.len(), 9, "shown as XXXX-XXXX: {}", issued.code);

    let typed = EnterPairingCodeRequest { code: issued.code };
    let linked = tokio::time::timeout(STEP_BOUND, fake.control.clone().enter_pairing_code(typed))
        .await
        .expect("the phone finishes within the bound")
        .unwrap()
        .into_inner();
    assert_eq!(linked.phone_number, "15550007777");
    let session = wait_until(&daemon, "gina", "CONNECTED", |s| status(s) == SessionStatus::Connected).await;
    assert_eq!(session.phone_number, "15550007777");
    assert_eq!(session.jid, linked.jid);
    assert_eq!(session.push_name, PUSH_NAME);
    daemon.stop().await;
}

#[tokio::test]
async fn refused_connects_are_retried_until_whatsapp_takes_the_device_back() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    pair(&daemon, &fake, "hank", "15550008888").await;
    let (started, _) = fake.connections().await;

    let mut control = fake.control.clone();
    control.fail_connects(FailConnectsRequest { count: 3 }).await.unwrap();
    let drop = DropConnectionsRequest {
        phone_number: "15550008888".into(),
    };
    control.drop_connections(drop).await.unwrap();
    wait_until(&daemon, "hank", "RECONNECTING", |s| {
        status(s) == SessionStatus::Reconnecting
    })
    .await;
    // When each attempt reaches the fake (polled every few milliseconds).
    let mut attempts = Vec::new();
    let deadline = tokio::time::Instant::now() + STEP_BOUND;
    while attempts.len() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "4 attempts within {STEP_BOUND:?}: {attempts:?}"
        );
        let (now_started, _) = fake.connections().await;
        while started + (attempts.len() as u64) < now_started {
            attempts.push(tokio::time::Instant::now());
        }
        if attempts.len() < 4 {
            let session = daemon
                .sessions()
                .await
                .get_session(peek("hank"))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                status(&session),
                SessionStatus::Reconnecting,
                "waiting between attempts"
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let gaps: Vec<_> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] < gaps[1], "the wait grows after each refusal: {gaps:?}");
    let session = wait_until(&daemon, "hank", "CONNECTED after the refusals", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;
    assert_eq!(session.jid, "15550008888:1@s.whatsapp.net");
    let (after, open) = fake.connections().await;
    assert_eq!(
        (after - started, open),
        (4, 1),
        "three refused attempts, then one that stays"
    );
    daemon.stop().await;
}
