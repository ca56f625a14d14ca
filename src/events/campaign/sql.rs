//! The campaign tables and the writer's side of them: create (idempotent by
//! content), add items (idempotent by item id), the operator's pause, resume and
//! cancel, and the daemon's own pauses ([`items`] has the item changes that follow
//! the outbound log). A deleted session's campaigns go at once; their items go in
//! chunks ([`remove_chunk`]).

use std::time::SystemTime;

use rusqlite::{params, OptionalExtension, Transaction};

use super::{
    caps, is_automatic, items, now_ms, read, Auto, CampaignRow, CampaignState, ItemStatus, NewCampaign, NewItem,
    PauseReason, Verdict,
};
use crate::store::{unix_ms, DbError};

/// The tables, created with the log's own.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS campaigns (
    n            INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    session_id   TEXT NOT NULL,
    state        INTEGER NOT NULL,
    pause_reason INTEGER NOT NULL DEFAULT 0,
    resume_at_ms INTEGER NOT NULL DEFAULT 0,
    pacing       TEXT NOT NULL,
    labels       TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    next_seq     INTEGER NOT NULL DEFAULT 0,
    total        INTEGER NOT NULL DEFAULT 0,
    pending      INTEGER NOT NULL DEFAULT 0,
    sending      INTEGER NOT NULL DEFAULT 0,
    sent         INTEGER NOT NULL DEFAULT 0,
    server_ack   INTEGER NOT NULL DEFAULT 0,
    delivered    INTEGER NOT NULL DEFAULT 0,
    read         INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    cancelled    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS campaigns_by_session ON campaigns (session_id, id);
CREATE TABLE IF NOT EXISTS campaign_items (
    campaign   INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    item_id    TEXT NOT NULL,
    chat       TEXT NOT NULL,
    content    TEXT NOT NULL,
    status     INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    error_code INTEGER NOT NULL DEFAULT 0,
    error      TEXT NOT NULL DEFAULT '',
    sent_ms    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS campaign_items_by_id ON campaign_items (campaign, item_id);
CREATE INDEX IF NOT EXISTS campaign_items_by_message ON campaign_items (message_id);
-- The pending items (status 1), and those that ended unsent or failed (FAILED 7,
-- SKIPPED 8, CANCELLED 9): an item sent leaves the first and enters no other
-- (a single index of every status cost the writer two index changes per item).
-- Items under way are read through the primary key, with their messages.
DROP INDEX IF EXISTS campaign_items_pending;
DROP INDEX IF EXISTS campaign_items_by_status;
CREATE INDEX IF NOT EXISTS campaign_items_to_send ON campaign_items (campaign, seq) WHERE status = 1;
CREATE INDEX IF NOT EXISTS campaign_items_ended ON campaign_items (campaign, status, seq) WHERE status IN (7, 8, 9);
CREATE TABLE IF NOT EXISTS campaign_removals (
    n INTEGER PRIMARY KEY
);
CREATE INDEX IF NOT EXISTS outbound_by_chat ON outbound (session_id, chat);
CREATE TABLE IF NOT EXISTS campaign_numbers (
    session_id TEXT NOT NULL,
    chat       TEXT NOT NULL,
    verdict    INTEGER NOT NULL,
    checked_ms INTEGER NOT NULL,
    PRIMARY KEY (session_id, chat)
) WITHOUT ROWID;
";

/// The most items a campaign holds.
pub const MAX_ITEMS: u64 = 1_000_000;

/// What creating (or adding to) a campaign did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Done: the campaign now.
    Campaign(Box<CampaignRow>),
    /// No campaign with that id.
    Missing,
    /// The id is taken by a campaign with other content.
    Conflict(Box<CampaignRow>),
    /// The campaign would hold more than [`MAX_ITEMS`].
    TooMany(Box<CampaignRow>),
    /// The operator's action does not apply to a campaign in this state.
    Final(Box<CampaignRow>),
}

/// What an operator asks of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Cancel,
}

