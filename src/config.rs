//! The daemon's configuration: flags with `WA_SESSIOND_*` environment twins, read
//! once into a typed struct. Bad configuration exits with one clear line and
//! status 64 (EX_USAGE).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};

mod edge;
mod events;
mod link;
mod media;
mod version_url;
mod whatsapp_url;
pub use edge::{EdgeConfig, Secret};
pub use events::EventsConfig;
pub use link::{LinkConfig, MaybeAddr};
pub use media::MediaConfig;
pub use version_url::{VersionUrl, DEFAULT_VERSION_URL};
pub use whatsapp_url::{WhatsappUrl, CERTIFICATE_CHECK_OFF, DEFAULT_WHATSAPP_URL, UNVERIFIED_WARNING};

/// Exit status for bad configuration (EX_USAGE).
pub const EXIT_USAGE: i32 = 64;

/// Exit status when the listen address cannot be bound (EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: u8 = 69;

/// Which WhatsApp the sessions talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// The real WhatsApp, through whatsapp-rust (the default).
    Whatsapp,
    /// An in-process emulated WhatsApp (tests, demos, CI).
    Emulator,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// wa-sessiond: WhatsApp Web (multi-device) sessions over gRPC.
#[derive(Debug, Clone, Parser)]
#[command(name = "wa-sessiond", version, about)]
pub struct Config {
    /// gRPC listen address.
    #[arg(long, env = "WA_SESSIOND_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Where sessions and credentials are stored.
    #[arg(long, env = "WA_SESSIOND_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// The WhatsApp implementation.
    #[arg(long, env = "WA_SESSIOND_BACKEND", value_enum, default_value = "whatsapp")]
    pub backend: BackendKind,

    /// Pins the WhatsApp Web version the real backend announces (`2.3000.1042742319`).
    /// Without it the daemon resolves WhatsApp Web's current version from sw.js in
    /// the background (at start, then every --wa-version-refresh, and after a 405),
    /// keeping the last one in `<data-dir>/whatsapp-version.json`; a connection never
    /// waits for that.
    #[arg(long, env = "WA_SESSIOND_WA_VERSION", value_parser = wa_version)]
    pub wa_version: Option<(u32, u32, u32)>,

    /// How often the current WhatsApp Web version is resolved when not pinned.
    #[arg(long, env = "WA_SESSIOND_WA_VERSION_REFRESH", default_value = "24h", value_parser = positive_duration)]
    pub wa_version_refresh: Duration,

    /// Where the current WhatsApp Web version is read (WhatsApp's sw.js); any other
    /// URL must be on a loopback host (a fake WhatsApp in tests).
    #[arg(long, env = "WA_SESSIOND_WA_VERSION_URL", default_value = DEFAULT_VERSION_URL, value_parser = VersionUrl::parse)]
    pub wa_version_url: VersionUrl,

    /// WhatsApp Web's websocket, for the real backend (`ws://` or `wss://`). A build
    /// with the `fake-whatsapp` feature accepts only loopback hosts.
    #[arg(long, env = "WA_SESSIOND_WHATSAPP_URL", default_value = DEFAULT_WHATSAPP_URL, value_parser = WhatsappUrl::parse)]
    pub whatsapp_url: WhatsappUrl,

    /// How long CreateSession / RefreshQr wait for the first QR code.
    #[arg(long, env = "WA_SESSIOND_QR_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    pub qr_timeout: Duration,

    /// How long GetSession waits for a regenerated QR code.
    #[arg(long, env = "WA_SESSIOND_REFRESH_TIMEOUT", default_value = "15s", value_parser = positive_duration)]
    pub refresh_timeout: Duration,

    /// The longest wait between reconnect attempts.
    #[arg(long, env = "WA_SESSIOND_RECONNECT_MAX_DELAY", default_value = "60s", value_parser = positive_duration)]
    pub reconnect_max_delay: Duration,

    /// How long a rate limit (WhatsApp's stream error 429) pauses the session's
    /// campaigns (PAUSE_REASON_RATE_LIMITED) and shows in GetAccountHealth;
    /// WhatsApp states no end.
    #[arg(long, env = "WA_SESSIOND_RATE_LIMIT_PAUSE", default_value = "60s", value_parser = positive_duration)]
    pub rate_limit_pause: Duration,

    /// Connection attempts (handshakes) in flight at once across all sessions; more
    /// wait their turn in order, showing CONNECTING / RECONNECTING. Keeps a restore
    /// or a mass drop from opening thousands of handshakes at once.
    #[arg(long, env = "WA_SESSIOND_MAX_CONCURRENT_CONNECTS", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_concurrent_connects: u32,

