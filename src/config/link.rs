//! The link page's settings: where it listens, the public URL its links are built
//! on, how long a page's live feed lasts without a sign of life, the bounds that keep
//! anyone from wedging it (read and write timeouts, connection caps, the rate of
//! refreshes and pairing codes), and who may frame it.

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

    /// How long a client may take to send a request's head, or its body, before the
    /// connection is cut (a client trickling bytes holds no slot longer).
    #[arg(long, env = "WA_SESSIOND_LINK_READ_TIMEOUT", default_value = "10s", value_parser = super::positive_duration)]
    pub link_read_timeout: Duration,

    /// How long a page's feed may wait for the client to take an update before the
    /// feed ends and its connection is cut (a client that stopped reading).
    #[arg(long, env = "WA_SESSIOND_LINK_WRITE_TIMEOUT", default_value = "10s", value_parser = super::positive_duration)]
    pub link_write_timeout: Duration,

    /// Connections one client address may hold open at once; more are answered 429
    /// (behind a proxy every client shares its address: raise it there).
    #[arg(long, env = "WA_SESSIOND_LINK_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub link_max_connections_per_client: u32,

    /// Live feeds one link may have open at once; more are answered 429.
    #[arg(long, env = "WA_SESSIOND_LINK_MAX_FEEDS_PER_LINK", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub link_max_feeds_per_link: u32,

    /// New codes (`refresh`) and pairing codes a link, and a session, may ask for at
    /// once before the rate applies (429 with Retry-After beyond).
    #[arg(long, env = "WA_SESSIOND_LINK_ACTION_BURST", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub link_action_burst: u32,

    /// After the burst, one more refresh (and one more pairing code) per this period,
    /// per link and per session.
    #[arg(long, env = "WA_SESSIOND_LINK_ACTION_PERIOD", default_value = "20s", value_parser = super::positive_duration)]
    pub link_action_period: Duration,

    /// Origins allowed to show the page in a frame (comma-separated, e.g.
    /// `https://app.example.com`); empty: no one (`frame-ancestors 'none'` and
    /// `X-Frame-Options: DENY`).
    #[arg(long, env = "WA_SESSIOND_LINK_FRAME_ANCESTORS", value_delimiter = ',', value_parser = frame_origin)]
    pub link_frame_ancestors: Vec<String>,
}

/// An origin a CSP `frame-ancestors` takes: `https://host[:port]` (a `*` port or
/// `*.` host prefix allowed), nothing else (no path, no quote, no `;`).
fn frame_origin(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let bad = || format!("{raw:?} is not an origin: use e.g. https://app.example.com or http://127.0.0.1:3000");
    let (scheme, rest) = raw.split_once("://").ok_or_else(bad)?;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '*' | '[' | ']');
    if !matches!(scheme, "http" | "https") || rest.is_empty() || !rest.chars().all(plain) {
        return Err(bad());
    }
    Ok(raw.to_owned())
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
    fn the_page_is_bounded_by_default_and_framed_by_no_one() {
        let link = parse(&[]).unwrap().link;
        assert_eq!(link.link_read_timeout, std::time::Duration::from_secs(10));
        assert_eq!(link.link_write_timeout, std::time::Duration::from_secs(10));
        assert_eq!((link.link_action_burst, link.link_action_period.as_secs()), (3, 20));
        assert_eq!(
            (link.link_max_connections_per_client, link.link_max_feeds_per_link),
            (64, 4)
        );
        assert!(link.link_frame_ancestors.is_empty());
        let framed = parse(&["--link-frame-ancestors", "https://a.example.com, http://127.0.0.1:3000"]).unwrap();
        assert_eq!(
            framed.link.link_frame_ancestors,
            ["https://a.example.com", "http://127.0.0.1:3000"]
        );
        for bad in [
            "a.example.com",
            "https://a.example.com/x",
            "'self'",
            "https://a; script-src *",
        ] {
            assert!(parse(&["--link-frame-ancestors", bad]).is_err(), "{bad}");
        }
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
