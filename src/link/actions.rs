//! What a page may do besides watching: get a new QR code (`POST …/refresh`) and
//! ask for a pairing code (`POST …/pairing-code`), both scoped to the link's one
//! session. Against cross-site requests: the body must be JSON (a cross-origin
//! page cannot send that without a CORS preflight, which is never granted), and an
//! `Origin` or `Sec-Fetch-Site` that names another site is refused.
//!
//! Nothing of the body is read before the link is admitted, and then only within
//! `--link-read-timeout` (408 past it). Each action draws on an allowance per link
//! and per session (`--link-action-burst`, `--link-action-period`): past it, 429
//! with `Retry-After`, and WhatsApp is not asked.

use std::{sync::Arc, time::SystemTime};

use axum::{body::Body, response::Response};
use http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::{
    admit::{Admitted, LinkApp, PEEK},
    limits::Action,
    page,
    view::{PagePairingCode, PageState},
};
use crate::{
    domain::{input, QrRequest},
    error::SessionError,
};

/// The largest request body accepted.
const MAX_BODY: usize = 1024;

/// The body of `POST …/pairing-code`.
#[derive(Deserialize)]
struct PairingCodeBody {
    /// `+15551234567` or digits.
    phone_number: String,
}

/// `POST …/refresh`: a new connection and its first code (the page's "Get a new
/// code"). A session that linked meanwhile answers with its state instead.
pub async fn refresh(app: Arc<LinkApp>, token: &str, request: Request<Incoming>) -> Response {
    let admitted = match admit_post(&app, token, request).await {
        Ok((admitted, _)) => admitted,
        Err(response) => return response,
    };
    if let Some(response) = over_rate(&app, Action::Refresh, token, &admitted) {
        return response;
    }
    let request = QrRequest {
        min_validity: std::time::Duration::ZERO,
        may_refresh: true,
        deadline: None,
    };
    let view = match app.sessions.refresh_qr(admitted.id.clone(), request).await {
        Err(SessionError::FailedPrecondition { .. }) => app.sessions.get(admitted.id.clone(), PEEK).await,
        answer => answer,
    };
    match view {
        Ok(view) => {
            app.metrics.link.refreshed();
            page::json(StatusCode::OK, PageState::of(&view, SystemTime::now()).json())
        }
        Err(e) => failure(&e),
    }
}

/// `POST …/pairing-code` with `{"phone_number": "+15551234567"}`.
pub async fn pairing_code(app: Arc<LinkApp>, token: &str, request: Request<Incoming>) -> Response {
    let (admitted, body) = match admit_post(&app, token, request).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let Ok(body) = serde_json::from_slice::<PairingCodeBody>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "send {\"phone_number\": \"+15551234567\"} as json",
        );
    };
    let phone = match input::phone_number(&body.phone_number) {
        Ok(phone) => phone,
        Err(e) => return failure(&e),
    };
    if let Some(response) = over_rate(&app, Action::PairingCode, token, &admitted) {
        return response;
    }
    match app.sessions.request_pairing_code(admitted.id.clone(), phone).await {
        Ok(code) => {
            app.metrics.link.pairing_code_given();
            let code = PagePairingCode::of(&code, SystemTime::now());
            page::json(StatusCode::OK, serde_json::to_string(&code).expect("serializes"))
        }
        Err(e) => failure(&e),
    }
}

/// Checks that the request comes from the page itself and admits its token, then
/// (only then) reads its body, within the read timeout.
async fn admit_post(
    app: &LinkApp,
    token: &str,
    request: Request<Incoming>,
) -> Result<(Admitted, axum::body::Bytes), Response> {
    if let Err(why) = same_site(request.headers(), app.public_origin.as_deref()) {
        app.metrics.link.refused("cross_site");
        return Err(error(StatusCode::FORBIDDEN, why));
    }
    let admitted = app
        .admit(token)
        .await
        .map_err(|why| error(why.status(), "this link is no longer valid: ask for a new one"))?;
    let read = axum::body::to_bytes(Body::new(request.into_body()), MAX_BODY);
    match tokio::time::timeout(app.read_timeout, read).await {
        Ok(Ok(body)) => Ok((admitted, body)),
        Ok(Err(_)) => {
            app.metrics.link.refused("body_too_large");
            Err(closing(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large",
            )))
        }
        Err(_) => {
            app.metrics.link.refused("slow_body");
            let message = "the request body took too long to arrive: send it at once";
            Err(closing(error(StatusCode::REQUEST_TIMEOUT, message)))
        }
    }
}

