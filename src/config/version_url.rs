//! Where the real backend reads WhatsApp Web's current version (`--wa-version-url`):
//! WhatsApp's own sw.js, or a loopback address (a fake WhatsApp in tests). Like
//! `--whatsapp-url` under the `fake-whatsapp` feature, anything else is refused at
//! parse time: the version it answers is announced by every session.

use std::{fmt, net::IpAddr};

/// WhatsApp Web's service worker, whose `client_revision` is the current version
/// (the URL whatsapp-rust's own `version::fetch_latest_app_version` reads).
pub const DEFAULT_VERSION_URL: &str = "https://web.whatsapp.com/sw.js";

/// An `http://` or `https://` URL: WhatsApp's sw.js, or one on a loopback host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionUrl {
    /// The URL as given.
    url: String,
}

impl VersionUrl {
    /// Parses `raw`, refusing anything but an `http(s)://` URL that is WhatsApp's
    /// sw.js or names a loopback host.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let uri: http::Uri = raw
            .parse()
            .map_err(|e| format!("{raw:?} is not a url ({e}); use e.g. {DEFAULT_VERSION_URL}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(format!("{raw:?} is not an http:// or https:// url"));
        }
        let host = uri
            .host()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| format!("{raw:?} has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback =
            host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if raw != DEFAULT_VERSION_URL && !loopback {
            return Err(format!(
                "{raw} is not a loopback address; use WhatsApp's {DEFAULT_VERSION_URL}, or 127.0.0.1, ::1 or localhost (a fake WhatsApp)"
            ));
        }
        Ok(Self { url: raw.to_owned() })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.url
    }
}

impl Default for VersionUrl {
    fn default() -> Self {
        Self::parse(DEFAULT_VERSION_URL).expect("the default url parses")
    }
}

impl fmt::Display for VersionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whatsapps_sw_js_and_loopback_urls_parse() {
        assert_eq!(VersionUrl::default().as_str(), DEFAULT_VERSION_URL);
        for local in [
            "http://127.0.0.1:4000/sw.js",
            "http://localhost/sw.js",
            "https://[::1]:9/sw.js",
        ] {
            assert_eq!(VersionUrl::parse(local).unwrap().as_str(), local);
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        for remote in [
            "https://web.whatsapp.com/other.js",
            "http://web.whatsapp.com/sw.js",
            "https://10.0.0.1/sw.js",
        ] {
            let refused = VersionUrl::parse(remote).unwrap_err();
            assert!(refused.contains("not a loopback address"), "{refused}");
        }
        for bad in ["ws://127.0.0.1/sw.js", "127.0.0.1/sw.js", "", "http://"] {
            assert!(VersionUrl::parse(bad).is_err(), "{bad:?}");
        }
    }
}
