//! get_hot: C clients over a few HTTP/2 connections call GetSession on CONNECTED
//! sessions for T seconds, against the daemon and against the baseline (a plain
//! tonic server answering with a same-sized Session), alternating in rounds so both
//! see the same machine. Reports RPS, p50/p99/p999 of both and the ratios.

use std::{sync::Arc, time::Duration};

use prost::Message;
use serde_json::{json, Map, Value};
use wa_sessiond::proto::session_service_client::SessionServiceClient;

use crate::{
    child::BenchEnv,
    client,
    load::{get_load, GetLoad, Latencies, Summary},
    report::{self, r3, row, Target},
};

/// Unmeasured lead-in of every run.
const WARMUP: Duration = Duration::from_secs(1);

/// Runs the scenario and prints its figures.
pub async fn run(env: &BenchEnv) -> Result<(), String> {
    let args = &env.args;
    let daemon = env.daemon("daemon-get_hot", &env.data_dir("get_hot"), &[]).await?;
    let setup = client::channel(daemon.addr).await?;
    let ids: Vec<String> = (0..args.hot_sessions).map(|n| format!("hot-{n}")).collect();
    println!("get_hot: linking {} sessions through the emulated phone", ids.len());
    client::connected_sessions(&setup, &ids).await?;

    let sample = SessionServiceClient::new(setup.clone())
        .get_session(client::get(&ids[0]))
        .await
        .map_err(|e| format!("GetSession failed: {}", e.message()))?
        .into_inner();
    let prototype = env.run_dir.join("prototype-session.bin");
    std::fs::write(&prototype, sample.encode_to_vec()).map_err(|e| format!("cannot write the prototype: {e}"))?;
    let baseline = env.baseline(&prototype).await?;
    let baseline_size = SessionServiceClient::new(client::channel(baseline.addr).await?)
        .get_session(client::get(&ids[0]))
        .await
        .map_err(|e| format!("baseline GetSession failed: {}", e.message()))?
        .into_inner()
        .encoded_len();

    let daemon_channels = client::channels(daemon.addr, args.connections).await?;
    let baseline_channels = client::channels(baseline.addr, args.connections).await?;
    let load = GetLoad {
        clients: args.clients,
        warmup: WARMUP,
        duration: args.duration,
        ids: Arc::new(ids),
    };
    let (mut ours, mut theirs) = (Latencies::default(), Latencies::default());
    let (mut our_cpu, mut their_cpu) = (Duration::ZERO, Duration::ZERO);
    for round in 1..=args.rounds {
        println!(
            "get_hot: round {round}/{}: {} clients, {} connections, {:?} each",
            args.rounds, args.clients, args.connections, args.duration
        );
        for baseline_now in [round % 2 == 1, round % 2 == 0] {
            let (server, channels, latencies, cpu) = if baseline_now {
                (&baseline, &baseline_channels, &mut theirs, &mut their_cpu)
            } else {
                (&daemon, &daemon_channels, &mut ours, &mut our_cpu)
            };
            let before = server.cpu_time();
            latencies.merge(get_load(channels, &load).await);
            *cpu += server.cpu_time().saturating_sub(before);
        }
    }
    let cpu_per_request = (per_request(our_cpu, &ours), per_request(their_cpu, &theirs));
    let rss = (daemon.rss_kib()?, baseline.rss_kib()?);
    let (ours, theirs) = (ours.summary(), theirs.summary());
    drop(daemon_channels);
    drop(baseline_channels);
    daemon.stop(Duration::from_secs(20)).await?;
    drop(baseline);

    let sizes = (sample.encoded_len(), baseline_size);
    print(env, [&ours, &theirs], sizes, rss, cpu_per_request);
    Ok(())
}

/// Server CPU microseconds per request sent (warm-up included, as is its CPU).
fn per_request(cpu: Duration, latencies: &Latencies) -> f64 {
    cpu.as_secs_f64() * 1e6 / latencies.sent().max(1) as f64
}

fn ratio(ours: f64, theirs: f64) -> f64 {
    if theirs > 0.0 {
        ours / theirs
    } else {
        f64::NAN
    }
}

fn print(
    env: &BenchEnv,
    [ours, theirs]: [&Summary; 2],
    sizes: (usize, usize),
    rss_kib: (u64, u64),
    cpu_us: (f64, f64),
) {
    let rps_ratio = ratio(ours.rps, theirs.rps);
    let p99_ratio = ratio(ours.p99_ms, theirs.p99_ms);
    let table = vec![
        row(&[&"", &"daemon", &"baseline", &"daemon / baseline"]),
        row(&[
            &"requests/s",
            &format!("{:.0}", ours.rps),
            &format!("{:.0}", theirs.rps),
            &format!("{rps_ratio:.2}"),
        ]),
        latency_row("p50 ms", ours.p50_ms, theirs.p50_ms),
        latency_row("p99 ms", ours.p99_ms, theirs.p99_ms),
        latency_row("p99.9 ms", ours.p999_ms, theirs.p999_ms),
        latency_row("max ms", ours.max_ms, theirs.max_ms),
        row(&[
            &"server CPU µs/request",
            &format!("{:.1}", cpu_us.0),
            &format!("{:.1}", cpu_us.1),
            &format!("{:.2}", ratio(cpu_us.0, cpu_us.1)),
        ]),
        row(&[&"requests", &ours.requests, &theirs.requests, &""]),
        row(&[&"errors", &ours.errors, &theirs.errors, &""]),
        row(&[&"Session bytes", &sizes.0, &sizes.1, &""]),
        row(&[&"RSS after, KiB", &rss_kib.0, &rss_kib.1, &""]),
    ];
    let targets = [
        Target {
            key: "rps_at_least_0.7x_baseline",
            text: format!("requests/s at least 0.7 x the baseline's (now {rps_ratio:.2} x)"),
            met: Some(rps_ratio >= 0.7),
        },
        Target {
            key: "p99_at_most_2x_baseline",
            text: format!("p99 at most 2 x the baseline's (now {p99_ratio:.2} x)"),
            met: Some(p99_ratio <= 2.0),
        },
    ];
    let args = &env.args;
    let figures = json!({
        "clients": args.clients,
        "connections": args.connections,
        "sessions": args.hot_sessions,
        "rounds": args.rounds,
        "duration_s": args.duration.as_secs_f64(),
        "daemon": ours,
        "baseline": theirs,
        "ratio": {
            "rps": r3(rps_ratio),
            "p50": r3(ratio(ours.p50_ms, theirs.p50_ms)),
            "p99": r3(p99_ratio),
            "p999": r3(ratio(ours.p999_ms, theirs.p999_ms)),
        },
        "server_cpu_us_per_request": { "daemon": r3(cpu_us.0), "baseline": r3(cpu_us.1), "ratio": r3(ratio(cpu_us.0, cpu_us.1)) },
        "session_bytes": { "daemon": sizes.0, "baseline": sizes.1 },
        "rss_kib": { "daemon": rss_kib.0, "baseline": rss_kib.1 },
    });
    let figures: Map<String, Value> = figures.as_object().cloned().unwrap_or_default();
    report::scenario("get_hot", &table, &targets, figures);
}

fn latency_row(name: &str, ours: f64, theirs: f64) -> Vec<String> {
    row(&[
        &name,
        &format!("{ours:.3}"),
        &format!("{theirs:.3}"),
        &format!("{:.2}", ratio(ours, theirs)),
    ])
}
