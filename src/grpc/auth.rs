//! Bearer-token authentication of SessionService, EventService and EmulatorService
//! calls: a wrapper around each service comparing `authorization: Bearer <token>` in
//! constant time, on the HTTP request itself (no conversion of the request to tonic's
//! and back, as an interceptor would do on every call). Health and reflection are not
//! wrapped, so probes and grpcurl's `list` work without a token.

use std::{
    future::{ready, Ready},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use subtle::ConstantTimeEq;
use tonic::{body::Body, server::NamedService, Status};
use tower_service::Service;

use crate::{config::Secret, error::SessionError};

/// The check; lets every call through when no token is configured.
#[derive(Clone)]
pub struct BearerAuth {
    /// The expected token, when authentication is on.
    token: Option<Arc<[u8]>>,
}

impl BearerAuth {
    /// Checks calls against `token` (None: no authentication).
    pub fn new(token: Option<&Secret>) -> Self {
        Self {
            token: token.map(|t| Arc::from(t.expose().as_bytes())),
        }
    }

    fn check(&self, header: Option<&[u8]>) -> Result<(), SessionError> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let Some(header) = header else {
            return Err(SessionError::Unauthenticated(
                "this call needs a token: send metadata `authorization: Bearer <token>`".into(),
            ));
        };
        let Some(presented) = header.strip_prefix(b"Bearer ") else {
            return Err(SessionError::Unauthenticated(
                "the authorization metadata must read `Bearer <token>`".into(),
            ));
        };
        if bool::from(presented.ct_eq(expected)) {
            return Ok(());
        }
        Err(SessionError::Unauthenticated(
            "the bearer token is not valid: use the daemon's configured token".into(),
        ))
    }
}

/// A service whose calls must carry the token.
#[derive(Clone)]
pub struct Authenticated<S> {
    /// The service.
    inner: S,
    /// The check.
    auth: BearerAuth,
}

impl BearerAuth {
    /// `inner`, answering UNAUTHENTICATED to a call without the token.
    pub fn wrap<S>(&self, inner: S) -> Authenticated<S> {
        Authenticated {
            inner,
            auth: self.clone(),
        }
    }
}

impl<S: NamedService> NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Authenticated<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = AuthFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let header = request.headers().get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
        match self.auth.check(header) {
            Ok(()) => AuthFuture::Served {
                inner: self.inner.call(request),
            },
            Err(error) => AuthFuture::Refused {
                answer: ready(Ok(Status::from(error).into_http())),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The service's answer, or the refusal.
    #[project = AuthProj]
    pub enum AuthFuture<F, E> {
        /// The call went through.
        Served { #[pin] inner: F },
        /// The call was refused.
        Refused { answer: Ready<Result<http::Response<Body>, E>> },
    }
}

impl<F, E> std::future::Future for AuthFuture<F, E>
where
    F: std::future::Future<Output = Result<http::Response<Body>, E>>,
{
    type Output = Result<http::Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AuthProj::Served { inner } => inner.poll(cx),
            AuthProj::Refused { answer } => Pin::new(answer).poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_bearer_token_passes() {
        let auth = BearerAuth::new(Some(&Secret::new("s3cret")));
        assert!(auth.check(Some(b"Bearer s3cret")).is_ok());
        for bad in [
            None,
            Some(&b"Bearer s3cre"[..]),
            Some(b"Bearer s3cret2"),
            Some(b"s3cret"),
            Some(b"Basic s3cret"),
        ] {
            let error = auth.check(bad).unwrap_err();
            assert!(matches!(error, SessionError::Unauthenticated(_)));
            assert!(!error.to_string().contains("s3cret"), "{error}");
        }
        assert!(BearerAuth::new(None).check(None).is_ok());
    }
}