/// Takes one `action` from the link's and its session's allowance; past it, the
/// 429 that says when to retry.
fn over_rate(app: &LinkApp, action: Action, token: &str, admitted: &Admitted) -> Option<Response> {
    let wait = app.limits.take(action, token, &admitted.id).err()?;
    app.metrics.link.refused("rate_limited");
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let what = match action {
        Action::Refresh => "new codes",
        Action::PairingCode => "pairing codes",
    };
    let message = format!("too many {what} asked for this link: try again in {seconds} s");
    Some(page::too_many(seconds, &message))
}

/// `response`, after which the connection closes (its body was not read whole).
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Whether the headers show a request the page itself made: JSON, and not from
/// another site.
fn same_site(headers: &HeaderMap, public_origin: Option<&str>) -> Result<(), &'static str> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return Err("send the request as application/json from the link page");
    }
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if fetch_site.is_some_and(|site| site != "same-origin" && site != "none") {
        return Err("requests from other sites are refused");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let authority = origin.split_once("://").map(|(_, rest)| rest).unwrap_or_default();
    if (!host.is_empty() && authority.eq_ignore_ascii_case(host))
        || public_origin.is_some_and(|o| o.eq_ignore_ascii_case(origin))
    {
        return Ok(());
    }
    Err("requests from other sites are refused")
}

/// A failed session call, as the page reads it.
fn failure(e: &SessionError) -> Response {
    let status = match e {
        SessionError::NotFound(_) => StatusCode::GONE,
        SessionError::InvalidArgument(_) | SessionError::OutOfRange(_) => StatusCode::BAD_REQUEST,
        SessionError::FailedPrecondition { .. }
        | SessionError::CursorExpired { .. }
        | SessionError::AlreadyExists(_) => StatusCode::CONFLICT,
        SessionError::Missing(_) => StatusCode::NOT_FOUND,
        SessionError::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
        SessionError::Unavailable(_) | SessionError::MediaExpired(_) => StatusCode::SERVICE_UNAVAILABLE,
        SessionError::ResourceExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
        SessionError::Unauthenticated(_) | SessionError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, &e.to_string())
}

fn error(status: StatusCode, message: &str) -> Response {
    page::json(status, serde_json::json!({ "error": message }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_json_from_the_page_itself_is_accepted() {
        let page = [("content-type", "application/json"), ("host", "127.0.0.1:8080")];
        assert!(same_site(&headers(&page), None).is_ok());
        let mut same = page.to_vec();
        same.extend([("origin", "http://127.0.0.1:8080"), ("sec-fetch-site", "same-origin")]);
        assert!(same_site(&headers(&same), None).is_ok());

        let form = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("host", "127.0.0.1:8080"),
        ];
        assert!(same_site(&headers(&form), None).is_err());
        let mut other = page.to_vec();
        other.push(("origin", "https://evil.example.com"));
        assert!(same_site(&headers(&other), None).is_err());
        let mut cross = page.to_vec();
        cross.push(("sec-fetch-site", "cross-site"));
        assert!(same_site(&headers(&cross), None).is_err());
    }

    #[test]
    fn behind_a_proxy_the_public_origin_counts_as_the_page() {
        let proxied = [
            ("content-type", "application/json; charset=utf-8"),
            ("host", "wa-sessiond:8080"),
            ("origin", "https://link.example.com"),
        ];
        assert!(same_site(&headers(&proxied), Some("https://link.example.com")).is_ok());
        assert!(same_site(&headers(&proxied), None).is_err());
    }
}
