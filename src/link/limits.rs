//! What keeps one client or one link from taking the page, or WhatsApp, for
//! itself: connections per client address, live feeds per link (each a guard that
//! frees its place when dropped), and the rate of new codes and pairing codes per
//! link and per session (governor's GCRA: a burst, then one per period).

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    net::IpAddr,
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota};
use parking_lot::Mutex;

use crate::domain::SessionId;

/// What a page asks WhatsApp for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `POST …/refresh`: a new pairing connection.
    Refresh,
    /// `POST …/pairing-code`.
    PairingCode,
}

/// Whose allowance an action draws on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scope {
    /// One link (its token, hashed).
    Link(u64),
    /// Every link of one session.
    Session(SessionId),
}

/// Keys the limiters forget once their allowance is whole again, past this many.
const RETAIN_ABOVE: usize = 10_000;

/// The rate of refreshes and pairing codes, per link and per session.
pub struct ActionLimits {
    /// One GCRA cell per (action, scope).
    limiter: DefaultKeyedRateLimiter<(Action, Scope)>,
}

impl ActionLimits {
    /// `burst` at once, then one per `period`.
    pub fn new(burst: u32, period: Duration) -> Self {
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
        }
    }

    /// Takes one `action` from the allowance of the link `token` and of its session
    /// `id`; when either is spent, how long until it allows one again.
    pub fn take(&self, action: Action, token: &str, id: &SessionId) -> Result<(), Duration> {
        if self.limiter.len() > RETAIN_ABOVE {
            self.limiter.retain_recent();
        }
        let now = self.limiter.clock().now();
        let mut wait = Duration::ZERO;
        for scope in [Scope::Session(id.clone()), Scope::Link(token_key(token))] {
            if let Err(not_until) = self.limiter.check_key(&(action, scope)) {
                wait = wait.max(not_until.wait_time_from(now));
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }
}

/// A token as a small key (a collision only shares an allowance or a cap).
pub fn token_key(token: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    token.hash(&mut hasher);
    hasher.finish()
}

/// Open connections per client address and open feeds per link, each capped.
#[derive(Debug, Clone)]
pub struct Caps {
    /// Counts by client address.
    clients: Counts<IpAddr>,
    /// Counts by link (hashed token).
    feeds: Counts<u64>,
}

impl Caps {
    /// At most `per_client` connections per address and `per_link` feeds per link.
    pub fn new(per_client: u32, per_link: u32) -> Self {
        Self {
            clients: Counts::new(per_client),
            feeds: Counts::new(per_link),
        }
    }

    /// A place for one more connection from `ip`, or None when it holds its cap.
    pub fn connection(&self, ip: IpAddr) -> Option<Place<IpAddr>> {
        self.clients.take(ip)
    }

    /// A place for one more feed of the link `token`, or None when it has its cap.
    pub fn feed(&self, token: &str) -> Option<Place<u64>> {
        self.feeds.take(token_key(token))
    }
}

/// Counts by key, each at most `cap`.
#[derive(Debug, Clone)]
struct Counts<K> {
    /// How many places each key holds (a key at zero is removed).
    held: Arc<Mutex<HashMap<K, u32>>>,
    /// The most one key may hold.
    cap: u32,
}

impl<K: Hash + Eq + Clone> Counts<K> {
    fn new(cap: u32) -> Self {
        Self {
            held: Arc::default(),
            cap,
        }
    }

    fn take(&self, key: K) -> Option<Place<K>> {
        let mut held = self.held.lock();
        let count = held.entry(key.clone()).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(Place {
            held: self.held.clone(),
            key,
        })
    }
}

/// One place held under a cap, until dropped.
#[derive(Debug)]
pub struct Place<K: Hash + Eq> {
    /// Where it is counted.
    held: Arc<Mutex<HashMap<K, u32>>>,
    /// Its key.
    key: K,
}

impl<K: Hash + Eq> Drop for Place<K> {
    fn drop(&mut self) {
        let mut held = self.held.lock();
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_refuses_past_its_count_and_a_dropped_place_frees_one() {
        let caps = Caps::new(2, 1);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let (a, b) = (caps.connection(ip), caps.connection(ip));
        assert!(a.is_some() && b.is_some());
        assert!(caps.connection(ip).is_none());
        assert!(caps.connection("10.0.0.2".parse().unwrap()).is_some());
        drop(a);
        assert!(caps.connection(ip).is_some());
        let feed = caps.feed("t1");
        assert!(feed.is_some() && caps.feed("t1").is_none() && caps.feed("t2").is_some());
        drop(feed);
        assert!(caps.feed("t1").is_some());
        assert!(caps.clients.held.lock().len() <= 2, "keys at zero are forgotten");
    }

    #[test]
    fn refreshes_allow_a_burst_per_session_then_say_how_long_to_wait() {
        let limits = ActionLimits::new(3, Duration::from_secs(20));
        let alice = SessionId::parse("alice").unwrap();
        for _ in 0..3 {
            assert_eq!(limits.take(Action::Refresh, "link-1", &alice), Ok(()));
        }
        let wait = limits.take(Action::Refresh, "link-2", &alice).unwrap_err();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert_eq!(
            limits.take(Action::PairingCode, "link-1", &alice),
            Ok(()),
            "its own allowance"
        );
        let bob = SessionId::parse("bob").unwrap();
        assert_eq!(limits.take(Action::Refresh, "link-3", &bob), Ok(()));
    }
}
