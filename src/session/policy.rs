//! What the session does after a connection ends, per reason, in one place; and the
//! reconnect backoff.

use std::time::Duration;

use crate::backend::Disconnect;
use crate::domain::{DisconnectReason, Status};

/// What the session does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Reconnect at once (515), counted in `restart_count`.
    RestartNow,
    /// Reconnect after the backoff delay.
    Backoff,
    /// Stop; wipe the credentials first.
    StopAndWipe,
    /// Stop and wait for a caller.
    Stop,
    /// Banned for a while: reconnect once the ban ends (then, never before); with
    /// no end known, wait for a caller.
    AfterBan(Option<std::time::SystemTime>),
}

/// The status, reason, error text and next step for a disconnect of a linked session.
pub fn recovery_for(disconnect: &Disconnect) -> (Status, DisconnectReason, String, Recovery) {
    match disconnect {
        Disconnect::RestartRequired => (
            Status::Restarting,
            DisconnectReason::RestartRequired,
            String::new(),
            Recovery::RestartNow,
        ),
        Disconnect::ConnectionLost(cause) => (
            Status::Reconnecting,
            DisconnectReason::ConnectionLost,
            format!("connection lost: {cause}; reconnecting with backoff"),
            Recovery::Backoff,
        ),
        Disconnect::LoggedOut => (
            Status::LoggedOut,
            DisconnectReason::LoggedOut,
            "the device was unlinked from the phone (401): get the session to pair again".into(),
            Recovery::StopAndWipe,
        ),
        Disconnect::Replaced => (
            Status::Disconnected,
            DisconnectReason::Replaced,
            "another client took over these credentials (440): connect the session to take them back".into(),
            Recovery::Stop,
        ),
        Disconnect::ClientOutdated { pinned: true } => (
            Status::Failed,
            DisconnectReason::ClientOutdated,
            "whatsapp refused this client version (405): upgrade wa-sessiond or pin --wa-version".into(),
            Recovery::Stop,
        ),
        Disconnect::ClientOutdated { pinned: false } => (
            Status::Reconnecting,
            DisconnectReason::ClientOutdated,
            "whatsapp refused this client version (405): resolving the current one and reconnecting with backoff"
                .into(),
            Recovery::Backoff,
        ),
        Disconnect::TemporaryBan { ends_at, code } => {
            let (until, then) = match ends_at {
                Some(t) => (
                    format!(" until {}", humantime::format_rfc3339_seconds(*t)),
                    "the session reconnects by itself then, not before",
                ),
                None => (String::new(), "connect the session again once it ends"),
            };
            (
                Status::Disconnected,
                DisconnectReason::TemporaryBan,
                format!("whatsapp temporarily banned this account (402, reason {code}){until}: {then}"),
                Recovery::AfterBan(*ends_at),
            )
        }
    }
}

/// The first reconnect delay; it doubles per failed attempt.
const BACKOFF_BASE: Duration = Duration::from_millis(500);

/// The delay before reconnect `attempt` (0-based), capped at `max`, with `jitter` in
/// `[0, 1)` spreading it over 80%..120% (never past `max`).
pub fn backoff_delay(attempt: u32, max: Duration, jitter: f64) -> Duration {
    let exponential = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(20));
    let capped = exponential.min(max);
    let spread = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    capped.mul_f64(spread).min(max)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn backoff_grows_from_under_a_second_and_stays_under_the_cap() {
        let cap = Duration::from_secs(60);
        assert!(backoff_delay(0, cap, 0.99) < Duration::from_secs(1));
        let delays: Vec<_> = (0..12).map(|a| backoff_delay(a, cap, 0.5)).collect();
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= cap));
        assert_eq!(*delays.last().unwrap(), cap);
        assert_eq!(backoff_delay(40, cap, 0.99), cap);
    }

    #[test]
    fn each_reason_has_its_own_next_step() {
        let step = |d: Disconnect| recovery_for(&d).3;
        assert_eq!(step(Disconnect::RestartRequired), Recovery::RestartNow);
        assert_eq!(step(Disconnect::ConnectionLost("x".into())), Recovery::Backoff);
        assert_eq!(step(Disconnect::LoggedOut), Recovery::StopAndWipe);
        assert_eq!(step(Disconnect::Replaced), Recovery::Stop);
        assert_eq!(step(Disconnect::ClientOutdated { pinned: true }), Recovery::Stop);
        let resolving = recovery_for(&Disconnect::ClientOutdated { pinned: false });
        assert_eq!(
            (resolving.0, resolving.1, resolving.3),
            (
                Status::Reconnecting,
                DisconnectReason::ClientOutdated,
                Recovery::Backoff
            )
        );
        let end = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400);
        let ban = recovery_for(&Disconnect::TemporaryBan {
            ends_at: Some(end),
            code: 104,
        });
        assert_eq!((ban.0, ban.1), (Status::Disconnected, DisconnectReason::TemporaryBan));
        assert!(
            ban.2.contains("1970-01-02T00:00:00Z") && ban.2.contains("reason 104"),
            "{}",
            ban.2
        );
        assert_eq!(ban.3, Recovery::AfterBan(Some(end)));
    }
}