    /// Pairing connections (sessions without stored credentials: CreateSession, a
    /// fresh QR batch) in flight at once, on their own gate beside
    /// --max-concurrent-connects: a burst of creates never waits behind a restore,
    /// nor a restore behind a burst of creates.
    #[arg(long, env = "WA_SESSIOND_MAX_CONCURRENT_PAIRINGS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_concurrent_pairings: u32,

    /// Emulator: validity of the first QR code of a batch.
    #[arg(long, env = "WA_SESSIOND_EMULATOR_FIRST_QR_TTL", default_value = "60s", value_parser = positive_duration)]
    pub emulator_first_qr_ttl: Duration,

    /// Emulator: validity of each later QR code.
    #[arg(long, env = "WA_SESSIOND_EMULATOR_NEXT_QR_TTL", default_value = "20s", value_parser = positive_duration)]
    pub emulator_next_qr_ttl: Duration,

    /// Emulator: QR codes per batch.
    #[arg(long, env = "WA_SESSIOND_EMULATOR_QR_COUNT", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub emulator_qr_count: u32,

    /// Emulator: delay of each protocol step (connect to first code, scan to restart).
    #[arg(long, env = "WA_SESSIOND_EMULATOR_QR_DELAY", default_value = "200ms", value_parser = humantime::parse_duration)]
    pub emulator_qr_delay: Duration,

    /// Crashes of one session allowed within --session-restart-window before it is
    /// left FAILED (ConnectSession or RefreshQr start it afresh).
    #[arg(long, env = "WA_SESSIOND_SESSION_RESTART_BUDGET", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub session_restart_budget: u32,

    /// The window of the restart budget.
    #[arg(long, env = "WA_SESSIOND_SESSION_RESTART_WINDOW", default_value = "60s", value_parser = positive_duration)]
    pub session_restart_window: Duration,

    /// Log format.
    #[arg(long, env = "WA_SESSIOND_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// How long a shutdown may take before the daemon exits anyway.
    #[arg(long, env = "WA_SESSIOND_SHUTDOWN_GRACE", default_value = "20s", value_parser = positive_duration)]
    pub shutdown_grace: Duration,

    /// Admin port, authentication, TLS and limits.
    #[command(flatten)]
    pub edge: EdgeConfig,

    /// The link page.
    #[command(flatten)]
    pub link: LinkConfig,

    /// The event log.
    #[command(flatten)]
    pub events: EventsConfig,

    /// Media uploads.
    #[command(flatten)]
    pub media: MediaConfig,
}

fn positive_duration(raw: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(raw).map_err(|e| format!("{e} (use e.g. 30s, 500ms, 2m)"))?;
    if duration.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(duration)
}

fn wa_version(raw: &str) -> Result<(u32, u32, u32), String> {
    let parts: Vec<_> = raw.split('.').map(str::parse::<u32>).collect();
    match parts[..] {
        [Ok(major), Ok(minor), Ok(build)] => Ok((major, minor, build)),
        _ => Err("expected three numbers separated by dots, e.g. 2.3000.1042742319".into()),
    }
}

impl Config {
    /// Parses the command line and environment, or exits: 0 for --help/--version,
    /// 64 with one line for anything wrong.
    pub fn from_env_or_exit() -> Self {
        let mut config = Self::try_parse_from(std::env::args_os()).unwrap_or_else(|error| {
            use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
            if matches!(error.kind(), DisplayHelp | DisplayVersion) {
                error.exit();
            }
            let rendered = error.to_string();
            let line = rendered.lines().next().unwrap_or("invalid configuration");
            eprintln!("wa-sessiond: {}", line.trim_start_matches("error: "));
            std::process::exit(EXIT_USAGE);
        });
        if let Err(line) = config.edge.resolve(config.listen) {
            eprintln!("wa-sessiond: {line}");
            std::process::exit(EXIT_USAGE);
        }
        if let Err(line) = config.check_whatsapp_url() {
            eprintln!("wa-sessiond: {line}");
            std::process::exit(EXIT_USAGE);
        }
        config
    }

    /// The loopback rule of `fake-whatsapp` builds, for the backend that dials
    /// `--whatsapp-url` (the emulator never does).
    pub fn check_whatsapp_url(&self) -> Result<(), String> {
        match self.backend {
            BackendKind::Whatsapp => self.whatsapp_url.allowed(),
            BackendKind::Emulator => Ok(()),
        }
    }

