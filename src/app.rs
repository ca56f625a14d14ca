//! Wires the daemon together and runs it until `shutdown` resolves: the data dir, the
//! backend, the registry, the gRPC server (SessionService, EmulatorService, health,
//! reflection) and the admin port. `run` is the one seam: `main` and the tests call
//! only it. If the registry or the gRPC server ends while the daemon is not shutting
//! down, `run` returns the reason (the process exits non-zero and Kubernetes
//! restarts it).

use std::{future::Future, sync::Arc, time::Duration};

use ractor::{Actor, ActorCell, ActorRef};
use tokio::net::TcpListener;
use tonic::{service::interceptor::InterceptedService, transport::server::TcpIncoming};
use tonic_health::ServingStatus;
use tracing::{error, info, warn};

use crate::{
    admin::Admin,
    backend::{
        emulator::{Emulator, EmulatorConfig},
        paced::{Paced, Widths},
        whatsapp::WhatsappBackend,
        Backend,
    },
    config::{BackendKind, Config},
    domain::SessionId,
    events::{retention::Retention, EventLog},
    grpc::{
        auth::BearerAuth,
        emulator_service::EmulatorApi,
        event_service::{EventApi, LogSlot},
        server,
        session_service::SessionApi,
    },
    link::LinkService,
    metrics::Metrics,
    proto::{
        emulator_service_server::EmulatorServiceServer, event_service_server::EventServiceServer,
        session_service_server::SessionServiceServer,
    },
    readiness::Readiness,
    registry::{Registry, RegistryArgs, Sessions, Supervision, Table},
    session::actor::{SessionContext, Timeouts},
    store::{finish_wipe, DataDir, DirLock, PageQuota, SessionDb},
};

/// Changes a WatchSessions client may lag behind before it is cut off.
const EVENT_BUFFER: usize = 4096;

/// A failure to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data dir could not be used.
    #[error("data dir {path} is not usable: {source}")]
    DataDir {
        /// The configured path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The registry did not start.
    #[error("the session registry did not start: {0}")]
    Registry(String),
    /// The session list could not be read.
    #[error("the session list {path} cannot be read ({cause}): restore it from a backup, or move it aside to start with no sessions")]
    SessionList {
        /// The database file.
        path: String,
        /// Why.
        cause: String,
    },
    /// The event log could not be opened.
    #[error("the event log {path} cannot be opened ({cause}): fix its permissions or free space; moving it aside starts an empty log and loses every consumer's position")]
    EventLog {
        /// The database file.
        path: String,
        /// Why.
        cause: String,
    },
    /// Server setup failed.
    #[error("grpc server failed: {0}")]
    Server(String),
    /// A part of the core ended while the daemon was not shutting down.
    #[error("{0}: exiting so that it is restarted")]
    CoreEnded(String),
}

/// Where the daemon listens.
pub struct Listeners {
    /// gRPC.
    pub grpc: TcpListener,
    /// The admin port (`/livez`, `/readyz`, `/metrics`).
    pub admin: TcpListener,
}

/// The emulator for a config (the one `run` builds when given none).
pub fn emulator_for(config: &Config, data: DataDir) -> Emulator {
    let timings = EmulatorConfig {
        first_ttl: config.emulator_first_qr_ttl,
        next_ttl: config.emulator_next_qr_ttl,
        qr_count: config.emulator_qr_count,
        step_delay: config.emulator_qr_delay,
    };
    Emulator::new(timings, data)
}

/// Opens the data dir named in `config`.
pub fn open_data_dir(config: &Config) -> Result<DataDir, StartError> {
    DataDir::open(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })
}

/// Parts a caller (a test, an embedding) may supply and keep a handle on.
#[derive(Clone, Default)]
pub struct Wiring {
    /// With the emulator backend: the emulator to use (built from the config if
    /// None), so a test can steer it.
    pub emulator: Option<Emulator>,
    /// The daemon's metrics.
    pub metrics: Arc<Metrics>,
    /// Whether the daemon should get traffic (`/readyz`) and is alive (`/livez`).
    pub readiness: Arc<Readiness>,
    /// The registry actor once it runs (a test may stop it to see the process go).
    pub registry: Arc<std::sync::OnceLock<ActorCell>>,
    /// The session list's page quota (none by default; a test fills the "disk" with it).
    pub db_quota: PageQuota,
    /// Where the link page listens (bound from `--link-listen`); None switches it off.
    pub link_listener: Option<Arc<std::net::TcpListener>>,
}

