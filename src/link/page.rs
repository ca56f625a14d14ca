//! The documents the link page serves: the page itself (HTML with its CSS and JS
//! embedded, so it works offline and loads nothing from elsewhere) and the plain
//! page for a link that no longer works. Every response carries `no-store` and
//! `no-referrer`; the documents carry a Content-Security-Policy that allows only
//! their own inline style and script, by hash, and no one to frame them but the
//! origins of `--link-frame-ancestors` (none by default, with `X-Frame-Options: DENY`).

use std::sync::LazyLock;

use axum::{body::Body, response::Response};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use http::{header, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

const PAGE_HTML: &str = include_str!("assets/page.html");
const PAGE_CSS: &str = include_str!("assets/page.css");
const PAGE_JS: &str = include_str!("assets/page.js");
const INVALID_HTML: &str = include_str!("assets/invalid.html");
const INVALID_CSS: &str = "body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
background:#eef2f3;color:#111b21;font:17px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,Arial,sans-serif;padding:16px}\
.card{max-width:520px;background:#fff;border-radius:12px;padding:28px 32px;box-shadow:0 1px 3px rgba(0,0,0,.12)}\
h1{margin:0 0 8px;font-size:1.5rem}p{margin:0;color:#4a5a63}";

/// The page, split around its per-link configuration, and its policy.
struct Page {
    /// Everything before the configuration.
    head: String,
    /// Everything after the configuration.
    tail: String,
    /// Its Content-Security-Policy.
    policy: String,
}

static PAGE: LazyLock<Page> = LazyLock::new(|| {
    let html = PAGE_HTML.replace("{{STYLE}}", PAGE_CSS).replace("{{SCRIPT}}", PAGE_JS);
    let (head, tail) = html
        .split_once("{{CONFIG}}")
        .expect("the page has a configuration slot");
    let policy = format!(
        "default-src 'none'; script-src {}; style-src {}; img-src data:; connect-src 'self'; \
         base-uri 'none'; form-action 'none'",
        hash(PAGE_JS),
        hash(PAGE_CSS)
    );
    Page {
        head: head.to_owned(),
        tail: tail.to_owned(),
        policy,
    }
});

static INVALID_POLICY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src {}; base-uri 'none'; form-action 'none'",
        hash(INVALID_CSS)
    )
});

/// Who may show the documents in a frame, as their headers say it.
#[derive(Debug, Clone)]
pub struct Framing {
    /// The page's Content-Security-Policy, `frame-ancestors` included.
    page: HeaderValue,
    /// The plain page's.
    invalid: HeaderValue,
    /// `X-Frame-Options: DENY` too (when no origin may frame the page).
    deny: bool,
}

impl Framing {
    /// Framed by `origins` only; none when empty.
    pub fn new(origins: &[String]) -> Self {
        let ancestors = if origins.is_empty() {
            "'none'".to_owned()
        } else {
            origins.join(" ")
        };
        let policy = |base: &str| {
            HeaderValue::from_str(&format!("{base}; frame-ancestors {ancestors}"))
                .expect("origins are checked by config")
        };
        Self {
            page: policy(&PAGE.policy),
            invalid: policy(&INVALID_POLICY),
            deny: origins.is_empty(),
        }
    }

    fn apply(&self, headers: &mut http::HeaderMap, policy: &HeaderValue) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy.clone());
        if self.deny {
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
    }
}

/// `'sha256-…'` of an inline element's text, as CSP wants it.
fn hash(text: &str) -> String {
    format!("'sha256-{}'", B64.encode(Sha256::digest(text.as_bytes())))
}

/// Why a link cannot be used, as the plain page says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// Malformed or altered: 403.
    Forged,
    /// Past its expiry: 410.
    Expired,
    /// Its session was deleted: 410.
    Deleted,
    /// Revoked (RevokeLinks, a stop or logout by the operator), or its session linked
    /// since it was issued: 410.
    Revoked,
    /// The daemon cannot answer right now (starting, restarting): 503.
    Unavailable,
}

impl Unusable {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Unusable::Forged => StatusCode::FORBIDDEN,
            Unusable::Expired | Unusable::Deleted | Unusable::Revoked => StatusCode::GONE,
            Unusable::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `reason` it is counted under in `link_refusals`.
    pub fn reason(self) -> &'static str {
        match self {
            Unusable::Forged => "forged",
            Unusable::Expired => "expired",
            Unusable::Deleted => "deleted",
            Unusable::Revoked => "revoked",
            Unusable::Unavailable => "unavailable",
        }
    }

    /// What the page says: a title and what to do.
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Unusable::Forged => (
                "This link is no longer valid",
                "It is incomplete or was changed. Ask for a new link to link your WhatsApp.",
            ),
            Unusable::Expired => (
                "This link is no longer valid",
                "It has expired. Ask for a new link to link your WhatsApp.",
            ),
            Unusable::Deleted => (
                "This link is no longer valid",
                "The account it was made for is gone. Ask for a new link.",
            ),
            Unusable::Revoked => (
                "This link is no longer valid",
                "It was replaced, or the account is already linked. Ask for a new link to link your WhatsApp again.",
            ),
            Unusable::Unavailable => (
                "Not available right now",
                "The service is starting or busy. Reload this page in a moment.",
            ),
        }
    }
}

