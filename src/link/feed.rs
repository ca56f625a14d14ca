//! The page's live feed: Server-Sent Events fed by the session's watch stream, with
//! the QR kept fresh while the page is open. Each state is an event whose id is the
//! session's revision, so a page that reconnects (`Last-Event-ID`, or
//! `?last_event_id=` when it reopens the feed itself) gets only what is newer. The
//! feed ends after the idle timeout (`idle`), and when the link or its session is
//! gone (`gone`); a daemon that cannot answer just ends it, and the browser retries.
//!
//! No feed outlives its bounds: each update waits at most `--link-write-timeout` for
//! the client to take it, and once a feed ends, for whatever reason, its connection
//! is cut after that same grace, so a client that stopped reading frees its place.
//! A link has at most `--link-max-feeds-per-link` feeds open (429 beyond).

use std::{
    convert::Infallible,
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::response::{
    sse::{Event, KeepAlive, Sse},
    IntoResponse, Response,
};
use http::{header, HeaderValue, Request};
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::{wrappers::ReceiverStream, StreamExt};

use super::{
    admit::{same_session, unusable, Admitted, Cut, LinkApp, PEEK},
    page::{self, Unusable},
    view::PageState,
};
use crate::error::SessionError;

/// Where a feed's events go: to its response, each within the write timeout.
struct Outlet {
    /// The response's side.
    tx: mpsc::Sender<Result<Event, Infallible>>,
    /// How long one event may wait for the client.
    timeout: Duration,
}

impl Outlet {
    /// Whether `event` was taken in time (false: the client is gone or stopped reading).
    async fn send(&self, event: Event) -> bool {
        self.tx.send_timeout(Ok(event), self.timeout).await.is_ok()
    }
}

/// Events a slow page may lag behind; past that the feed ends and the page resumes.
const EVENT_BUFFER: usize = 16;
/// How often an idle feed sends a comment, so dead connections are noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How soon the browser reconnects a feed that ended by itself.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// What a link past its feed cap waits before trying again, in seconds.
const FEED_RETRY_AFTER: u64 = 5;
/// What an `idle` event tells the browser, in case it reconnects anyway: not soon.
const NEVER: Duration = Duration::from_secs(24 * 60 * 60);

/// `GET …/link/<token>/events`.
pub async fn events<B>(app: Arc<LinkApp>, token: &str, request: &Request<B>) -> Response {
    let after = last_event_id(request);
    let admitted = app.admit(token).await;
    let place = match admitted {
        Ok(_) => match app.caps.feed(token) {
            Some(place) => Some(place),
            None => {
                app.metrics.link.refused("link_feeds");
                return page::too_many(
                    FEED_RETRY_AFTER,
                    "this link has too many pages open: close one and reload",
                );
            }
        },
        Err(_) => None,
    };
    let cut = request.extensions().get::<Cut>().cloned();
    let (tx, rx) = mpsc::channel(EVENT_BUFFER);
    let outlet = Outlet {
        tx,
        timeout: app.write_timeout,
    };
    let open = app.metrics.link.feed_opened();
    tokio::spawn(async move {
        let grace = outlet.timeout;
        if outlet
            .send(Event::default().retry(RECONNECT_AFTER).comment("wa-sessiond"))
            .await
        {
            match admitted {
                Ok(admitted) => run(app, admitted, after, &outlet).await,
                Err(Unusable::Unavailable) => {}
                Err(_) => {
                    outlet.send(gone()).await;
                }
            }
        }
        drop(outlet);
        if let Some(cut) = cut {
            cut.after(grace);
        }
    });
    // The feed's place and its count last as long as its response.
    let held = (place, open);
    let events = ReceiverStream::new(rx).map(move |event| {
        let _held = &held;
        event
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    let headers = response.headers_mut();
    page::protect(headers);
    // Its connection is cut once the feed ends: not one to reuse.
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Feeds one page until it goes away, idles, or its link or session is gone.
async fn run(app: Arc<LinkApp>, admitted: Admitted, mut after: Option<u64>, outlet: &Outlet) {
    let Admitted { claims, id } = admitted;
    let mut changes = match app.sessions.watch(id.clone(), true).await {
        Ok(changes) => changes,
        Err(SessionError::NotFound(_)) => {
            outlet.send(gone()).await;
            return;
        }
        Err(_) => return,
    };
    let idle = tokio::time::sleep(app.idle_timeout);
    let link_left = Duration::from_millis(
        claims
            .expires_ms
            .saturating_sub(crate::store::unix_ms(SystemTime::now())),
    );
    let link_over = tokio::time::sleep_until(Instant::now() + link_left);
    tokio::pin!(idle, link_over);
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Some(view) if !same_session(&claims, &view) => {
                    outlet.send(gone()).await;
                    return;
                }
                Some(view) => {
                    if after.is_some_and(|seen| view.revision <= seen) {
                        continue;
                    }
                    after = Some(view.revision);
                    let state = PageState::of(&view, SystemTime::now());
                    let event = Event::default().event("state").id(view.revision.to_string()).data(state.json());
                    if !outlet.send(event).await {
                        return;
                    }
                }
                None => {
                    // Deleted (the watch ends), or restarting / shutting down (the page
                    // reconnects and resumes).
                    if let Err(e) = app.sessions.get(id.clone(), PEEK).await {
                        if unusable(&e) == Unusable::Deleted {
                            outlet.send(gone()).await;
                        }
                    }
                    return;
                }
            },
            () = &mut idle => {
                outlet.send(Event::default().event("idle").retry(NEVER).data("{}")).await;
                return;
            }
            () = &mut link_over => {
                outlet.send(gone()).await;
                return;
            }
            () = outlet.tx.closed() => return,
        }
    }
}

/// The link (or its session) is gone: the page shows so and stops.
fn gone() -> Event {
    Event::default().event("gone").retry(NEVER).data("{}")
}

/// The revision the page already has: the `Last-Event-ID` header of a browser's own
/// reconnect, or `?last_event_id=` of one the page made.
fn last_event_id<B>(request: &Request<B>) -> Option<u64> {
    let header = request
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let query = request.uri().query().and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("last_event_id="))
            .and_then(|v| v.parse().ok())
    });
    header.or(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revision_seen_comes_from_the_header_or_the_query() {
        let header = Request::builder()
            .uri("/link/t/events")
            .header("Last-Event-ID", "41")
            .body(())
            .unwrap();
        assert_eq!(last_event_id(&header), Some(41));
        let query = Request::builder()
            .uri("/link/t/events?last_event_id=7")
            .body(())
            .unwrap();
        assert_eq!(last_event_id(&query), Some(7));
        let none = Request::builder().uri("/link/t/events?x=1").body(()).unwrap();
        assert_eq!(last_event_id(&none), None);
    }
}
