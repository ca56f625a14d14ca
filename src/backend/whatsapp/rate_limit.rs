//! WhatsApp rate-limiting a connection (`<stream:error code="429"/>`, then the
//! socket closed), reported to the session's inbox as `HealthSignal::RateLimited`
//! until `--rate-limit-pause` from now (WhatsApp states no end). whatsapp-rust
//! 0.7.0 raises no event for a 429 (it only clears its login flag and lengthens
//! its own reconnect backoff, which is off here), so the stanza itself is
//! watched: a node waiter, resolved before the library handles the stanza.

use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;
use tracing::{warn, Instrument, Span};
use whatsapp_rust::{Client, NodeFilter};

use crate::events::{outbound::HealthSignal, Inbox};

/// The stream error code of a rate limit.
const RATE_LIMITED: &str = "429";

/// What a rate limit heard at `now` means for the account: limited for `pause`.
pub fn signal(now: SystemTime, pause: Duration) -> HealthSignal {
    HealthSignal::RateLimited { until: now + pause }
}

/// Watches one connection's client for a rate limit; ends with the connection.
#[derive(Debug)]
pub struct RateLimitWatch {
    /// Waits for the stanza, then reports it.
    task: JoinHandle<()>,
}

impl RateLimitWatch {
    /// Reports the first 429 `client` receives to `inbox`, as limited for `pause`.
    pub fn start(client: &Client, inbox: Inbox, pause: Duration) -> Self {
        let stanza = client.wait_for_node(NodeFilter::tag("stream:error").attr("code", RATE_LIMITED));
        let task = tokio::spawn(
            async move {
                if stanza.await.is_ok() {
                    warn!(?pause, "whatsapp rate-limited the connection (stream error 429)");
                    inbox.health(signal(SystemTime::now(), pause));
                }
            }
            .instrument(Span::current()),
        );
        Self { task }
    }
}

impl Drop for RateLimitWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_lasts_the_configured_pause_from_when_it_was_heard() {
        let now = SystemTime::now();
        assert_eq!(
            signal(now, Duration::from_secs(2)),
            HealthSignal::RateLimited {
                until: now + Duration::from_secs(2)
            }
        );
    }
}
