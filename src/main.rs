//! `wa-sessiond`: reads the configuration, sets up logs, binds, and runs the daemon
//! (and its admin port).

#![forbid(unsafe_code)]

use std::{net::SocketAddr, process::ExitCode, sync::Arc};

use tokio::net::TcpListener;
use wa_sessiond::{
    app,
    config::{self, Config},
    telemetry,
};

fn main() -> ExitCode {
    let config = Config::from_env_or_exit();
    telemetry::init(config.log_format);
    if config::CERTIFICATE_CHECK_OFF {
        tracing::warn!("{}", config::UNVERIFIED_WARNING);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wa-sessiond: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listeners = match (bind(config.listen).await, bind(config.edge.admin_listen).await) {
            (Ok(grpc), Ok(admin)) => app::Listeners { grpc, admin },
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
        let result = app::run(listeners, config, wiring, app::shutdown_signal()).await;
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
