//! `wa-sessiond`: reads the configuration, sets up logs, binds, and runs the daemon.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use wa_sessiond::{
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
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("wa-sessiond: cannot listen on {}: {e}", config.listen);
                return ExitCode::from(config::EXIT_UNAVAILABLE);
            }
        };
        match app::run(listener, config, app::Wiring::default(), app::shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wa-sessiond: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