/// Runs the daemon on `listeners` until `shutdown` resolves, then drains within the
/// grace period. The gRPC server and admin port answer at once, but report
/// NOT_SERVING / 503 (and refuse session calls as UNAVAILABLE) until every session is
/// restored.
pub async fn run(
    listeners: Listeners,
    config: Config,
    wiring: Wiring,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let admin = Admin {
        metrics: wiring.metrics.clone(),
        readiness: wiring.readiness.clone(),
    };
    let admin = AbortOnDrop(tokio::spawn(admin.serve(listeners.admin)));
    let listener = listeners.grpc;
    let data = open_data_dir(&config)?;
    let emulator = match config.backend {
        BackendKind::Emulator => Some(
            wiring
                .emulator
                .clone()
                .unwrap_or_else(|| emulator_for(&config, data.clone())),
        ),
        BackendKind::Whatsapp => None,
    };
    let backend: Arc<dyn Backend> = match &emulator {
        Some(emulator) => Arc::new(emulator.clone()),
        None => Arc::new(WhatsappBackend::new(
            data.clone(),
            config.wa_version,
            config.whatsapp_url.clone(),
        )),
    };
    let widths = Widths {
        connects: config.max_concurrent_connects as usize,
        pairings: config.max_concurrent_pairings as usize,
    };
    let backend: Arc<dyn Backend> = Arc::new(Paced::new(backend, widths, wiring.metrics.clone()));

    let longest_wait = config.qr_timeout.max(config.refresh_timeout);
    let sessions_door = Sessions::new(longest_wait);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::NotServing).await;
    health.set_not_serving::<SessionServiceServer<SessionApi>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| StartError::Server(e.to_string()))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| StartError::Server(e.to_string()))?;

    let (auth, max_request) = (
        BearerAuth::new(config.edge.auth_token.as_ref()),
        config.edge.max_request_bytes as usize,
    );
    let link = match &wiring.link_listener {
        Some(listener) => {
            let sessions = sessions_door.clone();
            let link = LinkService::prepare(&config.link, listener, data.root(), sessions);
            Some(link.map_err(|source| StartError::DataDir {
                path: config.data_dir.display().to_string(),
                source,
            })?)
        }
        None => None,
    };
    let log_slot = LogSlot::default();
    let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
    let events = EventServiceServer::new(EventApi::new(log_slot.clone(), sessions_door.clone(), stopping_rx));
    let events = InterceptedService::new(events.max_decoding_message_size(max_request), auth.clone());
    let api = SessionApi::new(sessions_door.clone()).with_links(link.as_ref().map(LinkService::issuer));
    let sessions = SessionServiceServer::new(api);
    let sessions = InterceptedService::new(sessions.max_decoding_message_size(max_request), auth.clone());
    let emulator_service = emulator.or_else(|| wiring.emulator.clone()).map(|e| {
        let service = EmulatorServiceServer::new(EmulatorApi::new(e, sessions_door.clone()))
            .max_decoding_message_size(max_request);
        InterceptedService::new(service, auth)
    });

    let addr = listener.local_addr().map_err(|e| StartError::Server(e.to_string()))?;
    info!(%addr, backend = ?config.backend, data_dir = %config.data_dir.display(), "wa-sessiond listening; restoring sessions");

    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server::builder(&config.edge, wiring.metrics.clone())
        .map_err(StartError::Server)?
        .add_service(health_service.max_decoding_message_size(max_request))
        .add_service(reflection_v1.max_decoding_message_size(max_request))
        .add_service(reflection_v1alpha.max_decoding_message_size(max_request))
        .add_service(sessions)
        .add_service(events)
        .add_optional_service(emulator_service)
        // Small responses go out at once (Nagle would hold them for a delayed ACK, ~40 ms).
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), async {
            let _ = server_stopped.await;
        });
    let mut server = tokio::spawn(server);
    let link = link.map(|link| tokio::spawn(link.serve()));

    let mut shutdown = std::pin::pin!(shutdown);
    let started = tokio::select! {
        started = start_sessions(&config, data, backend, &wiring, &log_slot, sessions_door.table()) => Some(started?),
        () = &mut shutdown => None,
        ended = &mut server => return Err(core_ended(&wiring, "the grpc server", &format!("{ended:?}"))),
    };
    let mut registry = None;
    if let Some(Started {
        registry: actor,
        mut task,
        lock,
        retention,
    }) = started
    {
        let _retention = retention;
        let _ = wiring.registry.set(actor.get_cell());
        sessions_door.open(actor.clone());
        health.set_serving::<SessionServiceServer<SessionApi>>().await;
        health.set_service_status("", ServingStatus::Serving).await;
        wiring.readiness.mark_restored();
        info!(%addr, "wa-sessiond ready");
        tokio::select! {
            () = &mut shutdown => {}
            ended = &mut task => return Err(core_ended(&wiring, "the session registry", &format!("{ended:?}"))),
            ended = &mut server => return Err(core_ended(&wiring, "the grpc server", &format!("{ended:?}"))),
        }
        registry = Some((actor, task, lock));
    }

    info!(grace = ?config.shutdown_grace, "shutting down: closing sessions without logging out");
    health.set_service_status("", ServingStatus::NotServing).await;
    health.set_not_serving::<SessionServiceServer<SessionApi>>().await;
    wiring.readiness.mark_draining();
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        // No new calls; the ones in flight are answered as their sessions stop, and
        // event streams end (their clients resume from their cursors).
        let _ = stop_server.send(());
        stopping.send_replace(true);
        if let Some((registry, task, _lock)) = registry {
            registry.stop(Some("shutdown".into()));
            let _ = task.await;
        }
        server.await
    })
    .await;
    drop(admin);
    if let Some(link) = link {
        link.abort();
    }
    match drained {
        Ok(Ok(Ok(()))) => info!("shut down cleanly"),
        Ok(Ok(Err(e))) => return Err(StartError::Server(e.to_string())),
        Ok(Err(e)) => return Err(StartError::Server(e.to_string())),
        Err(_) => warn!("shutdown grace period passed; exiting anyway"),
    }
    Ok(())
}