/// Creates a campaign with its first items, or answers the one with that id (the
/// same content) or a conflict (other content).
pub fn create(tx: &Transaction<'_>, new: &NewCampaign) -> Result<Written, DbError> {
    if let Some(row) = read::campaign(tx, &new.id)? {
        return Ok(if row.fingerprint == new.fingerprint {
            Written::Campaign(Box::new(row))
        } else {
            Written::Conflict(Box::new(row))
        });
    }
    let (state, reason) = if new.start_paused {
        (CampaignState::Paused, PauseReason::Operator)
    } else {
        (CampaignState::Running, PauseReason::Unspecified)
    };
    tx.prepare_cached(
        "INSERT INTO campaigns (id, session_id, state, pause_reason, pacing, labels, fingerprint, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        new.id,
        new.session_id,
        state as i32,
        reason as i32,
        serde_json::to_string(&new.pacing).expect("pacing serializes"),
        serde_json::to_string(&new.labels).expect("labels serialize"),
        new.fingerprint,
        now_ms(),
    ])?;
    add(tx, &new.id, &new.items)
}

/// Adds the items whose ids the campaign does not have yet, in order; a DONE
/// campaign runs again.
pub fn add(tx: &Transaction<'_>, campaign_id: &str, items: &[NewItem]) -> Result<Written, DbError> {
    let Some(row) = read::campaign(tx, campaign_id)? else {
        return Ok(Written::Missing);
    };
    let mut fresh = Vec::with_capacity(items.len());
    {
        let mut known = tx.prepare_cached("SELECT 1 FROM campaign_items WHERE campaign = ?1 AND item_id = ?2")?;
        for item in items {
            if !known.exists(params![row.n, item.item_id])? {
                fresh.push(item);
            }
        }
    }
    if fresh.is_empty() {
        return Ok(Written::Campaign(Box::new(row)));
    }
    if row.counts.total + fresh.len() as u64 > MAX_ITEMS {
        return Ok(Written::TooMany(Box::new(row)));
    }
    let mut seq: i64 = tx.query_row("SELECT next_seq FROM campaigns WHERE n = ?1", [row.n], |r| r.get(0))?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO campaign_items (campaign, seq, item_id, chat, content, status, message_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for item in &fresh {
        let content = serde_json::to_string(&item.content).expect("an item's content serializes");
        let status = ItemStatus::Pending as i32;
        insert.execute(params![
            row.n,
            seq,
            item.item_id,
            item.chat,
            content,
            status,
            item.message_id
        ])?;
        seq += 1;
    }
    let added = fresh.len() as i64;
    tx.prepare_cached(
        "UPDATE campaigns SET next_seq = ?2, total = total + ?3, pending = pending + ?3,
         state = CASE WHEN state = ?4 THEN ?5 ELSE state END WHERE n = ?1",
    )?
    .execute(params![
        row.n,
        seq,
        added,
        CampaignState::Done as i32,
        CampaignState::Running as i32
    ])?;
    reread(tx, campaign_id)
}

/// The operator pauses, resumes or cancels a campaign.
pub fn operate(tx: &Transaction<'_>, campaign_id: &str, action: Action) -> Result<Written, DbError> {
    let Some(row) = read::campaign(tx, campaign_id)? else {
        return Ok(Written::Missing);
    };
    let finished = matches!(row.state, CampaignState::Done | CampaignState::Cancelled);
    match action {
        Action::Pause | Action::Resume if finished => return Ok(Written::Final(Box::new(row))),
        Action::Cancel if row.state == CampaignState::Cancelled => return Ok(Written::Campaign(Box::new(row))),
        Action::Cancel if finished => return Ok(Written::Final(Box::new(row))),
        _ => {}
    }
    let (state, reason) = match action {
        Action::Pause => (CampaignState::Paused, PauseReason::Operator),
        // The pacer pauses it again at once if a cause is still there.
        Action::Resume => (CampaignState::Running, PauseReason::Unspecified),
        Action::Cancel => (CampaignState::Cancelled, PauseReason::Unspecified),
    };
    set_state(tx, row.n, state, reason, None)?;
    if action == Action::Cancel {
        let sql = format!(
            "UPDATE campaign_items INDEXED BY campaign_items_to_send SET status = ?2 WHERE campaign = ?1 AND status = {}",
            ItemStatus::Pending as i32
        );
        let cancelled = tx
            .prepare_cached(&sql)?
            .execute(params![row.n, ItemStatus::Cancelled as i32])?;
        tx.prepare_cached("UPDATE campaigns SET pending = pending - ?2, cancelled = cancelled + ?2 WHERE n = ?1")?
            .execute(params![row.n, cancelled as i64])?;
    }
    reread(tx, campaign_id)
}

/// The daemon runs or pauses a campaign, unless the operator paused it or it is
/// over. True when it changed.
pub fn automatic(tx: &Transaction<'_>, n: i64, auto: Auto) -> Result<bool, DbError> {
    let current: Option<(i32, i32, i64)> = tx
        .prepare_cached("SELECT state, pause_reason, resume_at_ms FROM campaigns WHERE n = ?1")?
        .query_row([n], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((state, reason, resume_ms)) = current else {
        return Ok(false);
    };
    let state = CampaignState::try_from(state).unwrap_or(CampaignState::Unspecified);
    let reason = PauseReason::try_from(reason).unwrap_or(PauseReason::Unspecified);
    let ours = state == CampaignState::Running || (state == CampaignState::Paused && is_automatic(reason));
    if !ours {
        return Ok(false);
    }
    let (to_state, to_reason, to_resume) = match auto {
        Auto::Run => (CampaignState::Running, PauseReason::Unspecified, None),
        Auto::Pause(reason, until) => (CampaignState::Paused, reason, until),
    };
    let to_ms = to_resume.map_or(0, |t| unix_ms(t) as i64);
    if (state, reason, resume_ms) == (to_state, to_reason, to_ms) {
        return Ok(false);
    }
    set_state(tx, n, to_state, to_reason, to_resume)?;
    Ok(true)
}

fn set_state(
    tx: &Transaction<'_>,
    n: i64,
    state: CampaignState,
    reason: PauseReason,
    resume_at: Option<SystemTime>,
) -> Result<(), DbError> {
    let resume_ms = resume_at.map_or(0, |t| unix_ms(t) as i64);
    tx.prepare_cached("UPDATE campaigns SET state = ?2, pause_reason = ?3, resume_at_ms = ?4 WHERE n = ?1")?
        .execute(params![n, state as i32, reason as i32, resume_ms])?;
    Ok(())
}

/// A deleted session's campaigns go (their items in chunks, [`remove_chunk`]).
pub fn delete_session(tx: &Transaction<'_>, session_id: &str) -> Result<bool, DbError> {
    tx.prepare_cached("INSERT OR IGNORE INTO campaign_removals (n) SELECT n FROM campaigns WHERE session_id = ?1")?
        .execute([session_id])?;
    let deleted = tx
        .prepare_cached("DELETE FROM campaigns WHERE session_id = ?1")?
        .execute([session_id])?;
    caps::delete_session(tx, session_id)?;
    tx.prepare_cached("DELETE FROM campaign_numbers WHERE session_id = ?1")?
        .execute([session_id])?;
    Ok(deleted > 0)
}

/// Removes up to `chunk` items of deleted sessions' campaigns; how many went.
pub fn remove_chunk(tx: &Transaction<'_>, chunk: usize) -> Result<usize, DbError> {
    let Some(n) = tx
        .prepare_cached("SELECT n FROM campaign_removals LIMIT 1")?
        .query_row([], |r| r.get::<_, i64>(0))
        .optional()?
    else {
        return Ok(0);
    };
    let removed = tx
        .prepare_cached(
            "DELETE FROM campaign_items WHERE campaign = ?1 AND seq IN (SELECT seq FROM campaign_items WHERE campaign = ?1 LIMIT ?2)",
        )?
        .execute(params![n, chunk as i64])?;
    if removed < chunk {
        tx.prepare_cached("DELETE FROM campaign_removals WHERE n = ?1")?
            .execute([n])?;
    }
    Ok(removed)
}

fn reread(tx: &Transaction<'_>, campaign_id: &str) -> Result<Written, DbError> {
    Ok(read::campaign(tx, campaign_id)?.map_or(Written::Missing, |row| Written::Campaign(Box::new(row))))
}

/// A campaign job of the writer thread.
#[derive(Debug)]
pub enum Job {
    /// Create a campaign (idempotent by content).
    Create(NewCampaign),
    /// Add items to a campaign.
    Add {
        /// Which.
        campaign_id: String,
        /// What.
        items: Vec<NewItem>,
    },
    /// The operator's action.
    Operate {
        /// Which.
        campaign_id: String,
        /// What.
        action: Action,
    },
    /// The daemon's decision about a campaign (its key).
    Automatic {
        /// Which (`CampaignRow::n`).
        n: i64,
        /// What.
        auto: Auto,
    },
    /// An item cannot be sent.
    Fail {
        /// Its campaign's key.
        n: i64,
        /// Its position.
        seq: u64,
        /// Why, in words.
        error: String,
    },
    /// A lookup's verdicts, cached for the session, and the items of the campaign
    /// whose numbers are not on WhatsApp: SKIPPED.
    Checked {
        /// The campaign's key.
        n: i64,
        /// The session the verdicts belong to.
        session_id: String,
        /// Each chat's verdict, checked now.
        verdicts: Vec<(String, Verdict)>,
        /// The positions to skip.
        skip: Vec<u64>,
    },
}

/// A job's answer.
#[derive(Debug)]
pub enum Done {
    /// What a create, an add or an action did.
    Written(Written),
    /// Whether it changed anything (or how many went).
    Changed(usize),
}

/// The session whose campaign a job concerns (after it ran; None: no such campaign).
pub fn session_of(tx: &Transaction<'_>, job: &Job) -> Result<Option<String>, DbError> {
    let (sql, key): (&str, rusqlite::types::Value) = match job {
        Job::Create(new) => return Ok(Some(new.session_id.clone())),
        Job::Add { campaign_id, .. } | Job::Operate { campaign_id, .. } => (
            "SELECT session_id FROM campaigns WHERE id = ?1",
            campaign_id.clone().into(),
        ),
        Job::Automatic { n, .. } | Job::Fail { n, .. } | Job::Checked { n, .. } => {
            ("SELECT session_id FROM campaigns WHERE n = ?1", (*n).into())
        }
    };
    Ok(tx.prepare_cached(sql)?.query_row([key], |row| row.get(0)).optional()?)
}

/// Runs one job.
pub fn run(tx: &Transaction<'_>, job: &Job) -> Result<Done, DbError> {
    Ok(match job {
        Job::Create(new) => Done::Written(create(tx, new)?),
        Job::Add { campaign_id, items } => Done::Written(add(tx, campaign_id, items)?),
        Job::Operate { campaign_id, action } => Done::Written(operate(tx, campaign_id, *action)?),
        Job::Automatic { n, auto } => Done::Changed(automatic(tx, *n, *auto)? as usize),
        Job::Fail { n, seq, error } => Done::Changed(items::fail(tx, *n, *seq, error)? as usize),
        Job::Checked {
            n,
            session_id,
            verdicts,
            skip,
        } => Done::Changed(checked(tx, *n, session_id, verdicts, skip)?),
    })
}

/// Caches a lookup's verdicts (replacing older ones) and skips the items whose
/// numbers are not on WhatsApp; how many items it skipped.
fn checked(
    tx: &Transaction<'_>,
    n: i64,
    session_id: &str,
    verdicts: &[(String, Verdict)],
    skip: &[u64],
) -> Result<usize, DbError> {
    let now = now_ms();
    for (chat, verdict) in verdicts {
        tx.prepare_cached(
            "INSERT INTO campaign_numbers (session_id, chat, verdict, checked_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (session_id, chat) DO UPDATE SET verdict = excluded.verdict, checked_ms = excluded.checked_ms",
        )?
        .execute(params![session_id, chat, *verdict as i32, now])?;
    }
    let mut skipped = 0;
    for seq in skip {
        skipped += usize::from(items::skip(tx, n, *seq)?);
    }
    // A change to signal even when only verdicts were cached: the pacer looks again.
    Ok(skipped.max(usize::from(!verdicts.is_empty())))
}
