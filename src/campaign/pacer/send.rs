//! The pacer's send of one item: the gap planned from the session's previous
//! send, "typing..." shown before it when the campaign asks, the wait until it is
//! due (then a check that the campaign still runs), and the handover to the
//! session's normal send path under the item's preset id, with what the outcome
//! means for the item and the next step.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::debug;

use super::{content, plan, Pacer, Plan, Step};
use crate::{
    backend::{ChatState, Content},
    domain::SendInput,
    error::SessionError,
    events::campaign::{CampaignRow, CampaignState, ItemContent, ItemRow, ItemSend, Link},
    store::DbError,
};

impl Pacer {
    /// Plans, types, waits for or sends `item` of `campaign`.
    pub(super) async fn go(&mut self, campaign: &CampaignRow, item: ItemRow, new: bool) -> Result<Step, DbError> {
        let content = match serde_json::from_str::<ItemContent>(&item.content) {
            Ok(content) => content,
            Err(error) => {
                let why = format!("the item's stored content cannot be read ({error})");
                self.ahead.clear();
                self.shared.log.fail_campaign_item(campaign.n, item.seq, why).await?;
                return Ok(Step::Again);
            }
        };
        let now = Instant::now();
        let plan = self.plan.get_or_insert_with(|| {
            let gap = plan::gap(&campaign.pacing, &mut self.rng);
            let (due, waited) = plan::due(self.last_send, gap, now);
            Plan {
                due,
                waited,
                typed: None,
                campaign: campaign.id.clone(),
            }
        });
        if plan.campaign != campaign.id {
            let old = std::mem::replace(&mut plan.campaign, campaign.id.clone());
            self.shared.next_send.lock().remove(&old);
            plan.typed = None;
        }
        let door = &self.shared.door;
        if campaign.pacing.typing && plan.typed.as_deref() != Some(item.chat.as_str()) {
            let span = self
                .last_send
                .map_or(Duration::ZERO, |last| plan.due.saturating_duration_since(last));
            let typing = plan::typing(content.shown_text(), span);
            let typing_at = plan.due.checked_sub(typing).unwrap_or(plan.due);
            if now < typing_at {
                return Ok(self.wait_until(typing_at, &campaign.id));
            }
            let composing = Content::ChatState {
                state: ChatState::Composing,
            };
            if let Err(error) = door
                .send_signal(self.session.clone(), item.chat.clone(), composing)
                .await
            {
                debug!(session_id = %self.session, %error, "typing could not be shown; the message goes anyway");
            }
            if let Some(plan) = self.plan.as_mut() {
                plan.typed = Some(item.chat.clone());
            }
            return Ok(Step::Again);
        }
        let (due, waited) = (plan.due, plan.waited);
        if now < due {
            // Ready to send: wait here (other campaigns' changes do not wake it), then
            // check only that the campaign still runs (an operator's pause or cancel
            // meanwhile stops it), so the send goes at its planned instant.
            self.note_next_send(due, &campaign.id);
            tokio::time::sleep_until(due).await;
            let still = self.shared.log.campaign(&campaign.id).await?;
            if still.is_none_or(|c| c.state != CampaignState::Running) {
                return Ok(Step::Again);
            }
        }
        let input = SendInput {
            to: item.chat.clone(),
            client_id: None,
            queue_if_offline: false,
            content: content::send_content(content),
        };
        let send = ItemSend {
            message_id: item.message_id.clone(),
            link: Link {
                campaign_id: campaign.id.clone(),
                item_id: item.item_id.clone(),
                campaign: campaign.n,
                seq: item.seq,
                new_contact: new,
            },
        };
        let started = Instant::now();
        let sent = door.send_item(self.session.clone(), input, send).await;
        if sent.is_ok() {
            self.ahead.sent(campaign.n, item.seq);
        } else {
            self.ahead.clear();
        }
        match sent {
            Ok(_) | Err(SessionError::DeadlineExceeded(_)) => {
                let gap = self.last_send.map(|last| started - last);
                let late = if waited {
                    started.saturating_duration_since(due)
                } else {
                    Duration::ZERO
                };
                self.shared.metrics.campaigns.sent(gap, late);
                // The next gap runs from the handover: a slow send (an fsync)
                // never shortens the gap the server sees.
                self.last_send = Some(Instant::now());
                self.last_campaign = campaign.id.clone();
                self.forget_plan();
                Ok(Step::Again)
            }
            Err(SessionError::FailedPrecondition {
                reason: "CAMPAIGN_ITEM_NOT_PENDING",
                ..
            }) => Ok(Step::Again),
            Err(error @ (SessionError::InvalidArgument(_) | SessionError::Missing(_))) => {
                self.shared
                    .log
                    .fail_campaign_item(campaign.n, item.seq, error.to_string())
                    .await?;
                Ok(Step::Again)
            }
            // Not connected any more, shutting down, restarting: the next step sees why.
            Err(_) => Ok(self.retry()),
        }
    }

    fn wait_until(&self, at: Instant, campaign_id: &str) -> Step {
        self.note_next_send(at, campaign_id);
        Step::Wait {
            until: Some(at),
            session: false,
        }
    }

    /// Shows when the campaign's next item goes (GetCampaign's `next_send_at`).
    fn note_next_send(&self, at: Instant, campaign_id: &str) {
        let wall = SystemTime::now() + at.saturating_duration_since(Instant::now());
        self.shared.next_send.lock().insert(campaign_id.to_owned(), wall);
    }

    pub(super) fn forget_plan(&mut self) {
        if let Some(plan) = self.plan.take() {
            self.shared.next_send.lock().remove(&plan.campaign);
        }
    }
}