/// The link page, with its configuration (a JSON object) embedded as data.
pub fn link_page(config: &serde_json::Value, framing: &Framing) -> Response {
    // `<` never appears raw inside the data block, so it cannot close the element.
    let config = config.to_string().replace('<', "\\u003c");
    let body = format!("{}{config}{}", PAGE.head, PAGE.tail);
    let mut response = html(StatusCode::OK, body);
    framing.apply(response.headers_mut(), &framing.page);
    response
}

/// The plain page for a link that cannot be used: no QR, no script.
pub fn unusable_page(why: Unusable, framing: &Framing) -> Response {
    let (title, detail) = why.words();
    let body = INVALID_HTML
        .replace("{{STYLE}}", INVALID_CSS)
        .replace("{{TITLE}}", title)
        .replace("{{DETAIL}}", detail);
    let mut response = html(why.status(), body);
    framing.apply(response.headers_mut(), &framing.invalid);
    response
}

/// A plain-text answer (unknown paths, wrong methods).
pub fn text(status: StatusCode, body: &'static str) -> Response {
    respond(status, "text/plain; charset=utf-8", Body::from(body))
}

/// 429 with `Retry-After` (whole seconds) and what to do, as JSON; the connection
/// closes after it.
pub fn too_many(retry_after_secs: u64, message: &str) -> Response {
    let mut response = json(
        StatusCode::TOO_MANY_REQUESTS,
        serde_json::json!({ "error": message }).to_string(),
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A JSON answer.
pub fn json(status: StatusCode, body: String) -> Response {
    respond(status, "application/json", Body::from(body))
}

fn html(status: StatusCode, body: String) -> Response {
    respond(status, "text/html; charset=utf-8", Body::from(body))
}

fn respond(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    protect(headers);
    response
}

/// The headers every response of the link page carries.
pub fn protect(headers: &mut http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_embedded_script_and_style() {
        let policy = PAGE.policy.as_str();
        assert!(
            policy.contains(&hash(PAGE_JS)) && policy.contains(&hash(PAGE_CSS)),
            "{policy}"
        );
        assert!(!policy.contains("unsafe") && policy.starts_with("default-src 'none'"));
        let page = format!("{}{{}}{}", PAGE.head, PAGE.tail);
        assert!(page.contains(&format!("<script>{PAGE_JS}</script>")));
        assert!(page.contains(&format!("<style>{PAGE_CSS}</style>")));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "nothing loads from elsewhere"
        );
    }

    #[test]
    fn the_configuration_cannot_break_out_of_its_data_block() {
        let config = serde_json::json!({ "redirect_url": "/x</script><script>alert(1)</script>" });
        let response = link_page(&config, &Framing::new(&[]));
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(response.headers()[header::REFERRER_POLICY], "no-referrer");
        let body = futures_body(response);
        assert_eq!(
            body.matches("</script>").count(),
            2,
            "only the page's own two script elements close"
        );
    }

    #[test]
    fn unusable_links_get_a_plain_page_with_the_right_status() {
        let framing = Framing::new(&[]);
        assert_eq!(
            unusable_page(Unusable::Forged, &framing).status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(unusable_page(Unusable::Expired, &framing).status(), StatusCode::GONE);
        assert_eq!(unusable_page(Unusable::Deleted, &framing).status(), StatusCode::GONE);
        assert_eq!(unusable_page(Unusable::Revoked, &framing).status(), StatusCode::GONE);
        let body = futures_body(unusable_page(Unusable::Expired, &framing));
        assert!(body.contains("This link is no longer valid") && !body.contains("<script") && !body.contains("<img"));
    }

    #[test]
    fn no_one_frames_the_documents_unless_origins_are_named() {
        let config = serde_json::json!({});
        let denied = link_page(&config, &Framing::new(&[]));
        let policy = denied.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(policy.ends_with("; frame-ancestors 'none'"), "{policy}");
        assert_eq!(denied.headers()[header::X_FRAME_OPTIONS], "DENY");
        let named = Framing::new(&["https://app.example.com".into(), "http://127.0.0.1:3000".into()]);
        let framed = unusable_page(Unusable::Expired, &named);
        let policy = framed.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            policy.ends_with("; frame-ancestors https://app.example.com http://127.0.0.1:3000"),
            "{policy}"
        );
        assert!(framed.headers().get(header::X_FRAME_OPTIONS).is_none());
    }

    fn futures_body(response: Response) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let bytes = runtime
            .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}
