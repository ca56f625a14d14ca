//! The pacer's next items, kept in memory between sends: while nothing holds new
//! contacts back (no reach-out restriction, no daily cap on the session's running
//! campaigns), a campaign's next [`BATCH`] pending items are read at once and
//! sent one after another, instead of one read per item. What is kept is dropped
//! at every control change (a campaign paused, cancelled, added to; an item failed
//! or skipped; the account's health), when the pacer forgets what it knew, and
//! after any send that did not go: the send path itself refuses an item that is no
//! longer PENDING, so a stale entry is never sent. Whether an item goes to a new
//! contact is as read with its batch: an earlier item of the same batch to the
//! same chat does not make it known, so such an item counts as new (only ever
//! more cautious).

use std::collections::{HashMap, VecDeque};

use crate::{
    events::{
        campaign::{ItemRow, Next},
        EventLog,
    },
    store::DbError,
};

/// Items read ahead at once per campaign.
const BATCH: usize = 32;

/// Each campaign's next items (by the campaign's key), in send order.
#[derive(Default)]
pub(super) struct Ahead {
    campaigns: HashMap<i64, VecDeque<(ItemRow, bool)>>,
}

impl Ahead {
    /// The next item of campaign `n` of `session_id`, read with the next ones
    /// when none is kept.
    pub(super) async fn next(&mut self, log: &EventLog, session_id: &str, n: i64) -> Result<Next, DbError> {
        let kept = self.campaigns.entry(n).or_default();
        if kept.is_empty() {
            kept.extend(log.next_items(session_id, n, BATCH).await?);
        }
        Ok(match kept.front() {
            Some((item, new)) => Next::Item(Box::new(item.clone()), *new),
            None => Next::Nothing,
        })
    }

    /// Item `seq` of campaign `n` was handed over: the next one is up.
    pub(super) fn sent(&mut self, n: i64, seq: u64) {
        if let Some(kept) = self.campaigns.get_mut(&n) {
            if kept.front().is_some_and(|(item, _)| item.seq == seq) {
                kept.pop_front();
            } else {
                kept.clear();
            }
        }
    }

    /// Reads every campaign's items again at their next turn.
    pub(super) fn clear(&mut self) {
        self.campaigns.clear();
    }
}
