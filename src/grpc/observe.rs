//! A tower layer on the gRPC server that counts every call by method and code and
//! times it to the end of its response. The code is the `grpc-status` of the
//! response headers (a trailers-only answer, e.g. an error) or of its trailers; a
//! response dropped before its trailers (the client went away) counts as `Canceled`.
//! Methods outside the served descriptor sets count as `unknown`, so a client cannot
//! grow the metric's label sets.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use prost::Message;
use tokio::time::Instant;
use tonic::Code;
use tower_layer::Layer;
use tower_service::Service;

use crate::metrics::{MethodMeter, Metrics};

/// A method's metric handles.
type Meter = Arc<MethodMeter>;

/// The methods served, by request path (`/pkg.Service/Method`).
#[derive(Debug)]
struct KnownMethods {
    /// Path to handles.
    by_path: HashMap<String, Meter>,
    /// The handles of any other path.
    unknown: Meter,
}

impl KnownMethods {
    fn from_descriptor_sets(metrics: &Metrics, sets: &[&[u8]]) -> Self {
        let mut by_path = HashMap::new();
        let files = sets
            .iter()
            .filter_map(|set| prost_types::FileDescriptorSet::decode(*set).ok())
            .flat_map(|set| set.file);
        for file in files {
            for service in &file.service {
                let service_name = format!("{}.{}", file.package(), service.name());
                for method in &service.method {
                    let path = format!("/{service_name}/{}", method.name());
                    by_path.insert(path, Arc::new(metrics.grpc_meter(&service_name, method.name())));
                }
            }
        }
        let unknown = Arc::new(metrics.grpc_meter("unknown", "unknown"));
        Self { by_path, unknown }
    }

    fn meter(&self, path: &str) -> Meter {
        self.by_path.get(path).unwrap_or(&self.unknown).clone()
    }
}

/// The layer: one per server.
#[derive(Clone)]
pub struct ObserveLayer {
    /// The methods that get their own labels, with their handles.
    methods: Arc<KnownMethods>,
}

impl ObserveLayer {
    /// Counts calls into `metrics`, naming the methods of the given encoded
    /// descriptor sets.
    pub fn new(metrics: Arc<Metrics>, descriptor_sets: &[&[u8]]) -> Self {
        let methods = Arc::new(KnownMethods::from_descriptor_sets(&metrics, descriptor_sets));
        Self { methods }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service the layer wraps around the server's routes.
#[derive(Clone)]
pub struct Observe<S> {
    /// The routes.
    inner: S,
    /// Metrics and method names.
    layer: ObserveLayer,
}

impl<S, B, ResBody> Service<http::Request<B>> for Observe<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = ObservedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = Call {
            meter: self.layer.methods.meter(request.uri().path()),
            start: Instant::now(),
            done: false,
        };
        ObservedFuture {
            inner: self.inner.call(request),
            call: Some(call),
        }
    }
}

/// One call being observed; counted exactly once (as `Canceled` if dropped unfinished).
struct Call {
    /// Its method's handles.
    meter: Meter,
    /// When it came in.
    start: Instant,
    /// Already counted.
    done: bool,
}

impl Call {
    fn finish(&mut self, code: Code) {
        if self.done {
            return;
        }
        self.done = true;
        self.meter.record(code, code_name(code), self.start.elapsed());
    }

    /// Counts the call if `headers` carry its status; returns whether they did.
    fn finish_from(&mut self, headers: &HeaderMap) -> bool {
        let Some(status) = headers.get("grpc-status") else {
            return false;
        };
        self.finish(Code::from_bytes(status.as_bytes()));
        true
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

pin_project_lite::pin_project! {
    /// The routes' response future, counting trailers-only answers.
    pub struct ObservedFuture<F> {
        // The routes' future.
        #[pin]
        inner: F,
        // The call, until the response is out.
        call: Option<Call>,
    }
}

impl<F, ResBody, E> std::future::Future for ObservedFuture<F>
where
    F: std::future::Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = Result<http::Response<ObservedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let mut call = this.call.take().expect("polled after completion");
        match result {
            Ok(response) => {
                let call = (!call.finish_from(response.headers())).then_some(call);
                Poll::Ready(Ok(response.map(|inner| ObservedBody { inner, call })))
            }
            Err(error) => {
                call.finish(Code::Unknown);
                Poll::Ready(Err(error))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts its call at the trailers.
    pub struct ObservedBody<B> {
        // The response body.
        #[pin]
        inner: B,
        // The call, until its trailers (None when the headers already said its code).
        call: Option<Call>,
    }
}

impl<B: Body> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let Some(call) = this.call.as_mut() {
            match &frame {
                Some(Ok(frame)) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        call.finish_from(trailers);
                    }
                }
                Some(Err(_)) => call.finish(Code::Internal),
                None => call.finish(Code::Unknown),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A code's name as grpc-go and its Prometheus middleware spell it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_methods_get_their_names_and_anything_else_is_unknown() {
        let metrics = Metrics::default();
        let methods = KnownMethods::from_descriptor_sets(&metrics, &[crate::proto::FILE_DESCRIPTOR_SET]);
        let elapsed = std::time::Duration::from_millis(1);
        methods
            .meter("/wasessiond.v1.SessionService/CreateSession")
            .record(Code::Ok, "OK", elapsed);
        methods
            .meter("/wasessiond.v1.SessionService/Nope")
            .record(Code::NotFound, "NotFound", elapsed);
        methods.meter("/x").record(Code::NotFound, "NotFound", elapsed);
        let text = metrics.encode();
        let created = "grpc_server_handled_total{grpc_service=\"wasessiond.v1.SessionService\",grpc_method=\"CreateSession\",grpc_code=\"OK\"} 1";
        assert!(text.contains(created), "{text}");
        let unknown =
            "grpc_server_handled_total{grpc_service=\"unknown\",grpc_method=\"unknown\",grpc_code=\"NotFound\"} 2";
        assert!(text.contains(unknown), "{text}");
        assert!(
            !text.contains("grpc_method=\"GetSession\""),
            "a method never called shows no series: {text}"
        );
    }
}
