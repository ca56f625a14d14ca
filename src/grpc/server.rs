//! The gRPC server's transport: TLS (mutual with a client CA), the HTTP/2 and
//! per-connection bounds that keep one client from making the daemon hold without
//! limit, the global bound on calls in flight, the metrics layer, and server
//! reflection over the services served. Services are added by `app::run`.

use std::{sync::Arc, time::Duration};

use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tower_layer::Stack;

use super::{inflight::InflightLimitLayer, observe::ObserveLayer};
use crate::{config::EdgeConfig, metrics::Metrics};

/// The server builder with its layers on: metrics outermost (so refused calls are
/// counted too), then the bound on calls in flight.
pub type Builder = Server<Stack<InflightLimitLayer, Stack<ObserveLayer, tower_layer::Identity>>>;

/// Stream resets a client may leave pending before its connection is closed.
const PENDING_ACCEPT_RESETS: usize = 20;
/// The largest request header block, in bytes (metadata, including the token).
const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// Pings on an idle connection, and how long the answer may take.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The descriptor sets reflection describes: the daemon's own services and health.
const REFLECTED_SETS: [&[u8]; 2] = [crate::proto::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET];

/// The encoded descriptor sets of every service served, for the metrics' method names.
const DESCRIPTOR_SETS: [&[u8]; 4] = [
    crate::proto::FILE_DESCRIPTOR_SET,
    tonic_health::pb::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
];

/// A server builder with TLS, limits and metrics as `edge` says. The error is one line.
pub fn builder(edge: &EdgeConfig, metrics: Arc<Metrics>) -> Result<Builder, String> {
    let per_connection = edge.max_concurrent_requests_per_connection;
    let mut server = Server::builder()
        .concurrency_limit_per_connection(per_connection as usize)
        .max_concurrent_streams(per_connection)
        .http2_max_pending_accept_reset_streams(Some(PENDING_ACCEPT_RESETS))
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT));
    if let Some(tls) = tls_config(edge)? {
        server = server.tls_config(tls).map_err(|e| format!("tls setup failed: {e}"))?;
    }
    let inflight = InflightLimitLayer::new(edge.max_inflight_calls as usize);
    Ok(server
        .layer(ObserveLayer::new(metrics, &DESCRIPTOR_SETS))
        .layer(inflight))
}

/// Server reflection over the daemon's services and health, in the version `build`
/// picks (`Builder::build_v1` or `Builder::build_v1alpha`: grpcurl asks for either),
/// so both versions describe the same services. The error is one line.
pub fn reflection<S>(
    build: impl FnOnce(tonic_reflection::server::Builder<'static>) -> Result<S, tonic_reflection::server::Error>,
) -> Result<S, String> {
    let builder = REFLECTED_SETS.into_iter().fold(
        tonic_reflection::server::Builder::configure(),
        tonic_reflection::server::Builder::register_encoded_file_descriptor_set,
    );
    build(builder).map_err(|e| format!("server reflection cannot be built: {e}"))
}

/// The TLS settings, when --tls-cert is set.
fn tls_config(edge: &EdgeConfig) -> Result<Option<ServerTlsConfig>, String> {
    let (Some(cert), Some(key)) = (&edge.tls_cert, &edge.tls_key) else {
        return Ok(None);
    };
    let read = |flag: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {flag} {}: {e}", path.display()))
    };
    let identity = Identity::from_pem(read("--tls-cert", cert)?, read("--tls-key", key)?);
    let mut tls = ServerTlsConfig::new().identity(identity).timeout(TLS_HANDSHAKE_TIMEOUT);
    if let Some(ca) = &edge.tls_client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read("--tls-client-ca", ca)?));
    }
    Ok(Some(tls))
}
