//! The HTTP admin port: `/livez` (200 while every long-lived task runs), `/readyz` (200 once
//! sessions are restored and gRPC serves, 503 before and while draining) and
//! `/metrics` (Prometheus / OpenMetrics text). Plain HTTP/1.1 on hyper, one request
//! per connection, a bounded number of connections at once.

use std::{convert::Infallible, sync::Arc, time::Duration};

use http::{header, Method, Request, Response, StatusCode};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tracing::{debug, info};

use crate::{http_accept::accept_loop, metrics::Metrics, readiness::Readiness};

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The content type of `/metrics`.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the admin port reads.
#[derive(Clone)]
pub struct Admin {
    /// The metrics `/metrics` encodes.
    pub metrics: Arc<Metrics>,
    /// What `/readyz` and `/livez` answer (`app::run` sets it).
    pub readiness: Arc<Readiness>,
}

impl Admin {
    /// Serves the admin port on `listener` until the task is dropped; returns only
    /// if the listener can never accept again, with why.
    pub async fn serve(self, listener: TcpListener) -> std::io::Error {
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, "admin port serving /livez, /readyz, /metrics");
        }
        accept_loop(listener, MAX_CONNECTIONS, "admin port", |stream| {
            self.clone().connection(TokioIo::new(stream))
        })
        .await
    }

    async fn connection(self, io: TokioIo<tokio::net::TcpStream>) {
        let service = service_fn(move |request| {
            let response = self.respond(&request);
            async move { Ok::<_, Infallible>(response) }
        });
        let served = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(false)
            .serve_connection(io, service)
            .await;
        if let Err(e) = served {
            debug!(error = %e, "admin connection ended with an error");
        }
    }

    fn respond(&self, request: &Request<Incoming>) -> Response<String> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into());
        }
        match request.uri().path() {
            "/livez" => match self.readiness.not_live_reason() {
                None => text(StatusCode::OK, "ok\n".into()),
                Some(what) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not live: {what} ended\n")),
            },
            "/readyz" => match self.readiness.not_ready_reason() {
                None => text(StatusCode::OK, "ready\n".into()),
                Some(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
            },
            "/metrics" => {
                let mut response = text(StatusCode::OK, self.metrics.encode());
                let content_type = header::HeaderValue::from_static(OPENMETRICS);
                response.headers_mut().insert(header::CONTENT_TYPE, content_type);
                response
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: try /livez, /readyz or /metrics\n".into(),
            ),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let content_type = header::HeaderValue::from_static("text/plain; charset=utf-8");
    response.headers_mut().insert(header::CONTENT_TYPE, content_type);
    response
}
