//! One session's pacer: before each item it checks the session's state and the
//! account's health (pausing every campaign of the session for a ban, a logout, a
//! lost connection or a rate limit, and resuming them once the cause is gone),
//! picks the next campaign round robin and its next item (skipping new contacts
//! while new chats are barred or their cap is reached), plans the gap uniform in
//! the campaign's [min, max] from the session's previous send, shows "typing..."
//! before it when asked, and sends through the session's normal send path under
//! the item's preset id. With `skip_unregistered` an item to a new contact goes
//! only once its number is known to be on WhatsApp ([`lookup`]). It reads
//! items from disk one at a time; it never holds the session's outbox, so direct
//! sends are never delayed by it.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

mod ahead;
mod content;
mod known;
mod lookup;

use rand::{rngs::StdRng, SeedableRng};
use tokio::{sync::mpsc, time::Instant};
use tracing::{debug, warn};

use super::{plan, Shared};
use crate::{
    backend::{ChatState, Content},
    domain::{SendInput, SessionId, SessionView},
    error::SessionError,
    events::campaign::{Auto, CampaignRow, CampaignState, ItemContent, ItemRow, ItemSend, Link, Next, PauseReason},
    store::DbError,
};

/// Items looked at ahead for one to an existing chat while new ones wait.
const SCAN: usize = 64;

/// How long to wait before trying again after a failure that says nothing.
const RETRY: Duration = Duration::from_secs(1);

/// What the pacer does next.
enum Step {
    /// Look again at once.
    Again,
    /// Wait for a change of the campaigns, until then (None: no deadline), and for
    /// a change of the session's state with `session`.
    Wait { until: Option<Instant>, session: bool },
    /// Nothing left to run: end.
    Exit,
}

/// The gap planned before the next send.
#[derive(Debug, Clone)]
struct Plan {
    /// When the next send goes.
    due: Instant,
    /// Whether the pacer waited for it (a send after a pause goes at once).
    waited: bool,
    /// The chat "typing..." was shown to (None: not yet).
    typed: Option<String>,
    /// The campaign whose next send it is.
    campaign: String,
}

struct Pacer {
    shared: Arc<Shared>,
    session: SessionId,
    last_send: Option<Instant>,
    last_campaign: String,
    plan: Option<Plan>,
    /// Until when new contacts wait (the timelock's end and a margin): kept, as the
    /// account's health forgets the timelock at its stated end.
    reachout: Option<SystemTime>,
    rng: StdRng,
    /// Failed lookups in a row, and no lookup before then.
    lookup_failures: u32,
    lookup_after: Option<Instant>,
    /// The campaigns and the account's restrictions, as last read.
    known: known::Known,
    /// The campaigns' next items, as last read.
    ahead: ahead::Ahead,
}

/// Runs `session_id`'s pacer until no campaign of it is left to run.
pub(super) async fn run(shared: Arc<Shared>, session_id: String) {
    let Ok(session) = SessionId::parse(&session_id) else {
        return;
    };
    let follow = shared.log.follow_campaigns(&session_id);
    let mut changes = follow.plan;
    let mut pacer = Pacer {
        known: known::Known::new(follow.control),
        shared: shared.clone(),
        session,
        last_send: None,
        last_campaign: String::new(),
        plan: None,
        reachout: None,
        rng: StdRng::from_entropy(),
        lookup_failures: 0,
        lookup_after: None,
        ahead: ahead::Ahead::default(),
    };
    let mut views: Option<mpsc::Receiver<SessionView>> = None;
    loop {
        changes.borrow_and_update();
        let step = match pacer.step().await {
            Ok(step) => step,
            Err(DbError::Closed) => return,
            Err(error) => {
                warn!(%session_id, %error, "a campaign pacer could not read or write the event log; trying again");
                Step::Wait {
                    until: Some(Instant::now() + RETRY),
                    session: false,
                }
            }
        };
        match step {
            Step::Again => views = None,
            Step::Exit => {
                pacer.forget_plan();
                let mut pacers = shared.pacers.lock();
                if changes.has_changed().unwrap_or(false) {
                    continue;
                }
                pacers.remove(&session_id);
                debug!(%session_id, "no campaign left to run: the pacer ends");
                return;
            }
            Step::Wait { until, session } => {
                if !session {
                    views = None;
                } else if views.is_none() {
                    views = shared.door.watch(pacer.session.clone(), false).await.ok();
                }
                let deadline = match until {
                    // No way to hear of the session's changes: look again soon.
                    _ if session && views.is_none() => Instant::now() + RETRY,
                    Some(until) => until,
                    None => Instant::now() + Duration::from_secs(3600),
                };
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep_until(deadline) => {}
                    view = next_view(&mut views) => if view.is_none() { views = None },
                }
                if let Some(views) = views.as_mut() {
                    while views.try_recv().is_ok() {}
                }
            }
        }
    }
}

async fn next_view(views: &mut Option<mpsc::Receiver<SessionView>>) -> Option<SessionView> {
    match views {
        Some(views) => views.recv().await,
        None => std::future::pending().await,
    }
}

