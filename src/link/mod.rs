//! The link page: a page for people, on its own listener (`--link-listen`), that
//! shows one session's live QR code with a countdown, refreshes it, offers a
//! pairing code instead, and says so the moment the phone is linked. It is reached
//! only through a signed, expiring, one-session URL that `CreateLinkUrl` issues.
//!
//! `token` signs and checks links · `issue` makes them for `CreateLinkUrl` ·
//! `revoked` each session's link generation (`RevokeLinks`) · `server` listens and
//! routes · `admit` what every route starts with · `limits` connection caps and the
//! rate of actions · `page` the documents and their headers · `feed` the live
//! updates (SSE) · `actions` refresh and pairing code · `view` what the page is told. Sessions are reached only through the daemon's door,
//! `registry::Sessions`.

pub mod actions;
pub mod admit;
pub mod feed;
pub mod issue;
pub mod limits;
pub mod page;
pub mod revoked;
pub mod server;
pub mod token;
pub mod view;

use std::{net::SocketAddr, path::Path, sync::Arc};

use tokio::net::TcpListener;
use tracing::{info, warn};

pub use issue::{disabled, IssuedLink, LinkIssuer, LinkOrder};

use crate::{config::LinkConfig, metrics::Metrics, registry::Sessions};

/// The link page, ready to serve.
pub struct LinkService {
    /// What the routes read (shared by every connection).
    app: Arc<admit::LinkApp>,
    /// Where it listens: `--link-listen`, bound by the caller.
    listener: TcpListener,
    /// Makes the links that lead here (handed to SessionService for CreateLinkUrl).
    issuer: LinkIssuer,
}

impl LinkService {
    /// Reads (or creates) the signing key in `data_dir` and takes `listener`; counts
    /// what the page does in `metrics`.
    pub fn prepare(
        config: &LinkConfig,
        listener: TcpListener,
        data_dir: &Path,
        sessions: Sessions,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let key = Arc::new(token::LinkKey::load_or_create(data_dir)?);
        let addr = listener.local_addr()?;
        let base_url = match &config.link_base_url {
            Some(base) => base.clone(),
            None => default_base_url(addr),
        };
        let public_origin = config.link_base_url.as_deref().and_then(origin_of);
        let generations = Arc::new(revoked::LinkGenerations::new(data_dir));
        let app = Arc::new(admit::LinkApp {
            key: key.clone(),
            sessions,
            idle_timeout: config.link_idle_timeout,
            public_origin,
            generations: generations.clone(),
            limits: limits::ActionLimits::new(config.link_action_burst, config.link_action_period),
            caps: limits::Caps::new(config.link_max_connections_per_client, config.link_max_feeds_per_link),
            read_timeout: config.link_read_timeout,
            write_timeout: config.link_write_timeout,
            framing: page::Framing::new(&config.link_frame_ancestors),
            metrics,
        });
        Ok(Self {
            app,
            listener,
            issuer: LinkIssuer::new(key, base_url, generations),
        })
    }

    /// Makes the links that lead to this page.
    pub fn issuer(&self) -> LinkIssuer {
        self.issuer.clone()
    }

    /// Serves until the task is dropped; returns only if the listener can never
    /// accept again, with why.
    pub async fn serve(self) -> std::io::Error {
        if let Ok(addr) = self.listener.local_addr() {
            info!(%addr, base_url = %self.issuer.base_url(), "link page serving");
        }
        server::serve(self.app, self.listener).await
    }
}

/// `http://<addr>`; an unspecified address (`0.0.0.0`) becomes loopback, which only
/// works on this machine: say so.
fn default_base_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        warn!(%addr, "the link page listens on all interfaces but links are built on loopback: set --link-base-url to the address people reach");
        let loopback = SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port());
        return format!("http://{loopback}");
    }
    format!("http://{addr}")
}

/// `https://host[:port]` of a base URL.
fn origin_of(base_url: &str) -> Option<String> {
    let uri: http::Uri = base_url.parse().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_default_to_the_listen_address_and_origins_drop_the_path() {
        assert_eq!(
            default_base_url("127.0.0.1:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(default_base_url("[::1]:8080".parse().unwrap()), "http://[::1]:8080");
        assert_eq!(
            default_base_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            origin_of("https://link.example.com:8443/wa").as_deref(),
            Some("https://link.example.com:8443")
        );
    }
}
