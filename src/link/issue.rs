//! Issuing links (`CreateLinkUrl`): checks what the caller asked (ttl, redirect),
//! signs a token for the session as it is now (its link generation included), and
//! builds the URL on the public base; revokes them (`RevokeLinks`). Also the one
//! error for a daemon that serves no link page.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use super::{
    revoked::LinkGenerations,
    token::{expiry_ms, Claims, LinkKey},
};
use crate::{
    domain::{SessionId, SessionView},
    error::SessionError,
    store::unix_ms,
};

/// A link's lifetime when the caller names none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);
/// The shortest and longest lifetimes a caller may ask for.
pub const MIN_TTL: Duration = Duration::from_secs(1);
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest redirect URL accepted.
const MAX_REDIRECT_LEN: usize = 2048;

/// The path of a link page under the base URL.
pub const PAGE_PREFIX: &str = "/link/";

/// What a caller asked of a link, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOrder {
    /// How long the link works.
    pub ttl: Duration,
    /// Where the page goes once linked; empty for nowhere.
    pub redirect_url: String,
}

/// An issued link.
#[derive(Debug, Clone)]
pub struct IssuedLink {
    /// The page's URL, token included.
    pub url: String,
    /// When it stops working.
    pub expires_at: SystemTime,
}

/// Signs links to the page served at `base_url`.
#[derive(Debug, Clone)]
pub struct LinkIssuer {
    /// The signing key (shared with the page's server).
    key: Arc<LinkKey>,
    /// The public prefix, without a trailing `/`.
    base_url: String,
    /// Each session's link generation (shared with the page's server).
    generations: Arc<LinkGenerations>,
}

impl LinkIssuer {
    /// An issuer of links under `base_url`.
    pub fn new(key: Arc<LinkKey>, base_url: impl Into<String>, generations: Arc<LinkGenerations>) -> Self {
        Self {
            key,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            generations,
        }
    }

    /// Revokes every link to `id` issued so far (durably); UNAVAILABLE when that
    /// cannot be written.
    pub async fn revoke(&self, id: &SessionId) -> Result<u64, SessionError> {
        let generation = self.generations.revoke(id).await.map_err(|e| {
            SessionError::Unavailable(format!(
                "could not revoke the links of session {id} ({e}): check the data dir and retry"
            ))
        })?;
        tracing::info!(session_id = %id, generation, "links revoked");
        Ok(generation)
    }

    /// The public prefix links are built on.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Checks a request: `ttl` zero means the default; `redirect_url` empty, https,
    /// or a path on the page's own origin.
    pub fn order(&self, ttl: Duration, redirect_url: &str) -> Result<LinkOrder, SessionError> {
        let ttl = if ttl.is_zero() { DEFAULT_TTL } else { ttl };
        if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
            return Err(SessionError::InvalidArgument(format!(
                "ttl {} is out of range: ask for 1s to 24h, or leave it unset for 15m",
                humantime::format_duration(ttl)
            )));
        }
        check_redirect(redirect_url)?;
        Ok(LinkOrder {
            ttl,
            redirect_url: redirect_url.to_owned(),
        })
    }

    /// A link to `session` as it is now (a later session of the same id is not reached).
    pub fn issue(&self, session: &SessionView, order: LinkOrder, now: SystemTime) -> IssuedLink {
        let claims = Claims {
            session_id: session.id.as_str().to_owned(),
            created_ms: unix_ms(session.created_at),
            expires_ms: expiry_ms(now, order.ttl),
            redirect_url: order.redirect_url.clone(),
            issued_ms: unix_ms(now),
            generation: self.generations.current(&session.id),
        };
        let token = self.key.sign(&claims);
        tracing::info!(session_id = %session.id, ttl = ?order.ttl, "link page url issued");
        IssuedLink {
            url: format!("{}{PAGE_PREFIX}{token}", self.base_url),
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_millis(claims.expires_ms),
        }
    }
}

/// INVALID_ARGUMENT unless `url` is empty, an absolute https URL, or a path on the
/// page's own origin (`/done`, not `//host`).
fn check_redirect(url: &str) -> Result<(), SessionError> {
    if url.is_empty() {
        return Ok(());
    }
    let plain = url.len() <= MAX_REDIRECT_LEN && url.bytes().all(|b| b.is_ascii_graphic());
    let parsed = url.parse::<http::Uri>().ok().filter(|_| plain);
    let same_origin_path = url.starts_with('/') && !url.starts_with("//") && !url.contains('\\');
    let acceptable = parsed.is_some_and(|uri| {
        let https = uri.scheme_str() == Some("https") && uri.host().is_some_and(|h| !h.is_empty());
        let no_userinfo = uri.authority().is_none_or(|a| !a.as_str().contains('@'));
        (https && no_userinfo) || (same_origin_path && uri.scheme().is_none())
    });
    if acceptable {
        return Ok(());
    }
    Err(SessionError::InvalidArgument(format!(
        "redirect_url must be an https url (e.g. https://app.example.com/linked) or a path on the link page's origin (e.g. /linked), at most {MAX_REDIRECT_LEN} characters"
    )))
}

/// FAILED_PRECONDITION: this daemon serves no link page.
pub fn disabled() -> SessionError {
    SessionError::FailedPrecondition {
        message: "the link page is switched off: start wa-sessiond with --link-listen (e.g. 127.0.0.1:8080, or WA_SESSIOND_LINK_LISTEN) to use CreateLinkUrl".into(),
        status: None,
        reason: "LINK_PAGE_DISABLED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> LinkIssuer {
        let generations = Arc::new(LinkGenerations::new(std::path::Path::new("/nonexistent")));
        LinkIssuer::new(
            Arc::new(LinkKey::from_bytes([1; 32])),
            "https://link.example.com/wa/",
            generations,
        )
    }

    #[test]
    fn ttl_defaults_to_15_minutes_and_is_bounded_by_a_second_and_a_day() {
        let issuer = issuer();
        assert_eq!(issuer.order(Duration::ZERO, "").unwrap().ttl, DEFAULT_TTL);
        assert_eq!(issuer.order(MAX_TTL, "").unwrap().ttl, MAX_TTL);
        for bad in [Duration::from_millis(999), MAX_TTL + Duration::from_secs(1)] {
            let error = issuer.order(bad, "").unwrap_err().to_string();
            assert!(error.starts_with("ttl ") && error.contains("1s to 24h"), "{error}");
        }
    }

    #[test]
    fn redirects_are_https_or_same_origin_paths() {
        let issuer = issuer();
        for good in ["https://app.example.com/linked?x=1", "/linked", "/a/b?c=d"] {
            assert!(issuer.order(Duration::ZERO, good).is_ok(), "{good}");
        }
        for bad in [
            "http://app.example.com/",
            "javascript:alert(1)",
            "//evil.example.com/",
            "/\\evil.example.com",
            "https://user@evil.example.com/",
            "https:///nohost",
            "linked",
            "https://app.example.com/ space",
            "data:text/html,hi",
        ] {
            let error = issuer.order(Duration::ZERO, bad).unwrap_err();
            assert!(matches!(error, SessionError::InvalidArgument(_)), "{bad}");
        }
        let long = format!("https://app.example.com/{}", "a".repeat(MAX_REDIRECT_LEN));
        assert!(issuer.order(Duration::ZERO, &long).is_err());
    }

    #[test]
    fn the_disabled_error_says_how_to_switch_the_page_on() {
        let message = disabled().to_string();
        assert!(message.starts_with("the link page is switched off"), "{message}");
        assert!(message.contains("start wa-sessiond with --link-listen"), "{message}");
    }
}
