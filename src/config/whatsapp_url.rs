//! The address of WhatsApp Web's websocket (`--whatsapp-url`), parsed once into the
//! host and port the reachability probe dials, and the rule of builds with the
//! `fake-whatsapp` feature: they do not verify WhatsApp's server certificate, so they
//! only ever talk to a loopback address.

use std::{fmt, net::IpAddr};

/// The real WhatsApp Web websocket.
pub const DEFAULT_WHATSAPP_URL: &str = "wss://web.whatsapp.com/ws/chat";

/// Whether this build skips the check of the server's certificate chain.
pub const CERTIFICATE_CHECK_OFF: bool = cfg!(feature = "fake-whatsapp");

/// What a `fake-whatsapp` build says when it starts.
pub const UNVERIFIED_WARNING: &str =
    "built with fake-whatsapp: the server certificate is NOT verified; only loopback URLs allowed";

/// A `ws://` or `wss://` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatsappUrl {
    /// The URL as given.
    url: String,
    /// Its host, without IPv6 brackets.
    host: String,
    /// Its port (the scheme's default when none is given).
    port: u16,
}

impl WhatsappUrl {
    /// Parses `raw`, refusing anything but a `ws://` or `wss://` URL with a host.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let uri: http::Uri = raw
            .parse()
            .map_err(|e| format!("{raw:?} is not a url ({e}); use e.g. {DEFAULT_WHATSAPP_URL}"))?;
        let default_port = match uri.scheme_str() {
            Some("wss") => 443,
            Some("ws") => 80,
            _ => return Err(format!("{raw:?} is not a ws:// or wss:// url")),
        };
        let host = uri
            .host()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| format!("{raw:?} has no host"))?;
        Ok(Self {
            url: raw.to_owned(),
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port: uri.port_u16().unwrap_or(default_port),
        })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The host (`web.whatsapp.com`, `127.0.0.1`, `::1`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the host is this machine: `localhost`, 127.0.0.0/8 or `::1`.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost") || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// `Ok` unless this build skips the certificate check and the host is not
    /// loopback; then the line to exit with.
    pub fn allowed(&self) -> Result<(), String> {
        check_allowed(self, CERTIFICATE_CHECK_OFF)
    }
}

impl Default for WhatsappUrl {
    fn default() -> Self {
        Self::parse(DEFAULT_WHATSAPP_URL).expect("the default url parses")
    }
}

impl fmt::Display for WhatsappUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// The loopback rule, for a build that does (or does not) skip the certificate check.
fn check_allowed(url: &WhatsappUrl, certificate_check_off: bool) -> Result<(), String> {
    if certificate_check_off && !url.is_loopback() {
        return Err(format!(
            "--whatsapp-url {url} is not a loopback address, and this build (feature fake-whatsapp) does not verify the server certificate; use 127.0.0.1, ::1 or localhost, or a build without the feature"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(raw: &str) -> WhatsappUrl {
        WhatsappUrl::parse(raw).unwrap()
    }

    #[test]
    fn the_default_is_whatsapp_web_on_443() {
        let default = WhatsappUrl::default();
        assert_eq!((default.host(), default.port()), ("web.whatsapp.com", 443));
        assert_eq!(default.as_str(), DEFAULT_WHATSAPP_URL);
    }

    #[test]
    fn host_and_port_come_from_the_url() {
        assert_eq!(url("ws://127.0.0.1:4000/ws/chat").port(), 4000);
        assert_eq!(url("ws://localhost/ws/chat").port(), 80);
        let v6 = url("ws://[::1]:4001/ws/chat");
        assert_eq!((v6.host(), v6.port()), ("::1", 4001));
    }

    #[test]
    fn only_websocket_urls_with_a_host_parse() {
        for bad in ["http://127.0.0.1/ws", "127.0.0.1:80", "", "ws:///chat", "wss://"] {
            assert!(WhatsappUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn loopback_is_localhost_127_slash_8_and_ipv6_one() {
        for local in [
            "ws://127.0.0.1:1/",
            "ws://127.9.8.7:1/",
            "ws://localhost:1/",
            "ws://LOCALHOST/",
            "ws://[::1]:1/",
        ] {
            assert!(url(local).is_loopback(), "{local}");
        }
        for remote in [
            DEFAULT_WHATSAPP_URL,
            "ws://10.0.0.1:1/",
            "ws://128.0.0.1/",
            "ws://[::2]/",
            "ws://localhost.example.com/",
            "ws://0.0.0.0/",
        ] {
            assert!(!url(remote).is_loopback(), "{remote}");
        }
    }

    #[test]
    fn a_build_without_the_certificate_check_refuses_any_remote_host() {
        assert!(check_allowed(&url("ws://127.0.0.1:9/ws/chat"), true).is_ok());
        assert!(check_allowed(&url("ws://[::1]:9/ws/chat"), true).is_ok());
        let refused = check_allowed(&WhatsappUrl::default(), true).unwrap_err();
        assert!(refused.contains("not a loopback address"), "{refused}");
        assert!(check_allowed(&url("ws://10.1.2.3/ws/chat"), true).is_err());
        assert!(check_allowed(&WhatsappUrl::default(), false).is_ok());
    }
}
