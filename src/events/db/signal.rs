//! Which sessions' campaigns a commit changed, told to whoever follows them, one
//! session at a time: a pacer follows its own session's plan (campaigns created,
//! added to, paused, resumed or cancelled, items accepted, failed or forgotten,
//! the account's health), a WatchCampaign also the items' statuses. A change of
//! one session never wakes another session's followers, so a thousand pacers cost
//! what each one's own session does.

use std::collections::{HashMap, HashSet};

use parking_lot::Mutex;
use tokio::sync::watch;

/// One session's two signals.
struct Senders {
    plan: watch::Sender<u64>,
    statuses: watch::Sender<u64>,
}

impl Senders {
    fn new() -> Self {
        Self {
            plan: watch::channel(0).0,
            statuses: watch::channel(0).0,
        }
    }

    fn followed(&self) -> bool {
        self.plan.receiver_count() + self.statuses.receiver_count() > 0
    }
}

/// What a follower of one session's campaigns hears: each value grows after a
/// commit that changed it.
pub struct Follow {
    /// What the session's pacer would send next, or when.
    pub plan: watch::Receiver<u64>,
    /// Its items' statuses (the counts), sent items' included.
    pub statuses: watch::Receiver<u64>,
}

/// Every followed session's signals (shared by the writer and the readers).
#[derive(Default)]
pub struct Signals {
    sessions: Mutex<HashMap<String, Senders>>,
}

impl Signals {
    /// Follows `session_id`'s campaigns from now on.
    pub fn follow(&self, session_id: &str) -> Follow {
        let mut sessions = self.sessions.lock();
        let senders = sessions.entry(session_id.to_owned()).or_insert_with(Senders::new);
        Follow {
            plan: senders.plan.subscribe(),
            statuses: senders.statuses.subscribe(),
        }
    }

    /// Tells the followers of the sessions a commit changed (a plan change is also
    /// a change of the counts), and forgets sessions no one follows any more.
    pub(super) fn tell(&self, plan: &mut HashSet<String>, statuses: &mut HashSet<String>) {
        if plan.is_empty() && statuses.is_empty() {
            return;
        }
        let mut sessions = self.sessions.lock();
        for (session_id, both) in plan
            .drain()
            .map(|id| (id, true))
            .chain(statuses.drain().map(|id| (id, false)))
        {
            let Some(senders) = sessions.get(&session_id) else {
                continue;
            };
            if !senders.followed() {
                sessions.remove(&session_id);
                continue;
            }
            if both {
                senders.plan.send_modify(|n| *n += 1);
            }
            senders.statuses.send_modify(|n| *n += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn a_change_wakes_its_own_session_only() {
        let signals = Signals::default();
        let mut a = signals.follow("a");
        let b = signals.follow("b");
        signals.tell(&mut set(&["a"]), &mut set(&[]));
        assert!(a.plan.has_changed().unwrap());
        assert!(a.statuses.has_changed().unwrap());
        assert!(!b.plan.has_changed().unwrap());
        assert!(!b.statuses.has_changed().unwrap());
        a.plan.borrow_and_update();
        a.statuses.borrow_and_update();
        signals.tell(&mut set(&[]), &mut set(&["a", "b"]));
        assert!(!a.plan.has_changed().unwrap(), "a status change is no plan change");
        assert!(a.statuses.has_changed().unwrap());
        assert!(b.statuses.has_changed().unwrap());
    }

    #[test]
    fn sessions_no_one_follows_are_forgotten() {
        let signals = Signals::default();
        drop(signals.follow("a"));
        signals.tell(&mut set(&["a"]), &mut set(&[]));
        assert!(signals.sessions.lock().is_empty());
        let again = signals.follow("a");
        signals.tell(&mut set(&["a"]), &mut set(&[]));
        assert!(again.plan.has_changed().unwrap());
    }
}
