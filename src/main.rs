//! `wa-sessiond`: reads the configuration, sets up logs, binds, and runs the daemon
//! (and its admin port).

#![forbid(unsafe_code)]

use std::{net::SocketAddr, process::ExitCode};

use tokio::net::TcpListener;
use wa_sessiond::{
    app,
    config::{self, Config},
    files, telemetry,
};

fn main() -> ExitCode {
    let config = Config::from_env_or_exit();
    telemetry::init(config.log_format);
    if config::CERTIFICATE_CHECK_OFF {
        tracing::warn!("{}", config::UNVERIFIED_WARNING);
    }
    match files::raise() {
        Ok(limit) => tracing::info!(
            soft = limit.soft,
            hard = limit.hard,
            before = limit.before,
            "open files limit (soft raised to the hard limit)"
        ),
        Err(error) => tracing::warn!(%error, "could not raise the open files limit"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wa-sessiond: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listeners = match listen(&config).await {
            Ok(listeners) => listeners,
            Err(line) => {
                eprintln!("wa-sessiond: {line}");
                return ExitCode::from(config::EXIT_UNAVAILABLE);
            }
        };
        let result = app::run(listeners, config, app::Wiring::default(), app::shutdown_signal()).await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wa-sessiond: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Binds every listener the config asks for; the error is one line naming the flag.
async fn listen(config: &Config) -> Result<app::Listeners, String> {
    let grpc = bind(config.listen).await?;
    let admin = bind(config.edge.admin_listen).await?;
    let link = match config.link.link_listen {
        Some(addr) => Some(
            bind(addr)
                .await
                .map_err(|line| format!("{line} (--link-listen; empty switches the link page off)"))?,
        ),
        None => None,
    };
    Ok(app::Listeners { grpc, admin, link })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}
