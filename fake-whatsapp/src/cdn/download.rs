//! Downloads as whatsapp-rust 0.7.0 fetches them: `GET {direct_path}?auth=
//! &token=` (token: the ciphertext's SHA-256, base64url), answered with the
//! stored ciphertext; 404 for an unknown path or a token that is not the
//! file's, 410 once the file expired.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use tracing::debug;

use super::{answer, Cdn};

pub(super) async fn handle(cdn: &Cdn, path: &str, query: &HashMap<String, String>) -> Response<Full<Bytes>> {
    let blob = {
        let mut store = cdn.store().await;
        store.counts.downloads += 1;
        store.blobs.get(path).cloned()
    };
    let Some(blob) = blob.filter(|blob| query.get("token") == Some(&blob.token)) else {
        debug!(%path, "download of an unknown file");
        return answer(StatusCode::NOT_FOUND, "no such file");
    };
    if blob.expired {
        debug!(%path, "download of an expired file");
        return answer(StatusCode::GONE, "the file expired");
    }
    debug!(%path, size = blob.data.len(), "download");
    answer(StatusCode::OK, blob.data)
}
