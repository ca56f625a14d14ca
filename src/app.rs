//! Wires the daemon together and runs it until `shutdown` resolves: the data dir, the
//! backend, the registry, and the gRPC server (SessionService, EmulatorService,
//! health, reflection). `run` is the seam tests drive on `127.0.0.1:0`.

use std::{future::Future, sync::Arc, time::Duration};

use ractor::{Actor, ActorRef};
use tokio::net::TcpListener;
use tonic::{service::interceptor::InterceptedService, transport::server::TcpIncoming};
use tonic_health::ServingStatus;
use tracing::{error, info, warn};

use crate::{
    backend::{
        emulator::{Emulator, EmulatorConfig},
        whatsapp::WhatsappBackend,
        Backend,
    },
    config::{BackendKind, Config},
    grpc::{auth::BearerAuth, emulator_service::EmulatorApi, server, session_service::SessionApi},
    link::{LinkService, Sessions},
    metrics::Metrics,
    proto::{emulator_service_server::EmulatorServiceServer, session_service_server::SessionServiceServer},
    readiness::Readiness,
    registry::{Registry, RegistryArgs, RegistryHandle, RegistryMsg, Supervision},
    session::{
        actor::{SessionContext, Timeouts},
        SessionId,
    },
    store::{finish_wipe, DataDir, DirLock, SessionDb},
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
    /// Server setup failed.
    #[error("grpc server failed: {0}")]
    Server(String),
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
    /// Whether the daemon should get traffic (`/readyz`).
    pub readiness: Arc<Readiness>,
    /// Where the link page listens (bound from `--link-listen`); None switches it off.
    pub link_listener: Option<Arc<std::net::TcpListener>>,
}

/// Runs the daemon on `listener` until `shutdown` resolves, then drains within the
/// grace period. The gRPC server answers at once, but reports NOT_SERVING (and
/// refuses session calls as UNAVAILABLE) until every session is restored.
pub async fn run(
    listener: TcpListener,
    config: Config,
    wiring: Wiring,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let data = open_data_dir(&config)?;
    let emulator = match config.backend {
        BackendKind::Emulator => Some(wiring.emulator.unwrap_or_else(|| emulator_for(&config, data.clone()))),
        BackendKind::Whatsapp => None,
    };
    let backend: Arc<dyn Backend> = match &emulator {
        Some(emulator) => Arc::new(emulator.clone()),
        None => Arc::new(WhatsappBackend::new(data.clone(), config.wa_version)),
    };

    let handle = RegistryHandle::default();
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

    let longest_wait = config.qr_timeout.max(config.refresh_timeout);
    let (auth, max_request) = (
        BearerAuth::new(config.edge.auth_token.as_ref()),
        config.edge.max_request_bytes as usize,
    );
    let link = match &wiring.link_listener {
        Some(listener) => {
            let sessions = Sessions::new(handle.clone(), longest_wait);
            let link = LinkService::prepare(&config.link, listener, data.root(), sessions);
            Some(link.map_err(|source| StartError::DataDir {
                path: config.data_dir.display().to_string(),
                source,
            })?)
        }
        None => None,
    };
    let api = SessionApi::new(handle.clone(), longest_wait).with_links(link.as_ref().map(LinkService::issuer));
    let sessions = SessionServiceServer::new(api);
    let sessions = InterceptedService::new(sessions.max_decoding_message_size(max_request), auth.clone());
    let emulator_service = emulator.map(|e| {
        let service =
            EmulatorServiceServer::new(EmulatorApi::new(e, handle.clone())).max_decoding_message_size(max_request);
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
        .add_optional_service(emulator_service)
        // Small responses go out at once (Nagle would hold them for a delayed ACK, ~40 ms).
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), async {
            let _ = server_stopped.await;
        });
    let server = tokio::spawn(server);
    let link = link.map(|link| tokio::spawn(link.serve()));

    let mut shutdown = std::pin::pin!(shutdown);
    let started = tokio::select! {
        started = start_sessions(&config, data, backend, wiring.metrics.clone()) => Some(started?),
        () = &mut shutdown => None,
    };
    let registry = match started {
        Some(Started { registry, task, lock }) => {
            handle.set(registry.clone());
            health.set_serving::<SessionServiceServer<SessionApi>>().await;
            health.set_service_status("", ServingStatus::Serving).await;
            wiring.readiness.mark_restored();
            info!(%addr, "wa-sessiond ready");
            shutdown.await;
            Some((registry, task, lock))
        }
        None => None,
    };

    info!(grace = ?config.shutdown_grace, "shutting down: closing sessions without logging out");
    health.set_service_status("", ServingStatus::NotServing).await;
    health.set_not_serving::<SessionServiceServer<SessionApi>>().await;
    wiring.readiness.mark_draining();
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        // No new calls; the ones in flight are answered as their sessions stop.
        let _ = stop_server.send(());
        if let Some((registry, task, _lock)) = registry {
            registry.stop(Some("shutdown".into()));
            let _ = task.await;
        }
        server.await
    })
    .await;
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

/// The running registry, and the data dir's lock held for as long as it runs.
struct Started {
    registry: ActorRef<RegistryMsg>,
    task: tokio::task::JoinHandle<()>,
    lock: DirLock,
}

/// Takes the data dir (waiting while another daemon holds it), reads the session
/// list, finishes deletes a crash cut short, and restores every session.
async fn start_sessions(
    config: &Config,
    data: DataDir,
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
) -> Result<Started, StartError> {
    let lock = data.lock().await.map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let root = data.root().to_owned();
    let opened = tokio::task::spawn_blocking(move || SessionDb::open(&root))
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
    };
    let (registry, task) = Actor::spawn(None, Registry, args)
        .await
        .map_err(|e| StartError::Registry(e.to_string()))?;
    Ok(Started { registry, task, lock })
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
