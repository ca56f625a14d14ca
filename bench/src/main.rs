//! `wa-sessiond-bench`: how fast and how lean the daemon is, against a plain tonic
//! baseline measured in the same run on the same machine. It starts the real daemon
//! (`wa-sessiond --backend emulator`, next to this executable) and, for `get_hot`, a
//! baseline server (this executable re-run with `--baseline-server`) as child
//! processes, drives them over gRPC, and prints a table plus one JSON line per
//! scenario. `real` and `media_real` run the daemon's real backend against the fake
//! WhatsApp (`fake-whatsapp`, next to this executable). Figures, not tests: nothing
//! here asserts.
//!
//! `cargo build --release --bins && target/release/wa-sessiond-bench [--scenario all]`
//! `cargo build --release --features fake-whatsapp --bins && target/release/wa-sessiond-bench --scenario real`
//! `cargo build --release --features fake-whatsapp --bins && target/release/wa-sessiond-bench --scenario media_real`

#![forbid(unsafe_code)]

mod baseline;
mod campaign;
mod child;
mod client;
mod create_burst;
mod events;
mod fake;
mod get_hot;
mod load;
mod media;
mod media_measure;
mod media_real;
mod real;
mod regen_storm;
mod report;
mod scale;
mod send;
mod send_baseline;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, ValueEnum};

/// Which scenarios to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Scenario {
    /// Every scenario, in order (`real` only when `fake-whatsapp` was built).
    All,
    /// GetSession on CONNECTED sessions, against the baseline.
    GetHot,
    /// N sessions created at once: time to the first QR code.
    CreateBurst,
    /// 1,000 GetSession at once on one exhausted session.
    RegenStorm,
    /// Thousands of idle sessions: memory, create and restore time.
    Scale,
    /// Inbound messages end to end: events/s and latency to a consumer, against a bare
    /// SQLite group-commit loop.
    Events,
    /// Outbound messages end to end: SendMessage accepted/s and server-acked/s, one
    /// session and many, and latency at a steady rate, against a bare SQLite
    /// group-commit loop writing the same rows.
    Send,
    /// Files through the daemon on the emulator: UploadMedia and DownloadMedia
    /// MiB/s against a plain loopback TCP copy, and the daemon's peak RSS growth.
    Media,
    /// Campaigns on the emulator: items sent/s and CPU per item at interval 0
    /// against direct SendMessage, the pacing's gap error, and the memory of a
    /// million queued items.
    Campaign,
    /// The real backend against the fake WhatsApp: memory and idle CPU per
    /// CONNECTED session, and the restore of all of them.
    Real,
    /// Files through the real backend and the fake WhatsApp's CDN (encrypted,
    /// HTTPS): the `media` figures.
    MediaReal,
}

