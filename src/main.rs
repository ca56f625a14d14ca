//! `wa-sessiond`: reads the configuration, sets up logs, binds, and runs the daemon
//! (and its admin port).

#![forbid(unsafe_code)]

use std::{net::SocketAddr, process::ExitCode, sync::Arc};

use tokio::net::TcpListener;
use wa_sessiond::{
    admin::Admin,
    app,
    config::{self, Config},
    telemetry,
};

fn main() -> ExitCode {
    let config = Config::from_env_or_exit();
    telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wa-sessiond: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let (listener, admin_listener) = match (bind(config.listen).await, bind(config.edge.admin_listen).await) {
            (Ok(listener), Ok(admin_listener)) => (listener, admin_listener),
            (Err(line), _) | (_, Err(line)) => {
                eprintln!("wa-sessiond: {line}");
                return ExitCode::from(config::EXIT_UNAVAILABLE);
            }
        };
        let link_listener = match config.link.link_listen {
            Some(addr) => match bind(addr)
                .await
                .and_then(|l| l.into_std().map_err(|e| format!("cannot listen on {addr}: {e}")))
            {
                Ok(listener) => Some(Arc::new(listener)),
                Err(line) => {
                    eprintln!("wa-sessiond: {line} (--link-listen; empty switches the link page off)");
                    return ExitCode::from(config::EXIT_UNAVAILABLE);
                }
            },
            None => None,
        };
        let wiring = app::Wiring {
            link_listener,
            ..app::Wiring::default()
        };
        let admin = Admin {
            metrics: wiring.metrics.clone(),
            readiness: wiring.readiness.clone(),
        };
        let admin = tokio::spawn(admin.serve(admin_listener));
        let result = app::run(listener, config, wiring, app::shutdown_signal()).await;
        admin.abort();
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wa-sessiond: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}
