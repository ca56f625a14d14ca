//! Pairing-code requests (and the bounds every outbox call nests in): the actor
//! checks the state, builds the backend call with its bound and queues it on the
//! session's outbox, which runs the calls one at a time in the order accepted (sends
//! included, see `outbound`) and answers each caller.
//!
//! The bounds nest, outer to inner: the door bounds every call by
//! `max(qr_timeout, refresh_timeout) + 2 s` (32 s by default); the session bounds a
//! send by [`SEND_TIMEOUT`] and a pairing code by [`PAIRING_CODE_TIMEOUT`], counted
//! from when the call was queued; the real backend bounds its own work by 20 s for a
//! send and 15 s for a pairing code. So the innermost bound that applies fires first
//! and its message is the one the caller reads.

use std::time::{Duration, SystemTime};

use ractor::RpcReplyPort;
use tokio::time::Instant;

use super::SessionRun;
use crate::{
    backend::{BackendError, BoxFuture, PairingCodeIssued},
    domain::PairingCodeView,
    error::SessionError,
    session::{
        outbox::{Job, Work},
        state::Purpose,
    },
};

/// How long a pairing-code request may take from being queued: inside the door's
/// bound (32 s), outside the real backend's own (15 s).
const PAIRING_CODE_TIMEOUT: Duration = Duration::from_secs(20);

impl SessionRun {
    /// Issues a pairing code on the pairing connection (opening one if needed).
    pub(super) async fn request_pairing_code(
        &mut self,
        phone: String,
        reply: RpcReplyPort<Result<PairingCodeView, SessionError>>,
    ) {
        if let Err(linked) = self.state.refuse_if_linked("a pairing code") {
            self.answer(reply, Err(linked));
            return;
        }
        let pairing = self.state.conn().is_some_and(|c| c.purpose == Purpose::Pair);
        if !pairing {
            self.open_pairing(self.ctx.timeouts.qr).await;
        }
        let Some(conn) = self.conn.as_ref() else {
            let closed = SessionError::Unavailable("the pairing connection closed: retry".into());
            self.answer(reply, Err(closed));
            return;
        };
        let work = asking(conn.request_pairing_code(&phone), Instant::now() + PAIRING_CODE_TIMEOUT);
        let stopped = format!(
            "session {} stopped before whatsapp issued a pairing code: retry",
            self.state.view().id
        );
        // Published first: a new pairing connection shows in the snapshot before
        // the caller has its code.
        self.publish();
        self.outbox.push(Job::new(work, reply, stopped));
    }
}

/// A pairing-code request, bounded by `deadline`.
fn asking(
    ask: BoxFuture<'static, Result<PairingCodeIssued, BackendError>>,
    deadline: Instant,
) -> Work<PairingCodeView> {
    Box::pin(async move {
        match tokio::time::timeout_at(deadline, ask).await {
            Ok(Ok(issued)) => pairing_code_view(issued, SystemTime::now()),
            Ok(Err(e)) => Err(backend_failure("no pairing code", e)),
            Err(_) => Err(SessionError::DeadlineExceeded(
                "whatsapp did not issue a pairing code in time: retry".into(),
            )),
        }
    })
}

/// The code as the phone shows it (`ABCD-1234`), valid from `now`. A code that is
/// not 8 ASCII letters and digits is WhatsApp's fault, not the caller's: UNAVAILABLE,
/// without the code itself.
fn pairing_code_view(issued: PairingCodeIssued, now: SystemTime) -> Result<PairingCodeView, SessionError> {
    let code = issued.code;
    let well_formed = code.len() == 8 && code.bytes().all(|b| b.is_ascii_alphanumeric());
    if !well_formed {
        return Err(SessionError::Unavailable(format!(
            "whatsapp returned a malformed pairing code ({} characters, not 8 letters and digits): call RequestPairingCode again",
            code.chars().count()
        )));
    }
    let (head, tail) = code.split_at(4);
    Ok(PairingCodeView {
        code: format!("{head}-{tail}"),
        expires_at: now + issued.valid_for,
    })
}

pub(super) fn backend_failure(what: &str, error: BackendError) -> SessionError {
    match error {
        BackendError::Refused(why) => SessionError::Unavailable(format!("{what}: {why}; retry")),
        BackendError::Unreachable(why) => {
            SessionError::Unavailable(format!("{what}: whatsapp unreachable ({why}); retry"))
        }
        BackendError::Storage(why) => SessionError::Internal(format!("{what}: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::{super::outbound::SEND_TIMEOUT, *};

    fn issued(code: &str) -> PairingCodeIssued {
        PairingCodeIssued {
            code: code.into(),
            valid_for: Duration::from_secs(160),
        }
    }

    #[test]
    fn a_well_formed_pairing_code_is_shown_with_a_dash_and_its_expiry() {
        let now = SystemTime::UNIX_EPOCH;
        let view = pairing_code_view(issued("ABCD1234"), now).unwrap();
        assert_eq!(view.code, "ABCD-1234");
        assert_eq!(view.expires_at, now + Duration::from_secs(160));
    }

    #[test]
    fn a_malformed_pairing_code_is_a_clean_unavailable_never_a_panic() {
        // Short, multi-byte (8 bytes, 4 characters: slicing at byte 4 would panic
        // mid-character), long, and with punctuation.
        for code in ["ABC", "ABCé123", "ÀÀÀÀ", "ABCD12345", "ABCD-123", ""] {
            let error = pairing_code_view(issued(code), SystemTime::UNIX_EPOCH).unwrap_err();
            let SessionError::Unavailable(message) = &error else {
                panic!("{code:?} answered {error:?}");
            };
            assert!(
                message.contains("whatsapp returned a malformed pairing code"),
                "{message}"
            );
            assert!(message.contains("call RequestPairingCode again"), "{message}");
            assert!(
                code.is_empty() || !message.contains(code),
                "the code stays out of the message"
            );
        }
    }

    #[test]
    fn the_session_bounds_sit_inside_the_door_and_outside_the_backend() {
        let door = Duration::from_secs(30) + Duration::from_secs(2);
        let (backend_send, backend_pairing) = (Duration::from_secs(20), Duration::from_secs(15));
        assert!(backend_send < SEND_TIMEOUT && SEND_TIMEOUT < door);
        assert!(backend_pairing < PAIRING_CODE_TIMEOUT && PAIRING_CODE_TIMEOUT < door);
    }
}
