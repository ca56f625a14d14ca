//! Media files, apart from any backend: their kinds and caps (`kind`), a file
//! streamed in over gRPC into a temp file of the data dir (`staging`), written as
//! it arrives, plain or sealed by the backend (`seal`), and the
//! durable store of upload handles and inbound download descriptors (`store`).

pub mod kind;
pub mod seal;
pub mod staging;
pub mod store;

pub use kind::{MediaCaps, MediaKind};
pub use store::{Handle, MediaStore};