/// Notes that a part of the core ended by itself: not live, not ready, and the
/// reason `run` returns.
fn core_ended(wiring: &Wiring, what: &'static str, how: &str) -> StartError {
    wiring.readiness.mark_dead(what);
    error!(
        part = what,
        how, "a part of the core ended while the daemon was running"
    );
    StartError::CoreEnded(format!("{what} ended unexpectedly ({how})"))
}

/// Aborts its task when dropped (the admin port ends with `run`).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The running registry, and the data dir's lock held for as long as it runs.
struct Started {
    registry: ActorRef<crate::registry::RegistryMsg>,
    task: tokio::task::JoinHandle<()>,
    lock: DirLock,
    /// The event log's retention task (ends with `run`).
    retention: AbortOnDrop,
}

/// Takes the data dir (waiting while another daemon holds it), reads the session
/// list, finishes deletes a crash cut short, and restores every session.
async fn start_sessions(
    config: &Config,
    data: DataDir,
    backend: Arc<dyn Backend>,
    wiring: &Wiring,
    log_slot: &LogSlot,
    table: Table,
) -> Result<Started, StartError> {
    let metrics = wiring.metrics.clone();
    let lock = data.lock().await.map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let (root, quota) = (data.root().to_owned(), wiring.db_quota.clone());
    let opened = tokio::task::spawn_blocking(move || SessionDb::open_with_quota(&root, quota))
        .await
        .map_err(|e| StartError::Registry(e.to_string()))?;
    let (store, restored) = opened.map_err(|e| StartError::SessionList {
        path: config.data_dir.join(crate::store::db::DB_FILE).display().to_string(),
        cause: e.to_string(),
    })?;
    for skipped in &restored.skipped {
        error!(session_id = %skipped.id, why = %skipped.why, "skipping a session whose record cannot be read; fix or delete it");
    }
    for id in &restored.unwiped {
        finish_delete(&data, &store, id).await;
    }
    let (root, event_metrics) = (data.root().to_owned(), metrics.events.clone());
    let log = tokio::task::spawn_blocking(move || EventLog::open(&root, event_metrics))
        .await
        .map_err(|e| StartError::Registry(e.to_string()))?
        .map_err(|e| StartError::EventLog {
            path: config.data_dir.join(crate::events::EVENTS_FILE).display().to_string(),
            cause: e.to_string(),
        })?;
    let retention = Retention {
        max_age: config.events.event_retention,
        max_bytes: config.events.event_retention_bytes,
        every: config.events.event_trim_interval,
    };
    let retention = AbortOnDrop(tokio::spawn(crate::events::retention::run(log.clone(), retention)));
    let _ = log_slot.set(log.clone());
    let timeouts = Timeouts {
        qr: config.qr_timeout,
        refresh: config.refresh_timeout,
        reconnect_max: config.reconnect_max_delay,
        stable_after: Duration::from_secs(30).min(config.reconnect_max_delay),
    };
    let (events, _) = tokio::sync::broadcast::channel(EVENT_BUFFER);
    let ctx = Arc::new(SessionContext {
        backend,
        data,
        store,
        log,
        timeouts,
        events,
        metrics,
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
    Ok(Started {
        registry,
        task,
        lock,
        retention,
    })
}

/// Finishes the wipe of a session whose delete a crash cut short.
async fn finish_delete(data: &DataDir, store: &SessionDb, raw_id: &str) {
    let Ok(id) = SessionId::parse(raw_id) else {
        return;
    };
    if finish_wipe(data, store, &id).await {
        info!(session_id = %id, "finished deleting a session a crash interrupted");
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("SIGINT received"),
        () = term => info!("SIGTERM received"),
    }
}
