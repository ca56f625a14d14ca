//! The stateful half of startup: takes the data dir (waiting while another daemon
//! holds it), reads the session list, finishes deletes a crash cut short, opens the
//! event log, and starts the registry on them, which restores every session. Then
//! the registry, retention and both writer threads join the watched tasks.

use std::{sync::Arc, time::Duration};

use ractor::{Actor, ActorRef};
use tokio::task::JoinHandle;
use tracing::{error, info};

use super::{watch::Watched, StartError, Wiring};
use crate::{
    backend::Backend,
    config::Config,
    events::{
        retention::{self, Retention},
        EventLog, EVENTS_FILE,
    },
    registry::{Registry, RegistryArgs, RegistryMsg, Supervision, Table},
    session::actor::{SessionContext, Timeouts},
    store::{db::DB_FILE, finish_wipe, DataDir, DirLock, SessionDb},
};

/// The registry, as the watch list and `/livez` name it.
pub const REGISTRY: &str = "the session registry";

/// Changes a WatchSessions client may lag behind before it is cut off.
const EVENT_BUFFER: usize = 4096;

/// The daemon's state, open and running.
pub struct Core {
    /// The registry actor: the door is opened on it, the drain stops it.
    pub registry: ActorRef<RegistryMsg>,
    /// The event log: EventService reads it, retention trims it.
    pub log: EventLog,
    /// A handle on the session list, kept so its writer thread cannot stop while
    /// the daemon runs (its end is then always a death).
    db: SessionDb,
    /// The data dir's lock, held until the drain is over.
    _lock: DirLock,
}

/// Opens the stores and starts the registry. The registry's task comes back apart
/// from the core, for [`Core::watch`].
pub async fn start(
    config: &Config,
    data: DataDir,
    backend: Arc<dyn Backend>,
    wiring: &Wiring,
    table: Table,
) -> Result<(Core, JoinHandle<()>), StartError> {
    let lock = data.lock().await.map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let (root, quota) = (data.root().to_owned(), wiring.db_quota.clone());
    let opened = tokio::task::spawn_blocking(move || SessionDb::open_with_quota(&root, quota))
        .await
        .map_err(|e| StartError::Registry(e.to_string()))?;
    let (db, restored) = opened.map_err(|e| StartError::SessionList {
        path: config.data_dir.join(DB_FILE).display().to_string(),
        cause: e.to_string(),
    })?;
    for skipped in &restored.skipped {
        error!(session_id = %skipped.id, why = %skipped.why, "skipping a session whose record cannot be read; fix or delete it");
    }
    for id in &restored.unwiped {
        if finish_wipe(&data, &db, id).await {
            info!(session_id = %id, "finished deleting a session a crash interrupted");
        }
    }
    let log = open_event_log(config, &data, wiring).await?;
    let ctx = Arc::new(SessionContext {
        backend,
        data,
        store: db.clone(),
        log: log.clone(),
        timeouts: timeouts(config),
        events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
        metrics: wiring.metrics.clone(),
        max_sessions: config.edge.max_sessions as usize,
    });
    let args = RegistryArgs {
        ctx,
        records: restored.records,
        supervision: Supervision {
            budget: config.session_restart_budget as usize,
            window: config.session_restart_window,
        },
        table,
    };
    let (registry, task) = Actor::spawn(None, Registry, args)
        .await
        .map_err(|e| StartError::Registry(e.to_string()))?;
    let core = Core {
        registry,
        log,
        db,
        _lock: lock,
    };
    Ok((core, task))
}

impl Core {
    /// Watches the registry's `task`, retention (started here) and the writer
    /// threads of the session list and the event log.
    pub fn watch(&self, task: JoinHandle<()>, config: &Config, watched: &mut Watched) {
        watched.spawn(REGISTRY, async move { task.await.map_err(|e| e.to_string()) });
        let retention = Retention {
            max_age: config.events.event_retention,
            max_bytes: config.events.event_retention_bytes,
            every: config.events.event_trim_interval,
        };
        let trimmed = self.log.clone();
        watched.spawn("event log retention", async move {
            retention::run(trimmed, retention).await;
            Ok(())
        });
        let list_writer = self.db.writer_ended();
        watched.spawn("the session list's writer", async move { Err(list_writer.await) });
        let log_writer = self.log.writer_ended();
        watched.spawn("the event log's writer", async move { Err(log_writer.await) });
    }
}

/// Opens `<data-dir>/events.db` (blocking, off the runtime's threads).
async fn open_event_log(config: &Config, data: &DataDir, wiring: &Wiring) -> Result<EventLog, StartError> {
    let (root, metrics) = (data.root().to_owned(), wiring.metrics.events.clone());
    tokio::task::spawn_blocking(move || EventLog::open(&root, metrics))
        .await
        .map_err(|e| StartError::Registry(e.to_string()))?
        .map_err(|e| StartError::EventLog {
            path: config.data_dir.join(EVENTS_FILE).display().to_string(),
            cause: e.to_string(),
        })
        .map(|log| log.with_max_consumers(config.events.max_consumers))
}

/// The session timeouts the config sets.
fn timeouts(config: &Config) -> Timeouts {
    Timeouts {
        qr: config.qr_timeout,
        refresh: config.refresh_timeout,
        reconnect_max: config.reconnect_max_delay,
        stable_after: Duration::from_secs(30).min(config.reconnect_max_delay),
        outbound_ttl: config.events.outbound_ttl,
    }
}
