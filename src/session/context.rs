//! What a session actor is started with: the services every session shares, its
//! server-side bounds, and how this incarnation boots. The registry builds these;
//! the actor only reads them.

use std::{sync::Arc, time::Duration};

use ractor::RpcReplyPort;
use tokio::sync::{broadcast, watch};

use super::{state::SessionState, waiters::Reply};
use crate::{
    backend::Backend,
    domain::{QrRequest, SessionEvent, SessionView},
    error::SessionError,
    events::EventLog,
    metrics::Metrics,
    store::{DataDir, SessionDb, SessionRecord},
};

/// The stop reason of a session that deleted itself: its supervisor forgets it.
pub const DELETED: &str = "deleted";
/// The stop reason of a new session whose record could not be stored: its
/// supervisor forgets it (the caller got the error).
pub const NOT_CREATED: &str = "not created";

/// Server-side bounds and delays.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// How long a new pairing connection (create, refresh) may take to show a code.
    pub qr: Duration,
    /// How long a lazy regeneration (get) may take to show a code.
    pub refresh: Duration,
    /// The cap of the reconnect backoff.
    pub reconnect_max: Duration,
    /// How long a connection must stay up for the backoff to start over.
    pub stable_after: Duration,
    /// How long an accepted message may wait to be sent (or acked) before it
    /// fails as EXPIRED (`--outbound-ttl`).
    pub outbound_ttl: Duration,
}

/// What every session shares.
pub struct SessionContext {
    /// The WhatsApp implementation (real, emulated or scripted).
    pub backend: Arc<dyn Backend>,
    /// Where session folders live.
    pub data: DataDir,
    /// The session list on disk.
    pub store: SessionDb,
    /// The event log (status changes go in; connections deliver messages to it).
    pub log: EventLog,
    /// Server-side bounds and delays, the same for every session.
    pub timeouts: Timeouts,
    /// Every session's changes, for WatchSessions.
    pub events: broadcast::Sender<SessionEvent>,
    /// The daemon's metrics.
    pub metrics: Arc<Metrics>,
    /// The most sessions the registry holds; creating more is refused.
    pub max_sessions: usize,
}

/// How a session actor starts.
pub(crate) enum Boot {
    /// Just created: store the record, then start pairing (or resume if credentials
    /// exist) and answer the first caller. A record that cannot be stored is the
    /// caller's error, and the actor stops with `NOT_CREATED`.
    New {
        /// The caller of CreateSession: what it wants of the QR, and its answer.
        first: Option<(QrRequest, Reply)>,
    },
    /// Restored at daemon startup (its state already rebuilt from its record).
    Restored,
    /// Started again after a crash (or afresh): it loads its own record; with
    /// `gave_up`, it stays FAILED with that reason.
    Reload {
        /// Why it gave up (the restart budget is spent).
        gave_up: Option<String>,
    },
    /// It was restarting when a delete came: delete at once.
    Delete(RpcReplyPort<Result<(), SessionError>>),
}

/// Arguments of a session actor.
pub(crate) struct SessionArgs {
    /// The state it starts from; for a reload, the last one the registry saw, so
    /// revisions and generations go on growing.
    pub state: SessionState,
    /// Its stored record: the fallback when a reload finds none on disk.
    pub record: SessionRecord,
    /// How it starts.
    pub boot: Boot,
    /// What every session shares.
    pub ctx: Arc<SessionContext>,
    /// Where snapshots are published: the registry answers reads from its other
    /// end, so it outlives each incarnation.
    pub published: watch::Sender<SessionView>,
}
