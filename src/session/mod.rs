//! One WhatsApp account's session: its id, its rules (`state`), the reconnect policy
//! and the actor that owns it all.

pub mod actor;
pub mod commands;
mod events;
pub mod id;
pub mod input;
pub mod messages;
pub mod model;
pub mod policy;
pub mod state;
pub mod waiters;
pub mod watchers;

pub use id::SessionId;
pub use model::{DisconnectReason, Qr, SessionEvent, SessionView, Status};
