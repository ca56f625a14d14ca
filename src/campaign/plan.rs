//! The pacer's rules, apart from any I/O: which campaign goes next (round robin),
//! how long the gap is, how long typing shows, what pauses a campaign (the
//! session's state, the account's health, the daily caps) and until when, and
//! which numbers are checked with WhatsApp before sending (`skip_unregistered`),
//! how long a verdict holds, and how long a failed lookup waits.

use std::time::{Duration, SystemTime};

use rand::Rng;

use crate::{
    domain::Status,
    events::campaign::{Auto, CampaignRow, CampaignState, Pacing, PauseReason, Verdict, USER_SERVER},
    proto::AccountHealth,
};

/// The rolling window of the daily caps.
pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// Typing shows at least this long...
const TYPING_BASE: Duration = Duration::from_secs(1);
/// ...plus this per character of the text...
const TYPING_PER_CHAR: Duration = Duration::from_millis(40);
/// ...and at most this long.
const TYPING_MAX: Duration = Duration::from_secs(8);

/// A gap uniform in [min, max] of `pacing`.
pub fn gap(pacing: &Pacing, rng: &mut impl Rng) -> Duration {
    let (min, max) = (pacing.min_ms, pacing.max_ms.max(pacing.min_ms));
    Duration::from_millis(if min == max { min } else { rng.gen_range(min..=max) })
}

/// When the next send goes, `gap` after the session's previous one (`last`; now
/// for the first), and whether that is a wait (a send after a pause goes at once).
pub fn due(
    last: Option<tokio::time::Instant>,
    gap: Duration,
    now: tokio::time::Instant,
) -> (tokio::time::Instant, bool) {
    let due = last.map_or(now, |last| last + gap);
    (due.max(now), due > now)
}

/// How long "typing..." shows before a message of `text`, within `gap`.
pub fn typing(text: &str, gap: Duration) -> Duration {
    let chars = text.chars().count() as u32;
    (TYPING_BASE + TYPING_PER_CHAR * chars).min(TYPING_MAX).min(gap)
}

/// The campaigns in the order they go next: the ones after `last` (by id), then
/// the rest (round robin).
pub fn round_robin<'a>(running: &'a [CampaignRow], last: &str) -> Vec<&'a CampaignRow> {
    let (before, after): (Vec<_>, Vec<_>) = running.iter().partition(|c| c.id.as_str() <= last);
    after.into_iter().chain(before).collect()
}

/// What stops the whole session's campaigns now, if anything: a ban, a logout, a
/// rate limit, a session not connected. A rate limit is named before the lost
/// connection it comes with (WhatsApp closes the socket after its 429), so the
/// pause shows its cause and its end.
pub fn session_pause(status: Status, health: &AccountHealth, now: SystemTime) -> Option<Auto> {
    let at = |t: &Option<prost_types::Timestamp>| t.and_then(|t| SystemTime::try_from(t).ok());
    if let Some(until) = health.temp_ban.as_ref().and_then(|ban| at(&ban.until)) {
        if until > now {
            return Some(Auto::Pause(PauseReason::TempBanned, Some(until)));
        }
    }
    if status == Status::LoggedOut {
        return Some(Auto::Pause(PauseReason::LoggedOut, None));
    }
    if let Some(until) = at(&health.rate_limited_until).filter(|until| *until > now) {
        return Some(Auto::Pause(PauseReason::RateLimited, Some(until)));
    }
    (status != Status::Connected).then_some(Auto::Pause(PauseReason::SessionNotConnected, None))
}

/// New contacts wait this long after the timelock's stated end: WhatsApp states
/// it in whole seconds, and a send a moment too early is a 463 (never retried).
pub const REACHOUT_MARGIN: Duration = Duration::from_secs(2);

/// Until when new contacts wait (None: they do not now), the margin included.
pub fn reachout_until(health: &AccountHealth, now: SystemTime) -> Option<SystemTime> {
    let until = health
        .reachout_restricted_until
        .and_then(|t| SystemTime::try_from(t).ok())?
        + REACHOUT_MARGIN;
    (until > now).then_some(until)
}

/// A daily cap of `limit` (0: none) with `count` sends in the window, the oldest
/// at `oldest`: None while under it, else when it frees a place.
pub fn cap_until(limit: u32, count: u64, oldest: Option<SystemTime>, now: SystemTime) -> Option<SystemTime> {
    if limit == 0 || count < u64::from(limit) {
        return None;
    }
    Some(oldest.map_or(now + DAY, |oldest| oldest + DAY).max(now))
}

/// Whether a campaign is the daemon's to run or pause: not over, not paused by
/// the operator.
pub fn is_ours(campaign: &CampaignRow) -> bool {
    match campaign.state {
        CampaignState::Running => true,
        CampaignState::Paused => crate::events::campaign::is_automatic(campaign.pause_reason),
        _ => false,
    }
}

/// Whether a campaign paused by the daemon may run again now (its cause may be
/// back; the pacer checks again before each item).
pub fn may_resume(campaign: &CampaignRow, now: SystemTime) -> bool {
    if campaign.state != CampaignState::Paused || !is_ours(campaign) {
        return false;
    }
    match campaign.pause_reason {
        PauseReason::SessionNotConnected | PauseReason::LoggedOut => true,
        _ => campaign.resume_at.is_none_or(|at| at <= now),
    }
}

/// Numbers asked about in one lookup (one usync contact query).
pub const CHECK_BATCH: usize = 50;

/// How long a number found on WhatsApp stays so without asking again.
pub const REGISTERED_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a number found not on WhatsApp stays so (people join).
pub const UNREGISTERED_TTL: Duration = Duration::from_secs(24 * 3600);

/// The first wait after a failed lookup; it doubles with each failure in a row...
const LOOKUP_BACKOFF_BASE: Duration = Duration::from_secs(5);
/// ...up to this.
const LOOKUP_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Whether an item needs a verdict before it goes: its campaign asks for it, the
/// chat is a person (not a group), and the account never exchanged a message with
/// it (an existing chat is on WhatsApp, shown by the messages; not asked about, so
/// the account looks up fewer numbers).
pub fn needs_check(pacing: &Pacing, chat: &str, new_contact: bool) -> bool {
    pacing.skip_unregistered && new_contact && chat.ends_with(USER_SERVER)
}

/// Whether a verdict checked at `checked` still holds at `now`.
pub fn fresh(verdict: Verdict, checked: SystemTime, now: SystemTime) -> bool {
    let ttl = match verdict {
        Verdict::Registered => REGISTERED_TTL,
        Verdict::Unregistered => UNREGISTERED_TTL,
    };
    now.duration_since(checked).is_ok_and(|age| age < ttl) || checked > now
}

/// How long to wait before looking up again after `failures` failed lookups in a
/// row (1 or more).
pub fn lookup_backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (LOOKUP_BACKOFF_BASE * 2u32.pow(doublings)).min(LOOKUP_BACKOFF_MAX)
}

#[cfg(test)]
mod tests;
