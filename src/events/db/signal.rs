//! Which sessions' campaigns a commit changed, told to whoever follows them, one
//! session at a time: a pacer follows its own session's plan (campaigns created,
//! added to, paused, resumed or cancelled, items accepted, failed or forgotten,
//! the account's health), a WatchCampaign also the items' statuses. A change of
//! one session never wakes another session's followers, so a thousand pacers cost
//! what each one's own session does.

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio::sync::watch;

/// What a commit changed of a session's campaigns, least first: a change is heard
/// by the followers of it and of every lesser one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Items' statuses the server reported after it took them (the counts).
    Statuses,
    /// An item's progress to the server (accepted, sent, taken, refused): what is
    /// sent next, or whether anything is left.
    Progress,
    /// The campaigns themselves (created, added to, paused, resumed, cancelled,
    /// an item failed) or the account's health.
    Control,
}

/// One session's signals.
struct Senders {
    control: watch::Sender<u64>,
    plan: watch::Sender<u64>,
    statuses: watch::Sender<u64>,
}

impl Senders {
    fn new() -> Self {
        Self {
            control: watch::channel(0).0,
            plan: watch::channel(0).0,
            statuses: watch::channel(0).0,
        }
    }

    fn followed(&self) -> bool {
        self.control.receiver_count() + self.plan.receiver_count() + self.statuses.receiver_count() > 0
    }
}

/// What a follower of one session's campaigns hears: each value grows after a
/// commit that changed it.
pub struct Follow {
    /// The campaigns themselves or the account's health ([`Change::Control`]).
    pub control: watch::Receiver<u64>,
    /// What the session's pacer would send next, or when (a progress or control change).
    pub plan: watch::Receiver<u64>,
    /// Its items' statuses (the counts): any change.
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
            control: senders.control.subscribe(),
            plan: senders.plan.subscribe(),
            statuses: senders.statuses.subscribe(),
        }
    }

    /// Tells the followers of the sessions a commit changed, each what it changed
    /// and everything below it, and forgets sessions no one follows any more.
    pub(super) fn tell(&self, changed: &mut HashMap<String, Change>) {
        if changed.is_empty() {
            return;
        }
        let mut sessions = self.sessions.lock();
        for (session_id, change) in changed.drain() {
            let Some(senders) = sessions.get(&session_id) else {
                continue;
            };
            if !senders.followed() {
                sessions.remove(&session_id);
                continue;
            }
            if change >= Change::Control {
                senders.control.send_modify(|n| *n += 1);
            }
            if change >= Change::Progress {
                senders.plan.send_modify(|n| *n += 1);
            }
            senders.statuses.send_modify(|n| *n += 1);
        }
    }
}

/// Notes that a batch changed `session_id`'s campaigns by `change` (the most it
/// changed counts).
pub(super) fn note(changed: &mut HashMap<String, Change>, session_id: &str, change: Change) {
    let entry = changed.entry(session_id.to_owned()).or_insert(change);
    *entry = (*entry).max(change);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(changes: &[(&str, Change)]) -> HashMap<String, Change> {
        let mut changed = HashMap::new();
        for (id, change) in changes {
            note(&mut changed, id, *change);
        }
        changed
    }

    #[test]
    fn a_change_wakes_its_own_session_only() {
        let signals = Signals::default();
        let mut a = signals.follow("a");
        let b = signals.follow("b");
        signals.tell(&mut set(&[("a", Change::Progress)]));
        assert!(a.plan.has_changed().unwrap());
        assert!(a.statuses.has_changed().unwrap());
        assert!(!a.control.has_changed().unwrap(), "progress is no control change");
        assert!(!b.plan.has_changed().unwrap());
        assert!(!b.statuses.has_changed().unwrap());
        a.plan.borrow_and_update();
        a.statuses.borrow_and_update();
        signals.tell(&mut set(&[("a", Change::Statuses), ("b", Change::Statuses)]));
        assert!(!a.plan.has_changed().unwrap(), "a status change is no plan change");
        assert!(a.statuses.has_changed().unwrap());
        assert!(b.statuses.has_changed().unwrap());
    }

    #[test]
    fn sessions_no_one_follows_are_forgotten() {
        let signals = Signals::default();
        drop(signals.follow("a"));
        signals.tell(&mut set(&[("a", Change::Control)]));
        assert!(signals.sessions.lock().is_empty());
        let again = signals.follow("a");
        signals.tell(&mut set(&[("a", Change::Statuses), ("a", Change::Control)]));
        assert!(again.control.has_changed().unwrap(), "the most a batch changed counts");
        assert!(again.plan.has_changed().unwrap());
    }
}
