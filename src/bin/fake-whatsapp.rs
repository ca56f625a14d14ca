//! `fake-whatsapp`: the protocol-level fake WhatsApp Web server (library
//! `fake_whatsapp`), for pairing wa-sessiond's real backend offline. Parses its
//! flags, sets up logs, binds and serves until SIGINT/SIGTERM.

#![forbid(unsafe_code)]

use std::{net::SocketAddr, process::ExitCode};

use clap::Parser;
use tokio::net::TcpListener;

/// A fake WhatsApp Web server: ws:// on --listen, gRPC controls on --control.
#[derive(Debug, Parser)]
#[command(name = "fake-whatsapp", version, about)]
struct Flags {
    /// The WhatsApp websocket (clients dial ws://ADDR/ws/chat).
    #[arg(long, env = "FAKE_WHATSAPP_LISTEN", default_value = "127.0.0.1:5280")]
    listen: SocketAddr,

    /// The control API (gRPC `wasessiond.fake.v1.FakeWhatsapp`, with reflection).
    #[arg(long, env = "FAKE_WHATSAPP_CONTROL", default_value = "127.0.0.1:5281")]
    control: SocketAddr,

    /// Refs (QR codes) offered to each new device.
    #[arg(long, env = "FAKE_WHATSAPP_REFS", default_value_t = fake_whatsapp::DEFAULT_REFS, value_parser = clap::value_parser!(u32).range(1..=32))]
    refs: u32,

    /// The WhatsApp Web version `/sw.js` names at first (`2.3000.N`).
    #[arg(long, env = "FAKE_WHATSAPP_WA_VERSION", default_value = "2.3000.1042742319", value_parser = wa_version)]
    wa_version: (u32, u32, u32),
}

fn wa_version(raw: &str) -> Result<(u32, u32, u32), String> {
    let parts: Vec<_> = raw.split('.').map(str::parse::<u32>).collect();
    match parts[..] {
        [Ok(major), Ok(minor), Ok(build)] => Ok((major, minor, build)),
        _ => Err("expected three numbers separated by dots, e.g. 2.3000.1042742319".into()),
    }
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    wa_sessiond::telemetry::init(wa_sessiond::config::LogFormat::Text);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fake-whatsapp: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let (listener, control) = match (bind(flags.listen).await, bind(flags.control).await) {
            (Ok(listener), Ok(control)) => (listener, control),
            (Err(line), _) | (_, Err(line)) => {
                eprintln!("fake-whatsapp: {line}");
                return ExitCode::from(wa_sessiond::config::EXIT_UNAVAILABLE);
            }
        };
        tracing::info!(listen = %flags.listen, control = %flags.control, refs = flags.refs, "fake whatsapp serving");
        let options = fake_whatsapp::Options {
            refs: flags.refs,
            version: flags.wa_version,
        };
        match fake_whatsapp::serve(listener, control, options, wa_sessiond::app::shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fake-whatsapp: {e}");
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