/// Benchmarks wa-sessiond against a plain tonic server.
#[derive(Debug, Clone, Parser)]
#[command(name = "wa-sessiond-bench", version, about)]
pub struct Args {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value = "all")]
    pub scenario: Scenario,

    /// get_hot: how long each measured run lasts (per round, per server).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// get_hot: concurrent clients.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,

    /// HTTP/2 connections the clients share.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub connections: u32,

    /// get_hot: CONNECTED sessions the clients read, round robin.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub hot_sessions: u32,

    /// get_hot and regen_storm: rounds; get_hot alternates baseline and daemon each round.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,

    /// create_burst: sessions created at once.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub sessions: u32,

    /// regen_storm: concurrent GetSession calls on the exhausted session.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub storm: u32,

    /// scale: session counts to measure, comma separated.
    #[arg(long, default_value = "10000,100000", value_delimiter = ',')]
    pub scale: Vec<u32>,

    /// real: sessions to link, in steps (memory is read at each), comma separated.
    #[arg(long, default_value = "100,1000", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub real_sessions: Vec<u32>,

    /// real: how long the connected sessions idle while their CPU is measured.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub idle_window: Duration,

    /// real: the daemon's --max-concurrent-connects.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_concurrent_connects: u32,

    /// scale and real: creates (real: links) in flight.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub in_flight: u32,

    /// scale: a phase (create, settle, restore) that makes no progress this long is
    /// stopped with a message.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub stall_timeout: Duration,

    /// send: SendMessage calls in flight in the one-session and many-sessions runs.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub send_in_flight: u32,

    /// send: stop each of those runs after this many calls (0: after --duration).
    #[arg(long, default_value_t = 0)]
    pub send_messages: u32,

    /// send: linked sessions the many-sessions and steady runs send from.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub send_sessions: u32,

    /// send: the steady run's calls per second.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub send_rate: u32,

    /// media: file sizes in MiB, comma separated.
    #[arg(long, default_value = "1,10,100", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub media_sizes: Vec<u32>,

    /// campaign: which parts to run, comma separated.
    #[arg(long, value_enum, default_value = "throughput,pacing,memory", value_delimiter = ',')]
    pub campaign_parts: Vec<campaign::Part>,

    /// campaign throughput: linked sessions, one campaign each (and the direct runs' sessions).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub campaign_sessions: u32,

    /// campaign throughput: items per session.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub campaign_items: u32,

    /// campaign pacing: linked sessions, one campaign each.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub campaign_pacing_sessions: u32,

    /// campaign pacing: items per campaign (the run lasts about items x the mean gap).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub campaign_pacing_items: u32,

    /// campaign pacing: the PacingPolicy's min_interval.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub campaign_pacing_min: Duration,

    /// campaign pacing: the PacingPolicy's max_interval.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub campaign_pacing_max: Duration,

    /// campaign memory: items queued (paused, nothing sends), 1,000 an AddCampaignItems call.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub campaign_queued_items: u32,

    /// campaign memory: the campaigns those items are spread over.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub campaign_queued_campaigns: u32,

    /// The daemon binary (default: `wa-sessiond` next to this executable).
    #[arg(long)]
    pub daemon_bin: Option<PathBuf>,

    /// `RUST_LOG` of the daemon (its log goes to a file in the run's temp dir).
    #[arg(long, default_value = "info")]
    pub daemon_log: String,

    /// Internal: serve the baseline on this address instead of benchmarking.
    #[arg(long, hide = true, requires = "prototype")]
    pub baseline_server: Option<SocketAddr>,

    /// Internal: the encoded Session the baseline returns.
    #[arg(long, hide = true)]
    pub prototype: Option<PathBuf>,
}

