//! Retention: a background task that removes deleted sessions' events and trims the
//! event log to `--event-retention` (age) and `--event-retention-bytes` (size), a
//! chunk at a time so appends queued meanwhile commit between chunks, and refreshes
//! the age and lag metrics. Its first pass runs at start, so a removal a crash cut
//! short is finished then.

use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::EventLog;

/// Events removed per trim job: small enough that an append waits at most one
/// chunk's delete.
const CHUNK: usize = 2_000;

/// How much of the log is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Events older than this go.
    pub max_age: Duration,
    /// The oldest events go while the log is bigger than this (0: no bound).
    pub max_bytes: u64,
    /// How often it checks.
    pub every: Duration,
}

/// A download descriptor is kept just before its message commits: younger ones
/// are never taken for gone.
const DESCRIPTOR_GRACE: Duration = Duration::from_secs(300);

/// Descriptors checked against the log per session and round.
const CHECK_PER_SESSION: usize = 64;

/// Forgets the download descriptors (kept before `now` less the grace) of
/// messages no longer in the log, the byte cap's trims included. Each session's
/// oldest are checked first, up to the first whose message is still there (trims
/// take a session's oldest events first). Returns how many went.
pub async fn forget_trimmed_media(log: &EventLog, now: SystemTime) -> Result<usize, crate::store::DbError> {
    let before = now.checked_sub(DESCRIPTOR_GRACE).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut forgotten = 0;
    loop {
        let oldest = log.media().oldest_inbound(before, CHECK_PER_SESSION).await?;
        let (mut gone, mut more) = (Vec::new(), false);
        let mut session = 0;
        while session < oldest.len() {
            let id = &oldest[session].session_id;
            let end = oldest[session..]
                .iter()
                .position(|key| &key.session_id != id)
                .map_or(oldest.len(), |n| session + n);
            let mut all_gone = true;
            for key in &oldest[session..end] {
                if log
                    .received(&key.session_id, &key.chat, &key.message_id)
                    .await?
                    .is_some()
                {
                    all_gone = false;
                    break;
                }
                gone.push(key.clone());
            }
            more |= all_gone && end - session == CHECK_PER_SESSION;
            session = end;
        }
        forgotten += log.media().forget_inbound(gone).await?;
        if !more {
            return Ok(forgotten);
        }
    }
}

/// Runs until the log closes (or the task is aborted).
pub async fn run(log: EventLog, retention: Retention) {
    let mut tick = tokio::time::interval(retention.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = pass(&log, retention).await {
            warn!(%error, "the event log could not be trimmed; it will try again");
            if matches!(error, crate::store::DbError::Closed) {
                return;
            }
        }
    }
}

/// One pass: trims what is due, then refreshes the metrics. Returns events trimmed.
pub async fn pass(log: &EventLog, retention: Retention) -> Result<usize, crate::store::DbError> {
    // Deleted sessions' events first: hidden already, they only take room.
    loop {
        let n = log.remove_deleted(CHUNK).await?;
        if n > 0 {
            info!(removed = n, "deleted sessions' events removed");
        }
        if n < CHUNK {
            break;
        }
    }
    let mut trimmed = 0;
    loop {
        let before = SystemTime::now()
            .checked_sub(retention.max_age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        // A chunk by size may stop short of CHUNK (at one session's share) while
        // more is due: go on until a trim finds nothing to do.
        let n = log.trim(before, retention.max_bytes, CHUNK).await?;
        trimmed += n;
        if n == 0 {
            break;
        }
    }
    if trimmed > 0 {
        info!(trimmed, kept_bytes = log.bytes(), "event log trimmed");
    }
    // Media handles past their expiry, and download descriptors as old as the
    // events trimmed by age (a message gone from the log cannot be downloaded).
    let now = SystemTime::now();
    let swept = log
        .media()
        .sweep(
            now,
            now.checked_sub(retention.max_age).unwrap_or(SystemTime::UNIX_EPOCH),
        )
        .await?;
    if swept > 0 {
        info!(swept, "expired media handles and old download descriptors removed");
    }
    let forgotten = forget_trimmed_media(log, now).await?;
    if forgotten > 0 {
        info!(
            forgotten,
            "download descriptors of messages trimmed from the log removed"
        );
    }
    let age = match log.oldest().await? {
        Some((_, at)) => SystemTime::now().duration_since(at).unwrap_or_default().as_secs(),
        None => 0,
    };
    log.metrics().set_oldest_age(age);
    let head = log.head();
    for (consumer, position) in log.consumers().await? {
        log.metrics().consumer_acked(&consumer, head, position);
    }
    Ok(trimmed)
}
