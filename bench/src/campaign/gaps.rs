//! The pacing part's arithmetic, free of I/O: the gaps between a session's sends
//! as the server received them, the share of gaps outside the policy's bounds, and
//! the gap error: each send's time minus the `next_send_at` the campaign announced
//! for it (the announced time nearest to the send, within a window), in absolute
//! microseconds so `load::percentile` reads them.

use std::time::{Duration, SystemTime};

use crate::load::percentile;

/// Every session's figures, added up.
#[derive(Debug, Default)]
pub struct Accuracy {
    /// Gaps between a session's consecutive sends, µs (sorted by [`Accuracy::finish`]).
    pub gaps: Vec<u32>,
    /// |send time - announced next_send_at| of the sends matched to one, µs.
    pub errors: Vec<u32>,
    /// Matched sends that came before their announced time.
    pub early: usize,
    /// Sends with no announced time within the window (e.g. a campaign's first).
    pub unmatched: usize,
    pub sends: usize,
}

impl Accuracy {
    /// Adds one session's sends (any order) and the distinct `next_send_at` values
    /// its campaign announced (any order); a send matches the nearest one at most
    /// `window` away.
    pub fn add_session(&mut self, sends: &[SystemTime], planned: &[SystemTime], window: Duration) {
        let mut sends = sends.to_vec();
        sends.sort_unstable();
        let mut planned = planned.to_vec();
        planned.sort_unstable();
        self.sends += sends.len();
        self.gaps
            .extend(sends.windows(2).map(|pair| micros(difference(pair[1], pair[0]).1)));
        for &send in &sends {
            let after = planned.partition_point(|&p| p < send);
            let nearest = [after.checked_sub(1), Some(after)]
                .into_iter()
                .flatten()
                .filter_map(|i| planned.get(i))
                .map(|&p| difference(send, p))
                .min_by_key(|&(_, d)| d);
            match nearest {
                Some((early, d)) if d <= window => {
                    self.errors.push(micros(d));
                    self.early += usize::from(early);
                }
                _ => self.unmatched += 1,
            }
        }
    }

    /// Sorts the figures for the percentiles.
    pub fn finish(&mut self) {
        self.gaps.sort_unstable();
        self.errors.sort_unstable();
    }

    /// Gaps outside [min - slack, max + slack].
    pub fn outside(&self, min: Duration, max: Duration, slack: Duration) -> usize {
        let low = micros(min.saturating_sub(slack));
        let high = micros(max + slack);
        self.gaps.iter().filter(|&&g| g < low || g > high).count()
    }

    /// A gap percentile, ms.
    pub fn gap_ms(&self, q: f64) -> f64 {
        percentile(&self.gaps, q)
    }

    /// A gap error percentile, ms.
    pub fn error_ms(&self, q: f64) -> f64 {
        percentile(&self.errors, q)
    }
}

/// Whether `a` is before `b`, and how far apart they are.
fn difference(a: SystemTime, b: SystemTime) -> (bool, Duration) {
    match a.duration_since(b) {
        Ok(d) => (false, d),
        Err(e) => (true, e.duration()),
    }
}

/// Microseconds, capped at u32::MAX (71 minutes).
fn micros(d: Duration) -> u32 {
    d.as_micros().min(u128::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_millis(ms)
    }

    #[test]
    fn gaps_are_between_a_sessions_consecutive_sends_in_time_order() {
        let mut accuracy = Accuracy::default();
        accuracy.add_session(&[at(3100), at(0), at(1500)], &[], Duration::ZERO);
        accuracy.add_session(&[at(10_000), at(11_000)], &[], Duration::ZERO);
        accuracy.finish();
        assert_eq!(accuracy.gaps, [1_000_000, 1_500_000, 1_600_000]);
        assert_eq!(
            (accuracy.sends, accuracy.unmatched),
            (5, 5),
            "nothing announced: no send matches"
        );
    }

    #[test]
    fn a_gap_is_outside_only_past_the_bounds_and_their_slack() {
        let mut accuracy = Accuracy::default();
        let sends = [at(0), at(970), at(1955), at(3974), at(5995)];
        accuracy.add_session(&sends, &[], Duration::ZERO);
        accuracy.finish();
        // Gaps 970 (too short), 985, 2019 (within the slack) and 2021 (too long).
        assert_eq!(accuracy.outside(1000 * MS, 2000 * MS, 20 * MS), 2);
        assert_eq!(accuracy.outside(1000 * MS, 2000 * MS, 30 * MS), 0);
    }

    #[test]
    fn the_gap_error_is_each_send_against_the_nearest_announced_time() {
        let mut accuracy = Accuracy::default();
        let sends = [at(0), at(1004), at(2498), at(9000)];
        let planned = [at(2500), at(1000)];
        accuracy.add_session(&sends, &planned, 500 * MS);
        accuracy.finish();
        assert_eq!(accuracy.errors, [2000, 4000], "4 ms late and 2 ms early");
        assert_eq!(accuracy.early, 1);
        assert_eq!(accuracy.unmatched, 2, "the first send and the one 6.5 s past any plan");
        assert_eq!(accuracy.sends, 4);
    }

    #[test]
    fn percentiles_read_milliseconds_from_the_sorted_micros() {
        let mut accuracy = Accuracy::default();
        let sends: Vec<SystemTime> = (1..=100).map(|n| at(n * 2000 + n)).collect();
        let planned: Vec<SystemTime> = (1..=100).map(|n| at(n * 2000)).collect();
        accuracy.add_session(&sends, &planned, 500 * MS);
        accuracy.finish();
        assert_eq!((accuracy.error_ms(0.50), accuracy.error_ms(0.99)), (50.0, 99.0));
        assert_eq!(accuracy.gap_ms(0.50), 2001.0);
        assert_eq!(accuracy.early, 0);
    }
}