impl Args {
    fn runs(&self, scenario: Scenario) -> bool {
        self.scenario == Scenario::All || self.scenario == scenario
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wa-sessiond-bench: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        if let (Some(listen), Some(prototype)) = (args.baseline_server, &args.prototype) {
            return baseline::serve(listen, prototype).await;
        }
        let env = child::BenchEnv::new(&args)?;
        // On Ctrl-C the scenario is dropped, which kills the processes it started.
        let outcome = tokio::select! {
            outcome = run(&env) => outcome,
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        };
        env.cleanup();
        outcome
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wa-sessiond-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen scenarios; a scenario that fails is reported and the next runs.
async fn run(env: &child::BenchEnv) -> Result<(), String> {
    let args = &env.args;
    report::header(env);
    let mut failed = Vec::new();
    if args.runs(Scenario::GetHot) {
        report::outcome("get_hot", get_hot::run(env).await, &mut failed);
    }
    if args.runs(Scenario::CreateBurst) {
        report::outcome("create_burst", create_burst::run(env).await, &mut failed);
    }
    if args.runs(Scenario::RegenStorm) {
        report::outcome("regen_storm", regen_storm::run(env).await, &mut failed);
    }
    if args.runs(Scenario::Scale) {
        for &count in &args.scale {
            report::outcome("scale", scale::run(env, count).await, &mut failed);
        }
    }
    if args.runs(Scenario::Events) {
        report::outcome("events", events::run(env).await, &mut failed);
    }
    if args.runs(Scenario::Send) {
        report::outcome("send", send::run(env).await, &mut failed);
    }
    if args.runs(Scenario::Media) {
        report::outcome("media", media::run(env).await, &mut failed);
    }
    if args.runs(Scenario::Campaign) {
        report::outcome("campaign", campaign::run(env).await, &mut failed);
    }
    let fake_built = env.self_exe.with_file_name("fake-whatsapp").is_file();
    if args.scenario == Scenario::Real || (args.scenario == Scenario::All && fake_built) {
        report::outcome("real", real::run(env).await, &mut failed);
    } else if args.scenario == Scenario::All {
        println!("real: skipped (no fake-whatsapp binary: build with --features fake-whatsapp)\n");
    }
    if args.scenario == Scenario::MediaReal || (args.scenario == Scenario::All && fake_built) {
        report::outcome("media_real", media_real::run(env).await, &mut failed);
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("scenarios that could not finish: {}", failed.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_issue_s() {
        let args = Args::try_parse_from(["wa-sessiond-bench"]).unwrap();
        assert_eq!(args.scenario, Scenario::All);
        assert_eq!((args.clients, args.connections, args.sessions), (64, 8, 1000));
        assert_eq!(args.scale, [10_000, 100_000]);
        let one = Args::try_parse_from(["wa-sessiond-bench", "--scenario", "scale", "--scale", "500"]).unwrap();
        assert!(one.runs(Scenario::Scale) && !one.runs(Scenario::GetHot));
        let hot = Args::try_parse_from(["wa-sessiond-bench", "--scenario", "get_hot"]).unwrap();
        assert_eq!(hot.scenario, Scenario::GetHot);
        assert_eq!(one.scale, [500]);
        assert_eq!(args.real_sessions, [100, 1000]);
        let real = Args::try_parse_from(["wa-sessiond-bench", "--scenario", "real"]).unwrap();
        assert!(real.runs(Scenario::Real) && !real.runs(Scenario::Scale));
        let media_real = Args::try_parse_from(["wa-sessiond-bench", "--scenario", "media_real"]).unwrap();
        assert_eq!(media_real.scenario, Scenario::MediaReal);
        let send = Args::try_parse_from(["wa-sessiond-bench", "--scenario", "send"]).unwrap();
        assert!(send.runs(Scenario::Send) && !send.runs(Scenario::Events));
        assert_eq!(
            (send.send_in_flight, send.send_sessions, send.send_rate),
            (64, 100, 500)
        );
        assert_eq!(args.media_sizes, [1, 10, 100]);
        let media = Args::try_parse_from(["wa-sessiond-bench", "--scenario", "media", "--media-sizes", "2,3"]).unwrap();
        assert!(media.runs(Scenario::Media) && !media.runs(Scenario::Send));
        assert_eq!(media.media_sizes, [2, 3]);
        let campaign = Args::try_parse_from(["wa-sessiond-bench", "--scenario", "campaign"]).unwrap();
        assert!(campaign.runs(Scenario::Campaign) && !campaign.runs(Scenario::Media));
        assert_eq!((campaign.campaign_sessions, campaign.campaign_items), (100, 1000));
        assert_eq!(
            (campaign.campaign_pacing_sessions, campaign.campaign_pacing_items),
            (50, 40)
        );
        assert_eq!(
            (campaign.campaign_pacing_min, campaign.campaign_pacing_max),
            (Duration::from_secs(1), Duration::from_secs(2))
        );
        assert_eq!(
            (campaign.campaign_queued_items, campaign.campaign_queued_campaigns),
            (1_000_000, 1000)
        );
        assert_eq!(campaign.campaign_parts.len(), 3);
        let one = Args::try_parse_from(["wa-sessiond-bench", "--campaign-parts", "pacing"]).unwrap();
        assert_eq!(one.campaign_parts, [campaign::Part::Pacing]);
    }
}
