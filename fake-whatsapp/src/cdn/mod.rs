//! The fake's media CDN: HTTPS on a loopback port with the fake's own CA
//! (`tls`), the host, auth token and ttl the `media_conn` IQ hands out, the
//! encrypted blobs by direct path (uploaded by devices, `upload`, or put there
//! by the fake's phones), served back by direct path (`download`) until they
//! expire (410), and the requests it saw, counted.

mod download;
mod tls;
mod upload;

use std::{collections::HashMap, convert::Infallible, io, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Mutex, MutexGuard},
    task::JoinHandle,
};
use tracing::debug;
use wacore_binary::{builder::NodeBuilder, Node};

pub use tls::CA_PEM;

/// How long a `media_conn` answer is good for (seconds), as WhatsApp's.
const MEDIA_CONN_TTL: u64 = 300;

/// The CDN's server task: ends (with every connection) when dropped.
#[derive(Debug)]
pub struct Serving(JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The requests the CDN saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Uploads devices completed (resumed ones count once, when complete).
    pub uploads: u64,
    /// Downloads served or refused (every GET of a direct path).
    pub downloads: u64,
    /// Resume checks (`?resume=1`) before large uploads.
    pub resume_checks: u64,
    /// Uploads completed from an offset (`file_offset`) after a break.
    pub resumed_uploads: u64,
    /// Media re-upload requests devices sent to phones.
    pub reupload_requests: u64,
    /// Uploads by the fake's phones (sent media and re-uploads).
    pub phone_uploads: u64,
}

/// One stored encrypted file.
#[derive(Debug, Clone)]
pub struct Blob {
    /// The ciphertext with its MAC, as uploaded.
    pub data: Bytes,
    /// Its `file_enc_sha256`, base64url: the token a request names it by.
    pub token: String,
    /// Expired: answered 410 from now on.
    pub expired: bool,
}

#[derive(Debug, Default)]
struct Store {
    /// Blobs by direct path.
    blobs: HashMap<String, Blob>,
    /// Uploads under way or broken off, by token: the bytes received so far.
    partial: HashMap<String, Vec<u8>>,
    counts: Counts,
}

/// The CDN's state; its server runs on a task of its own.
#[derive(Debug)]
pub struct Cdn {
    /// Where it listens.
    addr: SocketAddr,
    /// `127.0.0.1:PORT`, the host `media_conn` names.
    host: String,
    /// The auth token `media_conn` hands out; uploads must carry it.
    auth: String,
    store: Mutex<Store>,
}

impl Cdn {
    /// Binds a loopback port and serves HTTPS there until the [`Serving`] is
    /// dropped.
    pub async fn start() -> io::Result<(Arc<Self>, Serving)> {
        let acceptor = tls::acceptor().map_err(io::Error::other)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let auth = hex::encode(rand::random::<[u8; 16]>());
        let addr = listener.local_addr()?;
        let cdn = Arc::new(Self {
            addr,
            host: addr.to_string(),
            auth,
            store: Mutex::default(),
        });
        tracing::info!(host = %cdn.host, "media cdn listening (https, the fake's own ca)");
        let served = cdn.clone();
        let task = tokio::spawn(async move {
            // Owned here: aborting the task drops them, ending every connection.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => {
                            connections.spawn(serve_connection(served.clone(), acceptor.clone(), stream, peer));
                        }
                        Err(e) => tracing::warn!(error = %e, "cdn accept failed"),
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok((cdn, Serving(task)))
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The answer to a device's `<iq xmlns="w:m" type="set"><media_conn/></iq>`:
    /// the CDN as the one (primary) host, the auth token and its ttl.
    pub fn media_conn(&self) -> Node {
        let host = NodeBuilder::new("host")
            .attr("hostname", self.host.clone())
            .attr("type", "primary")
            .children([NodeBuilder::new("upload").build(), NodeBuilder::new("download").build()])
            .build();
        NodeBuilder::new("media_conn")
            .attr("auth", self.auth.clone())
            .attr("ttl", MEDIA_CONN_TTL.to_string())
            .attr("auth_ttl", MEDIA_CONN_TTL.to_string())
            .attr("max_buckets", "12")
            .children([host])
            .build()
    }

    /// A phone puts `data` (ciphertext) on the CDN: its url and direct path.
    pub async fn put(&self, data: Bytes, token: String) -> (String, String) {
        let mut store = self.store().await;
        store.counts.phone_uploads += 1;
        self.insert(&mut store, data, token)
    }

    /// The blob at `direct_path`, expired or not (the fake's own reads, not counted).
    pub async fn get(&self, direct_path: &str) -> Option<Blob> {
        self.store().await.blobs.get(direct_path).cloned()
    }

    /// The blob at `direct_path` answers 410 from now on; whether there was one.
    pub async fn expire(&self, direct_path: &str) -> bool {
        let mut store = self.store().await;
        store
            .blobs
            .get_mut(direct_path)
            .map(|blob| blob.expired = true)
            .is_some()
    }

    /// A device asked a phone to re-upload media.
    pub async fn count_reupload_request(&self) {
        self.store().await.counts.reupload_requests += 1;
    }

    /// The requests seen so far.
    pub async fn counts(&self) -> Counts {
        self.store().await.counts
    }

    async fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().await
    }

    /// Stores a blob under a fresh direct path: its url and direct path.
    fn insert(&self, store: &mut Store, data: Bytes, token: String) -> (String, String) {
        let name = hex::encode(rand::random::<[u8; 16]>());
        let direct_path = format!("/v/t62.7118-24/{name}.enc");
        let url = format!("https://{}{direct_path}", self.host);
        let blob = Blob {
            data,
            token,
            expired: false,
        };
        store.blobs.insert(direct_path.clone(), blob);
        (url, direct_path)
    }

    async fn route(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        let query = query(request.uri().query().unwrap_or_default());
        match (request.method(), path.starts_with("/mms/")) {
            (&Method::POST, true) => upload::handle(self, &path, &query, request.into_body()).await,
            (&Method::GET, false) => download::handle(self, &path, &query).await,
            _ => answer(StatusCode::NOT_FOUND, "no such endpoint"),
        }
    }
}

/// Serves one TCP connection: the TLS handshake, then HTTP/1.1 requests.
async fn serve_connection(cdn: Arc<Cdn>, acceptor: tokio_rustls::TlsAcceptor, stream: TcpStream, peer: SocketAddr) {
    let stream = match acceptor.accept(stream).await {
        Ok(stream) => stream,
        Err(e) => return debug!(%peer, error = %e, "cdn tls handshake failed"),
    };
    let service = service_fn(move |request| {
        let cdn = cdn.clone();
        async move { Ok::<_, Infallible>(cdn.route(request).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        debug!(%peer, error = %e, "cdn connection ended");
    }
}

/// A query string's pairs (the CDN's own values need no percent-decoding).
fn query(raw: &str) -> HashMap<String, String> {
    raw.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// A response with `body`.
fn answer(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

/// A JSON response.
fn json(value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = answer(StatusCode::OK, value.to_string());
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
