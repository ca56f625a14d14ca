//! Reading WhatsApp Web's current version from its sw.js, with whatsapp-rust's
//! HTTP client abstraction and sw.js parser (its own `fetch_latest_app_version`
//! cannot be pointed anywhere but web.whatsapp.com). Bounded; errors in words.

use std::{sync::Arc, time::Duration};

use whatsapp_rust::{
    http::{HttpClient, HttpRequest},
    version::parse_sw_js,
};

/// The longest a fetch of sw.js may take.
pub const FETCH_BOUND: Duration = Duration::from_secs(30);

/// The headers a browser sends for sw.js (what whatsapp-rust sends).
const USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// The version sw.js at `url` names, or why there is none.
pub async fn latest(http: &Arc<dyn HttpClient>, url: &str) -> Result<(u32, u32, u32), String> {
    let request = HttpRequest::get(url)
        .with_header("sec-fetch-site", "none")
        .with_header("user-agent", USER_AGENT);
    let response = tokio::time::timeout(FETCH_BOUND, http.execute(request))
        .await
        .map_err(|_| format!("{url} did not answer within {FETCH_BOUND:?}"))?
        .map_err(|e| format!("fetching {url} failed: {e:#}"))?;
    if !(200..300).contains(&response.status_code) {
        return Err(format!("{url} answered HTTP {}", response.status_code));
    }
    let body = String::from_utf8_lossy(&response.body);
    match parse_sw_js(&body) {
        // The library's fallback when only an assets manifest is found: no revision.
        Some((_, _, 0)) | None => Err(format!("{url} names no client_revision")),
        Some(version) => Ok(version),
    }
}
