//! The ground floor: the words every layer shares (session ids, statuses and
//! disconnect reasons, the session snapshot, what callers ask and get, and the rules
//! of their input). It imports nothing above itself but the error type and the wire
//! types it converts to, so every other module imports it one way.

pub mod calls;
pub mod id;
pub mod input;
pub mod send;
pub mod status;
pub mod view;

pub use calls::{PairingCodeView, QrRequest, SendReceipt};
pub use id::SessionId;
pub use send::{MediaInput, MessageStatus, SendAnswer, SendContent, SendInput};
pub use status::{DisconnectReason, Status};
pub use view::{Qr, SessionEvent, SessionView};
