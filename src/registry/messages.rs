//! The registry's mailbox: what the door asks of it and what its own timers tell
//! it. Private to the crate: callers use [`super::Sessions`].

use std::collections::BTreeMap;

use ractor::RpcReplyPort;

use super::WatchAll;
use crate::{
    domain::{QrRequest, SessionId},
    error::SessionError,
    session::{messages::SessionMsg, waiters::Reply},
};

/// Where the answer to a delete goes.
pub(super) type DeleteReply = RpcReplyPort<Result<(), SessionError>>;

/// The registry's mailbox.
pub(crate) enum RegistryMsg {
    /// Create a session (or return the existing one as it is).
    Create {
        /// The session to create.
        id: SessionId,
        /// The caller's labels (used only when new).
        labels: BTreeMap<String, String>,
        /// What the caller wants of the QR.
        request: QrRequest,
        /// Answered by the new session once it has a code (or by the existing one).
        reply: Reply,
    },
    /// Forward a request to one session (NOT_FOUND when unknown or being deleted).
    Forward {
        /// The session it is for.
        id: SessionId,
        /// The request, with the caller's reply port.
        msg: SessionMsg,
    },
    /// Delete a session: its actor logs out, removes its files and stops; the
    /// supervision event then forgets it and answers the callers.
    Delete {
        /// The session to delete.
        id: SessionId,
        /// Answered once the session is forgotten (with every other caller of the
        /// same delete).
        reply: DeleteReply,
    },
    /// A session could not delete itself: answer its delete callers.
    DeleteFailed {
        /// The session that is still there.
        id: SessionId,
        /// What stopped the delete (the tombstone could not be written).
        error: SessionError,
    },
    /// Every session's current state and a subscription to their changes.
    WatchAll {
        /// Gets the states and the subscription, taken together in the handler.
        reply: RpcReplyPort<Result<WatchAll, SessionError>>,
    },
    /// The backoff after a crash passed: start the session again.
    Restart(SessionId),
}
