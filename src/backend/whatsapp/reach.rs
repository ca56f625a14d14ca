//! Naming why WhatsApp cannot be reached. The library only logs its connect error, so
//! a bounded probe of its endpoint (a DNS lookup, then a TCP connect to the host and
//! port of `--whatsapp-url`, `web.whatsapp.com:443` by default) turns "run() ended without coming up" into a cause a
//! caller can act on: DNS failure, connection refused, unreachable network, timeout.

use std::time::Duration;

use tokio::{net::TcpStream, time::timeout};

use crate::config::WhatsappUrl;

/// The bound on each probe step (DNS, each TCP connect).
pub const PROBE_STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Addresses tried at most, so the probe stays within two steps' time.
const MAX_ADDRESSES: usize = 2;

/// `Ok` if a TCP connection to `url`'s host and port opens, else the cause in
/// words. Bounded by three `PROBE_STEP_TIMEOUT`s.
pub async fn probe(url: WhatsappUrl) -> Result<(), String> {
    let host = url.host();
    let lookup = timeout(PROBE_STEP_TIMEOUT, tokio::net::lookup_host((host, url.port()))).await;
    let addresses: Vec<_> = match lookup {
        Err(_) => return Err(format!("dns lookup of {host} timed out after {PROBE_STEP_TIMEOUT:?}")),
        Ok(Err(e)) => return Err(format!("dns lookup of {host} failed ({e})")),
        Ok(Ok(addresses)) => addresses.take(MAX_ADDRESSES).collect(),
    };
    let mut cause = format!("dns lookup of {host} returned no address");
    for address in addresses {
        match timeout(PROBE_STEP_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => cause = format!("tcp connect to {host} ({address}) failed ({e})"),
            Err(_) => cause = format!("tcp connect to {host} ({address}) timed out after {PROBE_STEP_TIMEOUT:?}"),
        }
    }
    Err(cause)
}

/// The cause to report when the library did not come up but the probe reached the
/// host: the websocket, TLS or noise handshake failed.
pub fn handshake_failed(url: &WhatsappUrl, trouble: Option<&str>) -> String {
    let detail = trouble.map(|t| format!(" ({t})")).unwrap_or_default();
    let (host, port) = (url.host(), url.port());
    format!(
        "{host}:{port} is reachable but the tls, websocket or noise handshake failed{detail}; the whatsapp_rust log lines say more"
    )
}
