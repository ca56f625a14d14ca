//! A tower layer on the gRPC server that bounds the calls in flight across every
//! connection (`--max-inflight-calls`), so that many connections of 256 streams each
//! cannot make the daemon hold work without limit. A call past the bound is answered
//! `RESOURCE_EXHAUSTED` at once, never queued: a queue would only turn overload into
//! timeouts, while a quick refusal lets the caller back off or go to another replica.
//!
//! What counts: a call holds its place from the moment its request arrives until its
//! response headers are out (or the caller goes away first). A unary call is thus
//! counted for all of its work; a server stream (`WatchSession`, `WatchSessions`,
//! reflection) only while it is being set up. An open stream does no work of its own
//! until something changes, and counting it would let a few hundred idle watchers
//! starve every unary call, so the streams' own bounds are the per-connection stream
//! limit and the connections themselves.
//!
//! Health checks (`grpc.health.v1.Health`) are never counted nor refused: a probe
//! must see a busy daemon as alive and serving, not restart it.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_layer::Layer;
use tower_service::Service;

/// The path prefix of the health service's methods, which the bound leaves alone.
const HEALTH_PATH_PREFIX: &str = "/grpc.health.v1.Health/";

/// The layer: one per server, its places shared by every connection.
#[derive(Clone)]
pub struct InflightLimitLayer {
    /// One permit per call that may be in flight.
    places: Arc<Semaphore>,
    /// The bound, for the refusal's message.
    max: usize,
}

impl InflightLimitLayer {
    /// At most `max` calls in flight at once (at least one).
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            places: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// The answer to a call past the bound.
    fn refusal(&self) -> tonic::Status {
        tonic::Status::resource_exhausted(format!(
            "the daemon is already serving its limit of {} calls at once (--max-inflight-calls): retry with backoff, spread the calls over more replicas, or raise the limit",
            self.max
        ))
    }
}

impl<S> Layer<S> for InflightLimitLayer {
    type Service = InflightLimit<S>;

    fn layer(&self, inner: S) -> InflightLimit<S> {
        InflightLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service the layer wraps around the server's routes.
#[derive(Clone)]
pub struct InflightLimit<S> {
    /// The routes.
    inner: S,
    /// The shared places.
    layer: InflightLimitLayer,
}

impl<S, B, ResBody> Service<http::Request<B>> for InflightLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = InflightFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path().starts_with(HEALTH_PATH_PREFIX) {
            return InflightFuture::Admitted {
                inner: self.inner.call(request),
                permit: None,
            };
        }
        match self.layer.places.clone().try_acquire_owned() {
            Ok(permit) => InflightFuture::Admitted {
                inner: self.inner.call(request),
                permit: Some(permit),
            },
            Err(_) => InflightFuture::Refused {
                response: Some(self.layer.refusal().into_http()),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The routes' response future holding its call's place until the response
    /// headers are out (or until dropped), or the refusal.
    #[project = InflightProjection]
    pub enum InflightFuture<F, ResBody> {
        /// Admitted: the routes' future and the place it holds (none for health).
        Admitted {
            #[pin]
            inner: F,
            permit: Option<OwnedSemaphorePermit>,
        },
        /// Refused: the RESOURCE_EXHAUSTED answer, until it is taken.
        Refused {
            response: Option<http::Response<ResBody>>,
        },
    }
}

impl<F, ResBody, E> std::future::Future for InflightFuture<F, ResBody>
where
    F: std::future::Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            InflightProjection::Admitted { inner, permit } => {
                let output = std::task::ready!(inner.poll(cx));
                // The headers are out: the place is free for the next call.
                permit.take();
                Poll::Ready(output)
            }
            InflightProjection::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{future::Future, time::Duration};

    use tokio::sync::watch;

    use super::*;

    /// Routes whose every call waits until the gate opens, then answers OK.
    #[derive(Clone)]
    struct Gate {
        open: watch::Receiver<bool>,
    }

    impl Service<http::Request<()>> for Gate {
        type Response = http::Response<String>;
        type Error = std::convert::Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            let mut open = self.open.clone();
            Box::pin(async move {
                let _ = open.wait_for(|open| *open).await;
                Ok(http::Response::new("ok".to_owned()))
            })
        }
    }

    const GET: &str = "/wasessiond.v1.SessionService/GetSession";
    const HEALTH: &str = "/grpc.health.v1.Health/Check";

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder().uri(path).body(()).unwrap()
    }

    /// The response's `grpc-status` header: Some only for the layer's refusal.
    fn grpc_status(response: http::Response<String>) -> Option<String> {
        let status = response.headers().get("grpc-status");
        status.map(|v| v.to_str().unwrap().to_owned())
    }

    /// Awaits `call` within a bound.
    async fn answer<F: Future<Output = Result<http::Response<String>, std::convert::Infallible>>>(
        call: F,
    ) -> http::Response<String> {
        let answered = tokio::time::timeout(Duration::from_secs(5), call).await;
        answered.expect("answered within 5s").unwrap()
    }

    #[tokio::test]
    async fn past_the_bound_a_call_is_refused_at_once_but_health_is_answered() {
        let (_gate, open) = watch::channel(false);
        let mut service = InflightLimitLayer::new(2).layer(Gate { open });
        let _first = service.call(request(GET));
        let _second = service.call(request(GET));

        let refused = answer(service.call(request(GET))).await;
        let message = refused.headers()["grpc-message"].to_str().unwrap().to_owned();
        assert_eq!(grpc_status(refused).as_deref(), Some("8"), "RESOURCE_EXHAUSTED");
        assert!(message.contains("limit%20of%202%20calls"), "{message}");
        assert!(message.contains("--max-inflight-calls"), "{message}");

        let health = service.call(request(HEALTH));
        assert!(
            matches!(health, InflightFuture::Admitted { .. }),
            "health is never refused"
        );
    }

    #[tokio::test]
    async fn a_place_comes_back_when_a_call_is_answered_or_abandoned() {
        let (gate, open) = watch::channel(false);
        let mut service = InflightLimitLayer::new(2).layer(Gate { open });
        let abandoned = service.call(request(GET));
        let answered = service.call(request(GET));
        drop(abandoned);
        let third = service.call(request(GET));
        assert!(
            matches!(third, InflightFuture::Admitted { .. }),
            "the abandoned call's place"
        );

        gate.send_replace(true);
        assert_eq!(grpc_status(answer(answered).await), None, "answered by the routes");
        let fourth = service.call(request(GET));
        assert!(
            matches!(fourth, InflightFuture::Admitted { .. }),
            "the answered call's place"
        );
        assert_eq!(grpc_status(answer(third).await), None);
        assert_eq!(grpc_status(answer(fourth).await), None);
    }
}
