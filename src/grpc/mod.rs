//! The gRPC edge: converts types and maps errors; no session logic lives here.

pub mod auth;
pub mod campaign_input;
pub mod campaign_service;
pub mod convert;
pub mod deadline;
pub mod emulator_service;
pub mod event_service;
pub mod inflight;
pub mod media;
pub mod observe;
pub mod outbound;
pub mod server;
pub mod session_service;
pub mod status;
pub mod streams;
