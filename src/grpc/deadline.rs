//! The caller's deadline, read from the `grpc-timeout` request header.

use std::time::Duration;

use tokio::time::Instant;

/// When to answer a caller that gives up after its `grpc-timeout`, if it said: a
/// tenth of its timeout early (at most 100 ms), so its DEADLINE_EXCEEDED, with the
/// daemon's words, reaches it before its own timer fires (the header is read after
/// the request travelled, and a loaded machine answers late).
pub fn caller_deadline<T>(request: &tonic::Request<T>) -> Option<Instant> {
    let header = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    parse_grpc_timeout(header).map(|timeout| Instant::now() + answer_within(timeout))
}

/// How long to take at most for a caller whose timeout is `timeout`.
fn answer_within(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 10).min(Duration::from_millis(100)))
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H M S m u n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    let timeout = match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    };
    Some(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_comes_a_tenth_early_and_at_most_100_ms_early() {
        assert_eq!(answer_within(Duration::from_millis(500)), Duration::from_millis(450));
        assert_eq!(answer_within(Duration::from_secs(30)), Duration::from_millis(29_900));
        assert_eq!(answer_within(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn parses_every_unit_and_refuses_garbage() {
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("10u"), Some(Duration::from_micros(10)));
        assert_eq!(parse_grpc_timeout("10n"), Some(Duration::from_nanos(10)));
        for bad in ["", "S", "12", "1x", "-1S", "123456789S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }
}
