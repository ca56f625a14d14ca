//! One session's pacer: before each item it checks the session's state and the
//! account's health (pausing every campaign of the session for a ban, a logout, a
//! lost connection or a rate limit, and resuming them once the cause is gone),
//! picks the next campaign round robin and its next item (skipping new contacts
//! while new chats are barred or their cap is reached), plans the gap uniform in
//! the campaign's [min, max] from the session's previous send, shows "typing..."
//! before it when asked, and sends through the session's normal send path under
//! the item's preset id ([`send`]). With `skip_unregistered` an item to a new
//! contact goes only once its number is known to be on WhatsApp ([`lookup`]). It
//! reads a campaign's items from disk a batch at a time ([`ahead`]; one at a time
//! while new contacts are held back); it never holds the session's outbox, so
//! direct sends are never delayed by it.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

mod ahead;
mod content;
mod known;
mod lookup;
mod send;

use rand::{rngs::StdRng, SeedableRng};
use tokio::{sync::mpsc, time::Instant};
use tracing::{debug, warn};

use super::{plan, Shared};
use crate::{
    domain::{SessionId, SessionView},
    error::SessionError,
    events::campaign::{Auto, CampaignRow, CampaignState, Next, PauseReason},
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
}
