//! Bearer-token authentication of SessionService and EmulatorService calls: an
//! interceptor comparing `authorization: Bearer <token>` in constant time. Health and
//! reflection are not wrapped, so probes and grpcurl's `list` work without a token.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::{service::Interceptor, Request, Status};

use crate::{config::Secret, error::SessionError};

/// The interceptor; lets every call through when no token is configured.
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

impl Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request.metadata().get("authorization").map(|v| v.as_bytes());
        self.check(header)?;
        Ok(request)
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
