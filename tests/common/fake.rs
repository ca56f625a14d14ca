//! The protocol-level fake WhatsApp on loopback ports, its control API, and a
//! daemon on the real backend wired to it: what the fake-WhatsApp tests share.

use std::time::Duration;

use fake_whatsapp::proto::{
    fake_whatsapp_client::FakeWhatsappClient, CountConnectionsRequest, CountPendingRequest, LogoutDeviceRequest,
    ScanQrRequest, SendMessageRequest,
};
use tonic::transport::Channel;
use wa_sessiond::{
    config::{BackendKind, Config, VersionUrl, WhatsappUrl},
    proto::{
        self, event::Body, event_service_client::EventServiceClient, EventKind, InboundMessage, Session, SessionStatus,
        StreamEventsRequest,
    },
};

use super::{create, peek, status, wait_for, Daemon};

/// The bound on each step that involves the client library (a build of a
/// client, a handshake, a login).
pub const STEP_BOUND: Duration = Duration::from_secs(30);

/// The name the fake's phones show.
pub const PUSH_NAME: &str = "Fake Phone";

/// A fake WhatsApp on loopback ports, and its control API.
pub struct Fake {
    /// The server.
    pub running: fake_whatsapp::Running,
    /// Its controls.
    pub control: FakeWhatsappClient<Channel>,
}

impl Fake {
    /// A fake offering the usual 6 refs per pairing connection.
    pub async fn start() -> Self {
        Self::start_with(fake_whatsapp::Options::default()).await
    }

    /// A fake with `options` (e.g. fewer refs).
    pub async fn start_with(options: fake_whatsapp::Options) -> Self {
        let running = fake_whatsapp::Running::start(options).await.expect("the fake starts");
        let control = FakeWhatsappClient::connect(running.control_endpoint())
            .await
            .expect("the fake's control api answers");
        Self { running, control }
    }

    /// The daemon's config tweak: the real backend, dialing this fake.
    pub fn wire(&self) -> impl FnOnce(&mut Config) {
        let url = WhatsappUrl::parse(&self.running.url()).unwrap();
        let sw_js = VersionUrl::parse(&self.running.sw_js_url()).unwrap();
        move |config| {
            config.backend = BackendKind::Whatsapp;
            config.whatsapp_url = url;
            config.wa_version_url = sw_js;
            config.qr_timeout = STEP_BOUND;
            config.refresh_timeout = STEP_BOUND;
        }
    }

    /// Connections the fake accepted so far, and open now.
    pub async fn connections(&self) -> (u64, u64) {
        let counted = self.control.clone().count_connections(CountConnectionsRequest {}).await;
        let counted = counted.unwrap().into_inner();
        (counted.started, counted.open)
    }

    /// The phone `from` sends `text` to the account of `to` (digits); its id.
    pub async fn send(&self, to: &str, from: &str, text: &str) -> String {
        let request = SendMessageRequest {
            to_phone_number: to.into(),
            from_phone_number: from.into(),
            text: text.into(),
            ..Default::default()
        };
        let sent = self.control.clone().send_message(request).await;
        sent.expect("the fake takes the message").into_inner().message_id
    }

    /// Waits (bounded by `STEP_BOUND`) until the fake has `wanted` connections open.
    pub async fn wait_open(&self, wanted: u64) {
        wait_for(
            STEP_BOUND,
            &format!("{wanted} connections open at the fake"),
            || async { (self.connections().await.1 == wanted).then_some(()) },
        )
        .await;
    }

    /// The phone unlinks its devices (`LogoutDevice`): how many WhatsApp still listed.
    pub async fn phone_logout(&self, phone: &str) -> u32 {
        let request = LogoutDeviceRequest {
            phone_number: phone.into(),
        };
        let answer = self.control.clone().logout_device(request).await;
        answer
            .expect("the fake logs the phone's devices out")
            .into_inner()
            .removed
    }

    /// Messages the fake still holds for the devices of `phone`'s account.
    pub async fn pending(&self, phone: &str) -> u64 {
        let request = CountPendingRequest {
            phone_number: phone.into(),
        };
        let counted = self.control.clone().count_pending(request).await;
        counted.unwrap().into_inner().pending
    }

    /// Waits (bounded by `STEP_BOUND`) until the fake holds `wanted` messages for
    /// `phone`'s account.
    pub async fn wait_pending(&self, phone: &str, wanted: u64) {
        wait_for(STEP_BOUND, &format!("{wanted} pending at the fake"), || async {
            (self.pending(phone).await == wanted).then_some(())
        })
        .await;
    }
}

/// Waits (bounded by `STEP_BOUND`) until the session satisfies `pred`.
pub async fn wait_until(daemon: &Daemon, id: &str, what: &str, pred: impl Fn(&Session) -> bool) -> Session {
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
pub async fn pair(daemon: &Daemon, fake: &Fake, id: &str, phone: &str) -> Session {
    let mut client = daemon.sessions().await;
    let created = client.create_session(create(id)).await.unwrap().into_inner();
    let scan = ScanQrRequest {
        code: created.qr.expect("a first qr code").code,
        phone_number: phone.into(),
    };
    fake.control.clone().scan_qr(scan).await.unwrap();
    wait_until(daemon, id, "CONNECTED", |s| status(s) == SessionStatus::Connected).await
}

/// The messages logged for `session`, from the beginning of the log, then live.
pub async fn logged_messages(daemon: &Daemon, session: &str) -> tonic::Streaming<proto::Event> {
    let request = StreamEventsRequest {
        from_beginning: true,
        session_ids: vec![session.into()],
        kinds: vec![EventKind::Message as i32],
        ..Default::default()
    };
    let mut events = EventServiceClient::new(daemon.channel().await);
    events.stream_events(request).await.unwrap().into_inner()
}

/// Reads `stream` until each of `ids` came, all within `bound`: the messages read.
pub async fn until_logged(
    stream: &mut tonic::Streaming<proto::Event>,
    ids: &[String],
    bound: Duration,
) -> Vec<InboundMessage> {
    let mut got: Vec<InboundMessage> = Vec::new();
    let read_all = async {
        while !ids.iter().all(|id| got.iter().any(|m| &m.id == id)) {
            let event = stream
                .message()
                .await
                .expect("a healthy stream")
                .expect("the stream goes on");
            if let Some(Body::Message(message)) = event.body {
                got.push(message);
            }
        }
    };
    if tokio::time::timeout(bound, read_all).await.is_err() {
        let seen: Vec<_> = got.iter().map(|m| m.id.as_str()).collect();
        panic!("{ids:?} not all logged within {bound:?}; logged: {seen:?}");
    }
    got
}