    /// The defaults (for tests and embedding).
    pub fn defaults() -> Self {
        Self::try_parse_from(["wa-sessiond"]).expect("the defaults parse")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_whatsapp_and_the_readme() {
        let config = Config::defaults();
        assert_eq!(config.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(config.qr_timeout, Duration::from_secs(30));
        assert_eq!(config.refresh_timeout, Duration::from_secs(15));
        assert_eq!(config.emulator_first_qr_ttl, Duration::from_secs(60));
        assert_eq!(config.emulator_next_qr_ttl, Duration::from_secs(20));
        assert_eq!(config.emulator_qr_count, 6);
        assert_eq!(config.backend, BackendKind::Whatsapp);
        assert_eq!(config.wa_version, None, "resolved, not pinned, by default");
        assert_eq!(config.wa_version_refresh, Duration::from_secs(24 * 3600));
        assert_eq!(config.wa_version_url.as_str(), "https://web.whatsapp.com/sw.js");
        assert_eq!(config.session_restart_budget, 5);
        assert_eq!(config.session_restart_window, Duration::from_secs(60));
        assert_eq!(config.shutdown_grace, Duration::from_secs(20));
        assert_eq!(config.whatsapp_url.as_str(), "wss://web.whatsapp.com/ws/chat");
        assert_eq!(config.events.event_retention, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(config.events.event_retention_bytes, 1 << 30);
        assert_eq!(config.max_concurrent_connects, 32);
        assert_eq!(config.max_concurrent_pairings, 256);
        assert_eq!(config.rate_limit_pause, Duration::from_secs(60));
    }

    #[test]
    fn the_pairing_gate_takes_a_width_like_the_connect_gate_and_refuses_zero() {
        let config = Config::try_parse_from(["wa-sessiond", "--max-concurrent-pairings", "1000"]).unwrap();
        assert_eq!(config.max_concurrent_pairings, 1000);
        for flag in ["--max-concurrent-pairings", "--max-concurrent-connects"] {
            let refused = Config::try_parse_from(["wa-sessiond", flag, "0"]).unwrap_err();
            let line = refused.to_string();
            assert!(line.contains(flag) && line.contains("1..=10000"), "{line}");
        }
    }

    #[test]
    fn the_whatsapp_url_is_a_websocket_url_and_the_loopback_rule_spares_the_emulator() {
        let local = Config::try_parse_from(["wa-sessiond", "--whatsapp-url", "ws://127.0.0.1:4000/ws/chat"]).unwrap();
        assert_eq!(local.whatsapp_url.port(), 4000);
        assert!(local.check_whatsapp_url().is_ok());
        assert!(Config::try_parse_from(["wa-sessiond", "--whatsapp-url", "https://example.com"]).is_err());
        let remote = Config::try_parse_from(["wa-sessiond", "--whatsapp-url", "ws://10.0.0.1/ws/chat"]).unwrap();
        assert_eq!(remote.check_whatsapp_url().is_err(), CERTIFICATE_CHECK_OFF);
        let emulator = Config::try_parse_from(["wa-sessiond", "--backend", "emulator"]).unwrap();
        assert!(emulator.check_whatsapp_url().is_ok());
    }

    #[test]
    fn the_whatsapp_version_is_three_dotted_numbers() {
        let config = Config::try_parse_from(["wa-sessiond", "--wa-version", "2.3000.1"]).unwrap();
        assert_eq!(config.wa_version, Some((2, 3000, 1)));
        for bad in ["2.3000", "2.3000.x", "2.3000.1.4", "", "v2.3000.1"] {
            assert!(
                Config::try_parse_from(["wa-sessiond", "--wa-version", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_version_source_is_whatsapp_or_a_loopback_url_and_the_refresh_a_duration() {
        let config = Config::try_parse_from([
            "wa-sessiond",
            "--wa-version-url",
            "http://127.0.0.1:4000/sw.js",
            "--wa-version-refresh",
            "1h",
        ])
        .unwrap();
        assert_eq!(config.wa_version_url.as_str(), "http://127.0.0.1:4000/sw.js");
        assert_eq!(config.wa_version_refresh, Duration::from_secs(3600));
        let remote = Config::try_parse_from(["wa-sessiond", "--wa-version-url", "https://example.com/sw.js"]);
        let line = remote.unwrap_err().to_string();
        assert!(line.contains("not a loopback address"), "{line}");
        assert!(Config::try_parse_from(["wa-sessiond", "--wa-version-refresh", "0s"]).is_err());
    }

    #[test]
    fn durations_take_units_and_refuse_garbage() {
        let config = Config::try_parse_from(["wa-sessiond", "--qr-timeout", "500ms"]).unwrap();
        assert_eq!(config.qr_timeout, Duration::from_millis(500));
        assert!(Config::try_parse_from(["wa-sessiond", "--qr-timeout", "soon"]).is_err());
        assert!(Config::try_parse_from(["wa-sessiond", "--qr-timeout", "0s"]).is_err());
        assert!(Config::try_parse_from(["wa-sessiond", "--backend", "telegram"]).is_err());
    }
}
