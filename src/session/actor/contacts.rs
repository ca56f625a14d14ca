//! "Are these numbers on WhatsApp?" (a campaign's `skip_unregistered`): one usync
//! contact query on the live connection, when CONNECTED. It is awaited on a task
//! of its own, never on the outbox, so a direct send is never queued behind it.

use std::collections::HashMap;

use ractor::RpcReplyPort;
use tokio::time::{timeout, Duration};

use super::{sends::backend_failure, SessionRun};
use crate::error::SessionError;

/// How long a check may take: outside the backend's own bound (15 s), inside the
/// door's (32 s).
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

impl SessionRun {
    /// Asks WhatsApp which of `chats` are on it (one query; the caller batches).
    pub(super) fn check_numbers(
        &mut self,
        chats: Vec<String>,
        reply: RpcReplyPort<Result<HashMap<String, bool>, SessionError>>,
    ) {
        let conn = match (self.state.require_connected(), self.conn.as_ref()) {
            (Ok(()), Some(conn)) => conn,
            (Err(refused), _) => return self.answer(reply, Err(refused)),
            (Ok(()), None) => {
                let closed = SessionError::Unavailable("the connection closed while checking numbers: retry".into());
                return self.answer(reply, Err(closed));
            }
        };
        let asking = conn.registered(chats);
        tokio::spawn(async move {
            let answer = match timeout(CHECK_TIMEOUT, asking).await {
                Ok(Ok(verdicts)) => Ok(verdicts),
                Ok(Err(error)) => Err(backend_failure("the numbers were not checked", error)),
                Err(_) => Err(SessionError::DeadlineExceeded(
                    "whatsapp did not answer the contact check in time: retry".into(),
                )),
            };
            let _ = reply.send(answer);
        });
    }
}
