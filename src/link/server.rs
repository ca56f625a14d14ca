//! The link page's HTTP listener (HTTP/1.1 on hyper, a bounded number of
//! connections) and its routes. Every route sits under `…/link/<token>` (whatever
//! prefix an ingress keeps in front of it) and starts by checking the token and
//! that its session still exists (`admit`).

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::response::Response;
use http::{Method, Request, StatusCode};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tracing::debug;

use super::{actions, admit::LinkApp, feed, page};
use crate::http_accept::accept_loop;

/// Connections served at once (each open page holds one for its feed); more wait
/// in the listen backlog.
const MAX_CONNECTIONS: usize = 1024;
/// How long a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until the task is dropped; returns only if the
/// listener can never accept again, with why.
pub async fn serve(app: Arc<LinkApp>, listener: TcpListener) -> std::io::Error {
    accept_loop(listener, MAX_CONNECTIONS, "link page", |stream| {
        let _ = stream.set_nodelay(true);
        connection(app.clone(), TokioIo::new(stream))
    })
    .await
}

async fn connection(app: Arc<LinkApp>, io: TokioIo<tokio::net::TcpStream>) {
    let service = service_fn(move |request| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(route(app, request).await) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(io, service)
        .await;
    if let Err(e) = served {
        debug!(error = %e, "link page connection ended with an error");
    }
}

/// `…/link/<token>[/<action>]` → (token, action).
fn split_path(path: &str) -> Option<(&str, &str)> {
    let segments: Vec<&str> = path.split('/').collect();
    let at = segments.iter().rposition(|s| *s == "link")?;
    match &segments[at + 1..] {
        [token] if !token.is_empty() => Some((token, "")),
        [token, action] if !token.is_empty() => Some((token, action)),
        _ => None,
    }
}

async fn route(app: Arc<LinkApp>, request: Request<Incoming>) -> Response {
    let Some((token, action)) = split_path(request.uri().path()) else {
        return page::text(StatusCode::NOT_FOUND, "not found: open the link you were sent\n");
    };
    let token = token.to_owned();
    match (request.method().clone(), action) {
        (Method::GET | Method::HEAD, "") => match app.admit(&token).await {
            Ok(admitted) => page::link_page(&serde_json::json!({
                "redirect_url": admitted.claims.redirect_url,
            })),
            Err(why) => page::unusable_page(why),
        },
        (Method::GET, "events") => feed::events(app, &token, &request).await,
        (Method::POST, "refresh") => actions::refresh(app, &token, request).await,
        (Method::POST, "pairing-code") => actions::pairing_code(app, &token, request).await,
        (_, "" | "events" | "refresh" | "pairing-code") => {
            page::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => page::text(StatusCode::NOT_FOUND, "not found: open the link you were sent\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_found_under_any_prefix() {
        assert_eq!(split_path("/link/abc"), Some(("abc", "")));
        assert_eq!(split_path("/link/abc/events"), Some(("abc", "events")));
        assert_eq!(split_path("/wa/link/abc/refresh"), Some(("abc", "refresh")));
        assert_eq!(split_path("/link/"), None);
        assert_eq!(split_path("/link"), None);
        assert_eq!(split_path("/"), None);
        assert_eq!(split_path("/link/abc/events/more"), None);
    }
}
