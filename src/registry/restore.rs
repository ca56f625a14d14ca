//! The restore at daemon startup: every stored session's credentials checked once
//! (off the async workers: it reads files), its state rebuilt from its record, and
//! its actors spawned in batches.

use std::{sync::Arc, time::Duration};

use ractor::{Actor, ActorRef};
use tokio::{task::JoinSet, time::Instant};
use tracing::{error, info, warn};

use super::{entry::Entry, RegistryMsg, RegistryState};
use crate::{
    domain::SessionId,
    session::{
        actor::{Boot, SessionActor, SessionContext},
        state::SessionState,
    },
    store::SessionRecord,
};

/// Sessions whose actors start together at startup.
const RESTORE_BATCH: usize = 256;

/// Restores every session, a batch at a time, with a progress line every 2 s.
pub(super) async fn restore_all(
    state: &mut RegistryState,
    myself: &ActorRef<RegistryMsg>,
    records: Vec<SessionRecord>,
) {
    let total = records.len();
    let started = Instant::now();
    let mut progress = Instant::now();
    let mut records = records.into_iter().peekable();
    let mut done = 0;
    while records.peek().is_some() {
        let batch: Vec<SessionRecord> = records.by_ref().take(RESTORE_BATCH).collect();
        let ctx = state.ctx.clone();
        let checked = match tokio::task::spawn_blocking(move || check_batch(&ctx, batch)).await {
            Ok(checked) => checked,
            Err(e) => {
                error!(error = %e, "checking a batch of stored sessions failed; they are skipped");
                continue;
            }
        };
        done += spawn_batch(state, myself, checked).await;
        if progress.elapsed() >= Duration::from_secs(2) {
            info!(restored = done, total, "restoring sessions");
            progress = Instant::now();
        }
    }
    info!(
        sessions = total,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sessions restored"
    );
}

/// Each record's state at startup: its credentials checked once (unusable ones
/// wiped, the cause noted in last_error). Blocking.
fn check_batch(ctx: &Arc<SessionContext>, batch: Vec<SessionRecord>) -> Vec<(SessionId, SessionRecord, SessionState)> {
    batch
        .into_iter()
        .map(|record| {
            let id = record.id.clone();
            let repaired = ctx.backend.repair(&id);
            if let Some(why) = &repaired {
                warn!(session_id = %id, %why, "unusable credentials wiped: the session pairs again");
            }
            let mut state = SessionState::at_rest(&record, ctx.backend.has_credentials(&id));
            if let Some(why) = repaired {
                state.note_error(why);
            }
            (id, record, state)
        })
        .collect()
}

/// Spawns a batch's actors together (each spawn waits for its actor's pre_start).
/// Returns how many run.
async fn spawn_batch(
    state: &mut RegistryState,
    myself: &ActorRef<RegistryMsg>,
    checked: Vec<(SessionId, SessionRecord, SessionState)>,
) -> usize {
    let mut spawning = JoinSet::new();
    for (id, record, restored) in checked {
        let entry = Entry::new(&id, restored.view().clone(), state.supervision, &state.table);
        state.sessions.insert(id.clone(), entry);
        let Some(args) = state.args_for(&id, record, Boot::Restored, restored) else {
            continue;
        };
        let parent = myself.get_cell();
        spawning.spawn(async move { (id, Actor::spawn_linked(None, SessionActor, args, parent).await) });
    }
    let mut running = 0;
    while let Some(spawned) = spawning.join_next().await {
        match spawned {
            Ok((id, Ok((actor, _)))) => {
                state.register(&id, actor);
                running += 1;
            }
            Ok((id, Err(e))) => state.spawn_failed(&id, &e.to_string()),
            Err(e) => error!(error = %e, "spawning a restored session panicked"),
        }
    }
    running
}
