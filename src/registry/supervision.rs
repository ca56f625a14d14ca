//! The restart budget of crashed sessions: capped exponential backoff, and how
//! many crashes within a window leave a session FAILED.

use std::{collections::VecDeque, time::Duration};

use tokio::time::Instant;

/// The most of a crash's message kept for last_error.
const MAX_CAUSE_CHARS: usize = 200;

/// How the registry restarts crashed sessions.
#[derive(Debug, Clone, Copy)]
pub struct Supervision {
    /// Crashes allowed within `window` before a session is left FAILED.
    pub budget: usize,
    /// The window of the budget.
    pub window: Duration,
}

/// Recent crashes of one session: the restart budget and backoff.
#[derive(Debug)]
pub struct CrashBudget {
    /// When it crashed, within the window.
    crashes: VecDeque<Instant>,
    /// What the last crash said.
    last_cause: String,
    /// The budget and its window.
    supervision: Supervision,
}

impl CrashBudget {
    /// No crashes yet.
    pub fn new(supervision: Supervision) -> Self {
        Self {
            crashes: VecDeque::new(),
            last_cause: String::new(),
            supervision,
        }
    }

    /// Records a crash at `now`; returns the delay before the restart (250 ms,
    /// doubling per recent crash, at most 10 s).
    pub fn record(&mut self, now: Instant, cause: &str) -> Duration {
        self.last_cause = cause.chars().take(MAX_CAUSE_CHARS).collect();
        self.forget_before(now);
        self.crashes.push_back(now);
        let recent = self.crashes.len() as u32;
        Duration::from_millis(250)
            .saturating_mul(1 << (recent - 1).min(6))
            .min(Duration::from_secs(10))
    }

    /// What the last crash said (shortened).
    pub fn last_cause(&self) -> &str {
        &self.last_cause
    }

    /// Whether the budget is spent at `now`.
    pub fn exhausted(&self, now: Instant) -> bool {
        self.crashes
            .iter()
            .filter(|t| now.duration_since(**t) < self.supervision.window)
            .count()
            >= self.supervision.budget
    }

    fn forget_before(&mut self, now: Instant) {
        while self
            .crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.supervision.window)
        {
            self.crashes.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn crash_budget_backs_off_then_gives_up_and_forgets_after_the_window() {
        let supervision = Supervision {
            budget: 5,
            window: Duration::from_secs(60),
        };
        let mut budget = CrashBudget::new(supervision);
        let delays: Vec<_> = (0..supervision.budget)
            .map(|_| budget.record(Instant::now(), "boom"))
            .collect();
        assert!(delays.windows(2).all(|w| w[0] < w[1]), "{delays:?}");
        assert!(budget.exhausted(Instant::now()));
        tokio::time::advance(supervision.window).await;
        assert!(!budget.exhausted(Instant::now()));
        assert_eq!(budget.record(Instant::now(), "boom"), Duration::from_millis(250));
    }
}
