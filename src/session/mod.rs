//! One WhatsApp account's session: its rules (`state`), the reconnect policy, its
//! timers, its outbox of sends and the actor that owns it all. Its vocabulary (ids,
//! statuses, the snapshot) is in `domain`.

pub mod actor;
mod context;
pub(crate) mod messages;
mod outbox;
pub mod policy;
pub mod state;
mod timers;
pub mod waiters;
pub mod watchers;
