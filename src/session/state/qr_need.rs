//! The QR freshness decision: what a caller waiting for a code gets now (the code,
//! a wait, one regeneration, or OUT_OF_RANGE), from the state and the clock alone.

use std::time::Duration;

use tokio::time::Instant;

use super::{Purpose, SessionState};
use crate::domain::{DisconnectReason, Qr, Status};

/// What a caller waiting on the session's QR should get now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrNeed {
    /// Answer with the current state.
    Ready,
    /// Something is on its way (a first or next code, a connection): keep waiting.
    Wait,
    /// Start a new pairing connection, then wait.
    Regenerate,
    /// No code can stay valid that long: the longest this backend issued lives
    /// `longest`.
    OutOfRange {
        /// The longest TTL of any code issued.
        longest: Duration,
    },
}

impl SessionState {
    /// Whether a caller asking for a QR may start pairing from the state at rest.
    fn may_start_pairing(&self) -> bool {
        let retryable_failure = self.view.status == Status::Failed
            && matches!(
                self.view.disconnect_reason,
                DisconnectReason::QrTimeout | DisconnectReason::ConnectionLost
            );
        let at_rest = matches!(self.view.status, Status::QrWaiting | Status::LoggedOut) || retryable_failure;
        at_rest && self.conn.is_none() && !self.is_linked()
    }

    /// What a caller who wants a code valid for at least `min_validity` gets now.
    /// `may_refresh` false means "the state as it is".
    pub fn qr_need(&self, now: Instant, min_validity: Duration, may_refresh: bool) -> QrNeed {
        if !may_refresh {
            return QrNeed::Ready;
        }
        let pairing_conn = self.conn.as_ref().filter(|c| c.purpose == Purpose::Pair);
        let wants_a_code = self.view.status == Status::QrWaiting || pairing_conn.is_some();
        if wants_a_code && !self.longest_ttl.is_zero() && min_validity > self.longest_ttl {
            return QrNeed::OutOfRange {
                longest: self.longest_ttl,
            };
        }
        match (self.view.status, pairing_conn, self.view.qr.as_ref()) {
            (Status::Starting, _, _) | (Status::Connecting, _, _) => QrNeed::Wait,
            (Status::QrWaiting, Some(_), Some(qr)) => live_batch_need(qr, now, min_validity),
            (Status::QrWaiting, Some(_), None) => QrNeed::Wait,
            (Status::QrWaiting, None, Some(qr)) if qr.remaining(now) >= min_validity.max(Duration::from_millis(1)) => {
                QrNeed::Ready
            }
            _ if self.may_start_pairing() => QrNeed::Regenerate,
            _ => QrNeed::Ready,
        }
    }
}

/// While a batch is live: the current code if it is good enough, else the next code
/// of the batch if one may be, else a new generation.
fn live_batch_need(qr: &Qr, now: Instant, min_validity: Duration) -> QrNeed {
    let wanted = min_validity.max(Duration::from_millis(1));
    if qr.remaining(now) >= wanted {
        return QrNeed::Ready;
    }
    // Codes after the first share one TTL: if this one's is too short, so are theirs.
    let later_codes_too_short = qr.index >= 2 && qr.ttl < wanted;
    if qr.is_last() || later_codes_too_short {
        return QrNeed::Regenerate;
    }
    QrNeed::Wait
}
