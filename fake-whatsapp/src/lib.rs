//! A protocol-level fake WhatsApp Web server, for proving wa-sessiond's real
//! backend (the unmodified whatsapp-rust client) offline: a plain `ws://` listener
//! speaking WhatsApp's Noise XX handshake, binary nodes, pairing by QR code (with
//! its own phones, whose keys sign the devices they link), the 515 restart, login
//! with stored credentials and the stanzas a client awaits before it is online;
//! inbound traffic to linked devices (Signal-encrypted messages from the fake's
//! phones and their receipts, held until each device acks them, delivered live or
//! as the offline batch); what devices send, decrypted and listed as the
//! recipient's phone shows it (texts, replies, reactions, edits, revokes; each id
//! once per chat), acked, nacked or with its ack held; and a gRPC control API
//! (`wasessiond.fake.v1.FakeWhatsapp`, with reflection) to scan codes, send
//! messages and receipts, count what is pending, drop, log out and replace
//! streams, refuse connects and count them, refuse sends and hold their acks,
//! and bar an account's new chats (463, the timelock pushed and queried) or ban
//! it (`<failure reason="402">` on its connections and logins); WhatsApp Web's
//! current version served as `/sw.js`, and a minimum below which clients get a
//! 405 (`version`); and media: a CDN over HTTPS on loopback with the fake's own
//! CA ([`CA_PEM`]), announced by the `media_conn` IQ, that devices upload to
//! and download from, phones that send media through it and answer re-upload
//! requests once it expired, and the media devices send, downloaded and
//! decrypted for `ListReceivedMessages`.
//!
//! Clients must be built without the server certificate check (whatsapp-rust's
//! `danger-skip-cert-chain-verify`): the fake's chain is not signed by WhatsApp.

#![forbid(unsafe_code)]

mod cdn;
mod conn;
mod control;
mod device_keys;
mod health;
mod inbox;
mod iq;
mod media;
mod messages;
mod noise;
mod outbox;
mod pair_code;
mod pairing;
mod prekeys;
mod signal;
mod stanza;
mod version;
mod vocab;
mod wire;
mod world;

use std::{future::Future, io, net::SocketAddr, sync::Arc};

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;

pub use cdn::CA_PEM;

/// The generated wire types and service of `wasessiond.fake.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("wasessiond.fake.v1");

    /// The descriptor set served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("fake_whatsapp_descriptor");
}

/// Refs per pairing batch, as WhatsApp sends.
pub const DEFAULT_REFS: u32 = 6;

pub use version::DEFAULT_VERSION;

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Refs (QR codes) offered to each new device.
    pub refs: u32,
    /// The WhatsApp Web version sw.js names at first (`2.3000.N`: sw.js carries
    /// only the last number).
    pub version: (u32, u32, u32),
}

impl Default for Options {
    fn default() -> Self {
        Self {
            refs: DEFAULT_REFS,
            version: DEFAULT_VERSION,
        }
    }
}

/// Serves WhatsApp on `listener` and the control API on `control` until
/// `shutdown` resolves.
///
/// The media CDN listens on a free loopback port (logged; the `media_conn` IQ
/// names it).
pub async fn serve(
    listener: TcpListener,
    control: TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let started = cdn::Cdn::start().await;
    let started = started.unwrap_or_else(|e| panic!("the fake's media cdn could not start on loopback: {e}"));
    serve_with_cdn(listener, control, options, started, shutdown).await
}

/// [`serve`] with its CDN started.
async fn serve_with_cdn(
    listener: TcpListener,
    control: TcpListener,
    options: Options,
    (cdn, cdn_serving): (Arc<cdn::Cdn>, cdn::Serving),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let shared = Arc::new(conn::Shared {
        world: world::World::default(),
        identity: noise::ServerIdentity::generate(),
        refs: options.refs.max(1),
        versions: version::Versions::new(options.version),
        cdn,
        phones: media::Phones::default(),
    });
    let (stop_accepting, mut stopped) = oneshot::channel::<()>();
    let accept = {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => {
                            tokio::spawn(conn::serve(shared.clone(), stream, peer));
                        }
                        Err(e) => tracing::warn!(error = %e, "accept failed"),
                    },
                    _ = &mut stopped => return,
                }
            }
        })
    };
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the descriptor set is valid");
    let service = proto::fake_whatsapp_server::FakeWhatsappServer::new(control::Control { shared: shared.clone() })
        .max_decoding_message_size(control::MAX_REQUEST_BYTES);
    let served = tonic::transport::Server::builder()
        .add_service(reflection)
        .add_service(service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(control), shutdown)
        .await;
    let _ = stop_accepting.send(());
    let _ = accept.await;
    drop(cdn_serving);
    // The server goes away: so do its sockets.
    shared.world.drop_connections("").await;
    served
}

/// A fake running in the background on 127.0.0.1 (for tests).
pub struct Running {
    /// The WhatsApp websocket's address.
    pub addr: SocketAddr,
    /// The control API's address.
    pub control_addr: SocketAddr,
    /// The media CDN's address (HTTPS, the fake's own CA: [`CA_PEM`]).
    pub cdn_addr: SocketAddr,
    /// Ends the control API, then the WhatsApp listener and every socket; taken by
    /// the first stop.
    stop: Option<oneshot::Sender<()>>,
    /// The task running [`serve`]; its result is the control API's.
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Running {
    /// Starts a fake on two free loopback ports.
    pub async fn start(options: Options) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let control = TcpListener::bind("127.0.0.1:0").await?;
        let (addr, control_addr) = (listener.local_addr()?, control.local_addr()?);
        let started = cdn::Cdn::start().await?;
        let cdn_addr = started.0.addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let task = tokio::spawn(serve_with_cdn(listener, control, options, started, shutdown));
        Ok(Self {
            addr,
            control_addr,
            cdn_addr,
            stop: Some(stop),
            task,
        })
    }

    /// The URL a client dials: `ws://127.0.0.1:PORT/ws/chat`.
    pub fn url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }

    /// WhatsApp Web's service worker, naming the fake's version:
    /// `http://127.0.0.1:PORT/sw.js` (the websocket's port).
    pub fn sw_js_url(&self) -> String {
        format!("http://{}/sw.js", self.addr)
    }

    /// The control API's endpoint: `http://127.0.0.1:PORT`.
    pub fn control_endpoint(&self) -> String {
        format!("http://{}", self.control_addr)
    }

    /// Stops the fake and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}
