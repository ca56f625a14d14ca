//! wa-sessiond: supervises WhatsApp Web (multi-device) sessions and serves them over
//! gRPC. See DESIGN.md for the shape: a registry actor, one actor per session, and a
//! backend (real WhatsApp or an emulator) behind a trait.

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod backend;
pub mod campaign;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod files;
pub mod grpc;
pub mod http_accept;
pub mod link;
pub mod media;
pub mod metrics;
pub mod qr_render;
pub mod readiness;
pub mod registry;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod transfer;

/// The generated wire types and services of `wasessiond.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("wasessiond.v1");

    /// The descriptor set served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("wasessiond_descriptor");
}
