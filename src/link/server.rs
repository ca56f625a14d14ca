//! The link page's HTTP listener (HTTP/1.1 on hyper, a bounded number of
//! connections, a capped number per client address, hyper's bound on the time a
//! request head may take) and its routes. Every route sits under `…/link/<token>`
//! (whatever prefix an ingress keeps in front of it) and starts by checking the
//! token and that its session still exists (`admit`), before anything else is read.

use std::{convert::Infallible, sync::Arc};

use axum::response::Response;
use http::{Method, Request, StatusCode};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

use super::{
    actions,
    admit::{Cut, LinkApp},
    feed, page,
};
use crate::http_accept::accept_loop;

/// Connections served at once (each open page holds one for its feed); more wait
/// in the listen backlog.
const MAX_CONNECTIONS: usize = 1024;
/// What a client past its connection cap waits before trying again.
const CLIENT_RETRY_AFTER: u64 = 5;

/// Serves `app` on `listener` until the task is dropped; returns only if the
/// listener can never accept again, with why.
pub async fn serve(app: Arc<LinkApp>, listener: TcpListener) -> std::io::Error {
    accept_loop(listener, MAX_CONNECTIONS, "link page", |stream| {
        let _ = stream.set_nodelay(true);
        connection(app.clone(), stream)
    })
    .await
}

/// Serves one connection: routes its requests, or answers each 429 when its client
/// address already holds its cap; ends when the client does, when a request head
/// takes too long, or when a feed on it wants it cut.
async fn connection(app: Arc<LinkApp>, stream: TcpStream) {
    let place = stream.peer_addr().ok().map(|peer| app.caps.connection(peer.ip()));
    let over_cap = matches!(place, Some(None));
    let read_timeout = app.read_timeout;
    let cut = Cut::default();
    let on_request = cut.clone();
    let service = service_fn(move |mut request: Request<Incoming>| {
        let app = app.clone();
        request.extensions_mut().insert(on_request.clone());
        async move {
            if over_cap {
                app.metrics.link.refused("client_connections");
                return Ok::<_, Infallible>(page::too_many(
                    CLIENT_RETRY_AFTER,
                    "too many connections from your address: close some pages and retry",
                ));
            }
            Ok::<_, Infallible>(route(app, request).await)
        }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        served = served => if let Err(e) = served {
            debug!(error = %e, "link page connection ended with an error");
        },
        () = cut.wanted() => debug!("link page connection cut after its feed ended"),
    }
    drop(place);
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
            Ok(admitted) => {
                app.metrics.link.page_viewed();
                let config = serde_json::json!({ "redirect_url": admitted.claims.redirect_url });
                page::link_page(&config, &app.framing)
            }
            Err(why) => page::unusable_page(why, &app.framing),
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
