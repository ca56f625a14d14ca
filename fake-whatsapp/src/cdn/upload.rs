//! Uploads as whatsapp-rust 0.7.0 sends them: `POST /mms/{type}/{token}?auth=
//! &token=[&file_offset=N]` with the ciphertext as the body (token: the
//! ciphertext's SHA-256, base64url), answered `{"url", "direct_path"}`; and,
//! for files of 5 MiB and more, the resume check first (`&resume=1`, no body):
//! `{"resume": "complete", url, direct_path}` when the CDN holds the file,
//! `{"resume": "N"}` when an upload broke off after N bytes, 404 otherwise.

use std::collections::HashMap;

use base64::{prelude::BASE64_URL_SAFE_NO_PAD, Engine as _};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{body::Incoming, Response, StatusCode};
use sha2::{Digest as _, Sha256};
use tracing::{debug, info};

use super::{answer, json, Cdn};

pub(super) async fn handle(
    cdn: &Cdn,
    path: &str,
    query: &HashMap<String, String>,
    mut body: Incoming,
) -> Response<Full<Bytes>> {
    if query.get("auth") != Some(&cdn.auth) {
        return answer(StatusCode::UNAUTHORIZED, "bad or missing media auth token");
    }
    let token = path.rsplit('/').next().unwrap_or_default().to_owned();
    if token.is_empty() || query.get("token") != Some(&token) {
        return answer(StatusCode::BAD_REQUEST, "the path's token and the query's differ");
    }
    if query.get("resume").map(String::as_str) == Some("1") {
        return resume_check(cdn, &token).await;
    }
    let offset: usize = query.get("file_offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let mut received = {
        let mut store = cdn.store().await;
        let mut partial = store.partial.remove(&token).unwrap_or_default();
        if partial.len() < offset {
            return answer(StatusCode::BAD_REQUEST, "file_offset beyond the bytes received");
        }
        partial.truncate(offset);
        partial
    };
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    received.extend_from_slice(&data);
                }
            }
            Err(e) => {
                debug!(%token, got = received.len(), error = %e, "upload broke off; kept for a resume");
                cdn.store().await.partial.insert(token, received);
                return answer(StatusCode::BAD_REQUEST, "the upload broke off");
            }
        }
    }
    if BASE64_URL_SAFE_NO_PAD.encode(Sha256::digest(&received)) != token {
        return answer(StatusCode::BAD_REQUEST, "the body's sha256 is not the token");
    }
    let size = received.len();
    let (url, direct_path) = {
        let mut store = cdn.store().await;
        store.counts.uploads += 1;
        store.counts.resumed_uploads += u64::from(offset > 0);
        cdn.insert(&mut store, Bytes::from(received), token)
    };
    info!(%direct_path, size, resumed_at = offset, "a device uploaded media");
    json(&serde_json::json!({ "url": url, "direct_path": direct_path }))
}

async fn resume_check(cdn: &Cdn, token: &str) -> Response<Full<Bytes>> {
    let mut store = cdn.store().await;
    store.counts.resume_checks += 1;
    let held = store
        .blobs
        .iter()
        .find(|(_, blob)| blob.token == token && !blob.expired)
        .map(|(path, _)| path.clone());
    if let Some(direct_path) = held {
        let url = format!("https://{}{direct_path}", cdn.host);
        return json(&serde_json::json!({ "resume": "complete", "url": url, "direct_path": direct_path }));
    }
    match store.partial.get(token).map(Vec::len) {
        Some(got) if got > 0 => json(&serde_json::json!({ "resume": got.to_string() })),
        _ => answer(StatusCode::NOT_FOUND, "no upload under this token"),
    }
}
