//! The daemon's real backend (the unmodified whatsapp-rust client) against the
//! protocol-level fake WhatsApp server, over real gRPC and offline; and, where the
//! emulator and the real backend should behave alike, the same test bodies run
//! against both (`alike`). Here: the fake and the waits the modules share.
//!
//! - `alike`: pairing through the 515 restart and a daemon restart, what the phone
//!   and the server can do to a linked device (log it out, replace its stream,
//!   drop its socket), and a QR batch that runs out; each body run twice.
//! - `real`: what only the real backend shows (sends decrypted by the fake, the
//!   device removed at WhatsApp, pairing codes, refused connects).
//! - `crash`: the binary killed with -9 between the scan and CONNECTED.

#[path = "../common/mod.rs"]
mod common;

mod alike;
mod crash;
mod phone;
mod real;

use std::time::Duration;

use common::*;
use fake_whatsapp::proto::{fake_whatsapp_client::FakeWhatsappClient, CountConnectionsRequest, ScanQrRequest};
use tonic::transport::Channel;
use wa_sessiond::{
    config::{BackendKind, Config, WhatsappUrl},
    proto::{Session, SessionStatus},
};

/// The bound on each step that involves the client library (a build of a
/// client, a handshake, a login).
const STEP_BOUND: Duration = Duration::from_secs(30);

/// The name the fake's phones show.
const PUSH_NAME: &str = "Fake Phone";

/// A fake WhatsApp on loopback ports, and its control API.
pub struct Fake {
    /// The server.
    running: fake_whatsapp::Running,
    /// Its controls.
    control: FakeWhatsappClient<Channel>,
}

impl Fake {
    /// A fake offering the usual 6 refs per pairing connection.
    async fn start() -> Self {
        Self::start_with(fake_whatsapp::Options::default()).await
    }

    async fn start_with(options: fake_whatsapp::Options) -> Self {
        let running = fake_whatsapp::Running::start(options).await.expect("the fake starts");
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
            config.refresh_timeout = STEP_BOUND;
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

/// The next change of a watch stream, within `STEP_BOUND`.
async fn next_change(stream: &mut tonic::Streaming<Session>) -> Session {
    tokio::time::timeout(STEP_BOUND, stream.message())
        .await
        .expect("a change within the bound")
        .unwrap()
        .expect("the stream goes on")
}
