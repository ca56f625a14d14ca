//! The link page's settings: where it listens, the public URL its links are built
//! on, and how long a page's live feed lasts without a sign of life.

use std::{net::SocketAddr, time::Duration};

use clap::Args;

/// A listen address, or none. A plain alias so clap does not read it as an optional
/// flag: the flag has a default, and an empty value switches the listener off.
pub type MaybeAddr = Option<SocketAddr>;

/// The link page (`CreateLinkUrl`).
#[derive(Debug, Clone, Args)]
pub struct LinkConfig {
    /// HTTP address of the link page people open to link a phone; empty switches it
    /// off (and CreateLinkUrl with it).
    #[arg(long, env = "WA_SESSIOND_LINK_LISTEN", default_value = "127.0.0.1:8080", value_parser = maybe_addr)]
    pub link_listen: MaybeAddr,

    /// The public prefix link URLs are built on (behind an ingress, e.g.
    /// `https://link.example.com`); default `http://<link-listen>`.
    #[arg(long, env = "WA_SESSIOND_LINK_BASE_URL", value_parser = base_url)]
    pub link_base_url: Option<String>,

    /// How long an open link page gets live updates (and keeps its QR fresh) before
    /// its feed stops; a person brings it back with "Get a new code".
    #[arg(long, env = "WA_SESSIOND_LINK_IDLE_TIMEOUT", default_value = "3m", value_parser = super::positive_duration)]
    pub link_idle_timeout: Duration,
}

fn maybe_addr(raw: &str) -> Result<MaybeAddr, String> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(|_| {
        format!("{raw:?} is not an address: use e.g. 127.0.0.1:8080, or empty to switch the link page off")
    })
}

/// An http(s) URL with a host and no query or fragment; a trailing `/` is dropped.
fn base_url(raw: &str) -> Result<String, String> {
    let bad = || format!("{raw:?} is not a base url: use e.g. https://link.example.com or http://10.0.0.5:8080/wa");
    let uri: http::Uri = raw.parse().map_err(|_| bad())?;
    let http_like = matches!(uri.scheme_str(), Some("http" | "https"));
    let plain = uri.query().is_none() && !raw.contains('#') && !raw.contains('@');
    if !http_like || uri.host().is_none_or(str::is_empty) || !plain {
        return Err(bad());
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::Config;

    fn parse(args: &[&str]) -> Result<Config, String> {
        Config::try_parse_from(["wa-sessiond"].iter().chain(args)).map_err(|e| e.to_string())
    }

    #[test]
    fn the_link_page_listens_on_loopback_8080_unless_switched_off() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.link.link_listen, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(config.link.link_idle_timeout, std::time::Duration::from_secs(180));
        assert_eq!(config.link.link_base_url, None);
        assert_eq!(parse(&["--link-listen", ""]).unwrap().link.link_listen, None);
        let refused = parse(&["--link-listen", "port 80"]).unwrap_err();
        assert!(refused.contains("empty to switch the link page off"), "{refused}");
        assert!(parse(&["--link-idle-timeout", "0s"]).is_err());
    }

    #[test]
    fn a_base_url_is_http_or_https_with_a_host_and_loses_its_trailing_slash() {
        let config = parse(&["--link-base-url", "https://link.example.com/wa/"]).unwrap();
        assert_eq!(
            config.link.link_base_url.as_deref(),
            Some("https://link.example.com/wa")
        );
        for bad in [
            "link.example.com",
            "ftp://x",
            "https://x/?a=1",
            "https://x/#f",
            "https://u@x",
            "/path",
        ] {
            assert!(parse(&["--link-base-url", bad]).is_err(), "{bad}");
        }
    }
}
