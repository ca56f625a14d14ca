//! The pacer's number checks (`skip_unregistered`): before an item to a new
//! contact goes, its number needs a fresh verdict. One lookup (a usync contact
//! query through the session, never behind its sends) covers the next
//! [`plan::CHECK_BATCH`] pending items of the campaign whose numbers have none;
//! the verdicts are cached in the event log for the session (they survive
//! restarts), and the items whose numbers are not on WhatsApp are SKIPPED in the
//! same transaction. A failed lookup never lets an item go unchecked: it waits,
//! with a backoff, and is looked up again.

use std::{collections::HashMap, time::SystemTime};

use tokio::time::Instant;
use tracing::{debug, warn};

use super::{plan, Pacer, Step};
use crate::{
    events::campaign::{CampaignRow, Verdict},
    store::DbError,
};

impl Pacer {
    /// Whether an item to `chat` (a new contact with `new`) may go as far as its
    /// number goes: not asked about, or known to be on WhatsApp.
    pub(super) async fn cleared(
        &self,
        campaign: &CampaignRow,
        chat: &str,
        new: bool,
        now: SystemTime,
    ) -> Result<bool, DbError> {
        if !plan::needs_check(&campaign.pacing, chat, new) {
            return Ok(true);
        }
        let verdict = self.shared.log.number_verdict(self.session.as_str(), chat).await?;
        Ok(verdict.is_some_and(|(v, at)| v == Verdict::Registered && plan::fresh(v, at, now)))
    }

    /// Finds verdicts for the campaign's next items (the head's, `head`, among
    /// them), skips those not on WhatsApp, and looks again.
    pub(super) async fn check(&mut self, campaign: &CampaignRow, head: &str) -> Result<Step, DbError> {
        if let Some(after) = self.lookup_after.filter(|after| *after > Instant::now()) {
            return Ok(Step::Wait {
                until: Some(after),
                session: true,
            });
        }
        let (log, metrics) = (&self.shared.log, &self.shared.metrics.campaigns);
        let session = self.session.as_str();
        let now = SystemTime::now();
        let batch = log.check_batch(session, campaign.n, plan::CHECK_BATCH).await?;
        let mut known: HashMap<String, Verdict> = HashMap::new();
        let mut ask: Vec<String> = Vec::new();
        let mut items = Vec::with_capacity(batch.len());
        for row in batch {
            if !plan::needs_check(&campaign.pacing, &row.chat, row.new) {
                continue;
            }
            match row.cached {
                Some((verdict, at)) if plan::fresh(verdict, at, now) => {
                    known.insert(row.chat.clone(), verdict);
                }
                _ if ask.contains(&row.chat) => {}
                _ => ask.push(row.chat.clone()),
            }
            items.push((row.seq, row.chat));
        }
        if !known.contains_key(head) && !ask.iter().any(|chat| chat == head) {
            ask.push(head.to_owned());
        }
        let mut verdicts = Vec::with_capacity(ask.len());
        if !ask.is_empty() {
            let asked = ask.len();
            let answer = match self.shared.door.check_numbers(self.session.clone(), ask.clone()).await {
                Ok(answer) => answer,
                Err(error) => {
                    metrics.lookup_failed();
                    warn!(session_id = %self.session, campaign_id = %campaign.id, %error, asked, "the numbers could not be checked; the items wait and are checked again");
                    return Ok(self.back_off());
                }
            };
            let (mut on, mut off) = (0, 0);
            for chat in ask {
                let verdict = match answer.get(&chat) {
                    Some(true) => Verdict::Registered,
                    Some(false) => Verdict::Unregistered,
                    None => continue,
                };
                if verdict == Verdict::Registered {
                    on += 1;
                } else {
                    off += 1;
                }
                known.insert(chat.clone(), verdict);
                verdicts.push((chat, verdict));
            }
            metrics.checked(on, off, asked as u64 - on - off);
            debug!(session_id = %self.session, campaign_id = %campaign.id, asked, unregistered = off, "numbers checked");
        }
        let skip: Vec<u64> = items
            .iter()
            .filter(|(_, chat)| known.get(chat) == Some(&Verdict::Unregistered))
            .map(|(seq, _)| *seq)
            .collect();
        if !verdicts.is_empty() || !skip.is_empty() {
            log.record_checks(campaign.n, session, verdicts, skip).await?;
        }
        if !known.contains_key(head) {
            warn!(session_id = %self.session, campaign_id = %campaign.id, "whatsapp did not answer about the next item's number; it waits and is checked again");
            return Ok(self.back_off());
        }
        self.lookup_failures = 0;
        self.lookup_after = None;
        Ok(Step::Again)
    }

    /// After a failed lookup: no other one before the backoff ends.
    fn back_off(&mut self) -> Step {
        self.lookup_failures = self.lookup_failures.saturating_add(1);
        let after = Instant::now() + plan::lookup_backoff(self.lookup_failures);
        self.lookup_after = Some(after);
        Step::Wait {
            until: Some(after),
            session: true,
        }
    }
}