/// The instant of a wall-clock time (now if past).
fn instant_at(at: SystemTime) -> Instant {
    Instant::now() + at.duration_since(SystemTime::now()).unwrap_or_default()
}

fn earliest(a: Option<SystemTime>, b: SystemTime) -> Option<SystemTime> {
    Some(a.map_or(b, |a| a.min(b)))
}

impl Pacer {
    async fn step(&mut self) -> Result<Step, DbError> {
        let (log, door) = (&self.shared.log, &self.shared.door);
        let view = match door.peek(self.session.clone()).await {
            Ok(view) => view,
            // Its campaigns went with it (the log deletes them with its events).
            Err(SessionError::NotFound(_)) => return Ok(Step::Exit),
            Err(_) => return Ok(self.retry()),
        };
        let (ours, health, fresh) = self.known.get(&self.shared, &self.session).await?;
        if fresh {
            self.ahead.clear();
        }
        if ours.is_empty() {
            return Ok(Step::Exit);
        }
        let now = SystemTime::now();
        if let Some(pause) = plan::session_pause(view.status, &health, now) {
            for campaign in &ours {
                log.campaign_auto(campaign.n, pause).await?;
            }
            self.forget_plan();
            let until = match pause {
                Auto::Pause(_, Some(until)) => Some(instant_at(until)),
                _ => None,
            };
            return Ok(Step::Wait { until, session: true });
        }
        let mut running = Vec::with_capacity(ours.len());
        let mut wake: Option<SystemTime> = None;
        for campaign in ours {
            if campaign.state == CampaignState::Running || plan::may_resume(&campaign, now) {
                if campaign.state == CampaignState::Paused {
                    log.campaign_auto(campaign.n, Auto::Run).await?;
                }
                running.push(campaign);
            } else if let Some(at) = campaign.resume_at {
                wake = earliest(wake, at);
            }
        }
        if let Some(until) = plan::reachout_until(&health, now) {
            self.reachout = Some(until);
        }
        let reach = self.reachout.filter(|until| *until > now);
        let capped = running
            .iter()
            .any(|c| c.pacing.daily_limit > 0 || c.pacing.new_contact_daily_limit > 0);
        let since = now - plan::DAY;
        let ((all, all_oldest), (new, new_oldest)) = if capped {
            let id = self.session.as_str();
            (
                log.campaign_sends(id, false, since).await?,
                log.campaign_sends(id, true, since).await?,
            )
        } else {
            ((0, None), (0, None))
        };
        for campaign in plan::round_robin(&running, &self.last_campaign) {
            if let Some(until) = plan::cap_until(campaign.pacing.daily_limit, all, all_oldest, now) {
                self.pause(campaign, PauseReason::DailyLimit, until).await?;
                wake = earliest(wake, until);
                continue;
            }
            let new_capped = plan::cap_until(campaign.pacing.new_contact_daily_limit, new, new_oldest, now);
            let skip_new = reach.is_some() || new_capped.is_some();
            let next = if skip_new || capped {
                // Each item's contact is looked at afresh while new ones are held back.
                self.ahead.clear();
                log.next_item(self.session.as_str(), campaign.n, skip_new, SCAN).await?
            } else {
                self.ahead.next(log, self.session.as_str(), campaign.n).await?
            };
            match next {
                Next::Nothing => continue,
                Next::OnlyNew => {
                    let (reason, until) = match (reach, new_capped) {
                        (Some(until), _) => (PauseReason::ReachoutRestricted, until),
                        (None, until) => (PauseReason::DailyLimit, until.unwrap_or(now + plan::DAY)),
                    };
                    self.pause(campaign, reason, until).await?;
                    wake = earliest(wake, until);
                }
                Next::Item(item, new) => {
                    if !self.cleared(campaign, &item.chat, new, now).await? {
                        return self.check(campaign, &item.chat).await;
                    }
                    return self.go(campaign, *item, new).await;
                }
            }
        }
        if !fresh {
            // Nothing to send as last read: a campaign may have ended since.
            self.known.forget();
            return Ok(Step::Again);
        }
        self.forget_plan();
        Ok(Step::Wait {
            until: wake.map(instant_at),
            session: false,
        })
    }

    async fn pause(&self, campaign: &CampaignRow, reason: PauseReason, until: SystemTime) -> Result<(), DbError> {
        let auto = Auto::Pause(reason, Some(until));
        self.shared.log.campaign_auto(campaign.n, auto).await.map(drop)
    }

    fn retry(&self) -> Step {
        Step::Wait {
            until: Some(Instant::now() + RETRY),
            session: true,
        }
    }

    /// Plans, types, waits for or sends `item` of `campaign`.
    async fn go(&mut self, campaign: &CampaignRow, item: ItemRow, new: bool) -> Result<Step, DbError> {
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

    fn forget_plan(&mut self) {
        if let Some(plan) = self.plan.take() {
            self.shared.next_send.lock().remove(&plan.campaign);
        }
    }
}
