//! When the durability hook tries a refused commit again: the event log may refuse
//! a batch of inbound messages for a while (a full disk, a writer stalled behind a
//! long job, the hook's own timeout), and an unacked message is only delivered
//! again on the next connect, which on a stable connection can be days away. So
//! the hook tries again in place, soon at first and then every [`MAX_GAP`], and
//! only after [`GIVE_UP_AFTER`] of failures does it give the batch back (unacked)
//! and ask the connection to reconnect, so that WhatsApp delivers it again. Plain
//! code on given instants, tested without a clock.

use std::time::Duration;

use tokio::time::Instant;

/// The wait before the second try.
pub const FIRST_GAP: Duration = Duration::from_millis(250);

/// The longest wait between two tries: once the log takes writes again, a held
/// batch is on disk within this (plus the commit itself).
pub const MAX_GAP: Duration = Duration::from_secs(5);

/// How long after the first failure the hook stops trying in place and has the
/// connection reconnected.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// The tries of one batch.
#[derive(Debug)]
pub struct Backoff {
    /// When the first try failed.
    first_failure: Instant,
    /// The wait before the next try.
    gap: Duration,
}

impl Backoff {
    /// The first try failed at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            first_failure: now,
            gap: FIRST_GAP,
        }
    }

    /// A try failed at `now`: how long to wait before the next one, or None when
    /// the next would start past [`GIVE_UP_AFTER`] (give the batch back).
    pub fn next(&mut self, now: Instant) -> Option<Duration> {
        let gap = self.gap;
        let next_try = now + gap;
        if next_try.duration_since(self.first_failure) > GIVE_UP_AFTER {
            return None;
        }
        self.gap = (gap * 2).min(MAX_GAP);
        Some(gap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gaps_double_from_a_quarter_second_up_to_five_seconds() {
        let start = Instant::now();
        let mut backoff = Backoff::new(start);
        let mut now = start;
        let mut gaps = Vec::new();
        for _ in 0..7 {
            let gap = backoff.next(now).expect("still trying");
            gaps.push(gap.as_millis());
            now += gap;
        }
        assert_eq!(gaps, [250, 500, 1000, 2000, 4000, 5000, 5000]);
    }

    #[test]
    fn no_try_starts_past_the_give_up_bound_and_the_last_comes_within_one_gap_of_it() {
        let start = Instant::now();
        let mut backoff = Backoff::new(start);
        let mut now = start;
        while let Some(gap) = backoff.next(now) {
            now += gap;
            assert!(now - start <= GIVE_UP_AFTER, "a try at {:?}", now - start);
        }
        assert!(
            now - start > GIVE_UP_AFTER - MAX_GAP,
            "gave up early, at {:?}",
            now - start
        );
    }

    #[test]
    fn a_slow_try_counts_against_the_bound() {
        let start = Instant::now();
        let mut backoff = Backoff::new(start);
        assert!(
            backoff.next(start + GIVE_UP_AFTER).is_none(),
            "a try that took the whole bound"
        );
    }
}
