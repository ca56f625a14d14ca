//! One WhatsApp account's session: its id, its rules (`state`), the reconnect policy
//! and the actor that owns it all.

pub mod actor;
pub mod commands;
mod events;
pub mod input;
pub(crate) mod messages;
pub mod model;
pub mod policy;
pub mod state;
pub mod waiters;
pub mod watchers;

pub use crate::id::SessionId;
pub use model::{DisconnectReason, Qr, SessionEvent, SessionView, Status};
