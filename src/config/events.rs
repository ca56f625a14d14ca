//! The event log's settings: how long and how much of it is kept, and how long an
//! accepted outbound message may wait.

use std::time::Duration;

use clap::Args;

/// The event log (`EventService`).
#[derive(Debug, Clone, Args)]
pub struct EventsConfig {
    /// How long events are kept; older ones are trimmed in the background.
    #[arg(long, env = "WA_SESSIOND_EVENT_RETENTION", default_value = "7d", value_parser = super::positive_duration)]
    pub event_retention: Duration,

    /// The most the event log keeps on disk (e.g. 512MiB, 2GiB, or bytes; 0: no
    /// bound but the age); the oldest events go first.
    #[arg(long, env = "WA_SESSIOND_EVENT_RETENTION_BYTES", default_value = "1GiB", value_parser = bytes)]
    pub event_retention_bytes: u64,

    /// How long a message accepted by SendMessage may wait to be sent (QUEUED while
    /// the session is offline) or acked by WhatsApp before it fails as EXPIRED.
    #[arg(long, env = "WA_SESSIOND_OUTBOUND_TTL", default_value = "24h", value_parser = super::positive_duration)]
    pub outbound_ttl: Duration,

    /// The most named consumers the log keeps (each holds a position and a metric
    /// series); an ack by a new one beyond it is RESOURCE_EXHAUSTED. Delete unused
    /// ones with EventService.DeleteConsumer. 0: no bound.
    #[arg(long, env = "WA_SESSIOND_MAX_CONSUMERS", default_value_t = 1000)]
    pub max_consumers: usize,

    /// How often the retention check runs.
    #[arg(long, env = "WA_SESSIOND_EVENT_TRIM_INTERVAL", default_value = "30s", value_parser = super::positive_duration)]
    pub event_trim_interval: Duration,
}

/// A size: a number of bytes, or one with KiB, MiB or GiB.
pub(super) fn bytes(raw: &str) -> Result<u64, String> {
    let bad = || format!("{raw:?} is not a size: use e.g. 1GiB, 512MiB, 100KiB or a number of bytes");
    let raw = raw.trim();
    let (number, unit) = match raw.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => raw.split_at(at),
        None => (raw, ""),
    };
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    number
        .parse::<u64>()
        .map_err(|_| bad())?
        .checked_mul(scale)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn sizes_take_binary_units_and_refuse_garbage() {
        assert_eq!(bytes("1GiB"), Ok(1 << 30));
        assert_eq!(bytes("512MiB"), Ok(512 << 20));
        assert_eq!(bytes("4096"), Ok(4096));
        assert_eq!(bytes("0"), Ok(0));
        for bad in ["", "1GB", "lots", "-1", "1.5GiB"] {
            assert!(bytes(bad).is_err(), "{bad}");
        }
    }
}
