//! One WhatsApp account's session: its rules (`state`), the reconnect policy and the
//! actor that owns it all. Its vocabulary (ids, statuses, the snapshot) is in `domain`.

pub mod actor;
pub mod commands;
mod events;
pub(crate) mod messages;
pub mod policy;
pub mod state;
pub mod waiters;
pub mod watchers;
