//! The one mapping from domain errors to gRPC status codes.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::SessionError;

/// The `domain` of every `ErrorInfo` this daemon sends.
const ERROR_DOMAIN: &str = "wa-sessiond";

/// Converts a domain error into the gRPC status a caller sees.
pub fn to_status(error: SessionError) -> Status {
    let message = error.to_string();
    match error {
        SessionError::NotFound(_) | SessionError::Missing(_) => Status::not_found(message),
        SessionError::AlreadyExists(_) => Status::already_exists(message),
        SessionError::InvalidArgument(_) => Status::invalid_argument(message),
        SessionError::FailedPrecondition { status, reason, .. } => {
            let mut metadata = HashMap::new();
            if let Some(status) = status {
                metadata.insert("status".to_owned(), status.wire_name().to_owned());
            }
            let details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
            Status::with_error_details(Code::FailedPrecondition, message, details)
        }
        SessionError::CursorExpired { oldest_cursor, .. } => {
            let metadata = HashMap::from([("oldest_cursor".to_owned(), oldest_cursor)]);
            let details = ErrorDetails::with_error_info("CURSOR_EXPIRED", ERROR_DOMAIN, metadata);
            Status::with_error_details(Code::FailedPrecondition, message, details)
        }
        SessionError::OutOfRange(_) => Status::out_of_range(message),
        SessionError::DeadlineExceeded(_) => Status::deadline_exceeded(message),
        SessionError::Unavailable(_) => Status::unavailable(message),
        SessionError::MediaExpired(_) => {
            let details = ErrorDetails::with_error_info("MEDIA_EXPIRED", ERROR_DOMAIN, HashMap::new());
            Status::with_error_details(Code::Unavailable, message, details)
        }
        SessionError::ResourceExhausted(_) => Status::resource_exhausted(message),
        SessionError::Unauthenticated(_) => Status::unauthenticated(message),
        SessionError::Internal(_) => Status::internal(message),
    }
}

impl From<SessionError> for Status {
    fn from(error: SessionError) -> Self {
        to_status(error)
    }
}
