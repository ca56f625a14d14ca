//! create_burst: N sessions created at once. CreateSession answers with the first QR
//! code, so its latency is the time to first QR; what lies above the emulator's
//! configured QR delay is the daemon's own overhead.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use wa_sessiond::proto::session_service_client::SessionServiceClient;

use crate::{
    child::BenchEnv,
    client,
    load::Latencies,
    report::{self, r3, row},
};

/// The emulator's delay from connect to first code in this scenario.
const QR_DELAY: Duration = Duration::from_millis(200);

/// Runs the scenario and prints its figures.
pub async fn run(env: &BenchEnv) -> Result<(), String> {
    let args = &env.args;
    let delay = humantime::format_duration(QR_DELAY).to_string();
    let extra = ["--emulator-qr-delay", delay.as_str()];
    let daemon = env
        .daemon("daemon-create_burst", &env.data_dir("create_burst"), &extra)
        .await?;
    let rss_before = daemon.rss_kib()?;
    let channels = client::channels(daemon.addr, args.connections).await?;
    println!(
        "create_burst: creating {} sessions at once over {} connections",
        args.sessions, args.connections
    );
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..args.sessions as usize {
        let mut sessions = SessionServiceClient::new(channels[n % channels.len()].clone());
        tasks.spawn(async move {
            let sent = Instant::now();
            let answer = sessions.create_session(client::create(&format!("burst-{n}"))).await;
            let with_qr = answer.is_ok_and(|a| a.get_ref().qr.as_ref().is_some_and(|qr| !qr.code.is_empty()));
            (sent.elapsed(), with_qr)
        });
    }
    let mut latencies = Latencies::default();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((latency, true)) => latencies.record(latency),
            _ => latencies.fail(),
        }
    }
    let wall = start.elapsed();
    let rss_after = daemon.rss_kib()?;
    let summary = latencies.spanning(wall).summary();
    drop(channels);
    daemon.stop(Duration::from_secs(30)).await?;

    let delay_ms = QR_DELAY.as_secs_f64() * 1000.0;
    let created_per_s = summary.requests as f64 / wall.as_secs_f64();
    let table = vec![
        row(&[&"", &"value"]),
        row(&[&"sessions", &args.sessions]),
        row(&[&"with a QR code", &summary.requests]),
        row(&[&"failed / without QR", &summary.errors]),
        row(&[&"emulator QR delay ms", &format!("{delay_ms:.0}")]),
        row(&[&"time to first QR p50 ms", &format!("{:.1}", summary.p50_ms)]),
        row(&[&"time to first QR p99 ms", &format!("{:.1}", summary.p99_ms)]),
        row(&[&"time to first QR max ms", &format!("{:.1}", summary.max_ms)]),
        row(&[
            &"overhead over QR delay p50 ms",
            &format!("{:.1}", summary.p50_ms - delay_ms),
        ]),
        row(&[
            &"overhead over QR delay p99 ms",
            &format!("{:.1}", summary.p99_ms - delay_ms),
        ]),
        row(&[&"wall time s", &format!("{:.2}", wall.as_secs_f64())]),
        row(&[&"created/s", &format!("{created_per_s:.0}")]),
        row(&[&"RSS before / after, KiB", &format!("{rss_before} / {rss_after}")]),
    ];
    let figures = json!({
        "sessions": args.sessions,
        "connections": args.connections,
        "with_qr": summary.requests,
        "failed": summary.errors,
        "qr_delay_ms": delay_ms,
        "first_qr_p50_ms": summary.p50_ms,
        "first_qr_p99_ms": summary.p99_ms,
        "first_qr_max_ms": summary.max_ms,
        "overhead_p50_ms": r3(summary.p50_ms - delay_ms),
        "overhead_p99_ms": r3(summary.p99_ms - delay_ms),
        "wall_s": r3(wall.as_secs_f64()),
        "created_per_s": r3(created_per_s),
        "rss_kib_before": rss_before,
        "rss_kib_after": rss_after,
    });
    let figures: Map<String, Value> = figures.as_object().cloned().unwrap_or_default();
    report::scenario("create_burst", &table, &[], figures);
    Ok(())
}
