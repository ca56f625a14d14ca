//! scale: N idle sessions (QR batch run out, no connection open). Memory per session
//! (delta VmRSS over the empty daemon / N), the time to create them (bounded
//! concurrency), and the restore after a restart on the same data dir: process start
//! to SERVING to every session listed (the daemon restores its SQLite session list
//! before it reports SERVING). Long phases print progress and stop with a message
//! when they make no progress.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Map, Value};
use wa_sessiond::proto::{
    emulator_service_client::EmulatorServiceClient, session_service_client::SessionServiceClient,
};

use crate::{
    child::{BenchEnv, Proc},
    client,
    report::{self, r3, row, Target},
};

/// The session count the targets are set at.
const TARGET_SESSIONS: u32 = 100_000;
/// How often a long phase prints where it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Emulator timings that make a new session idle within about a second, and no
/// session limit in the way.
const IDLE_SOON: [&str; 10] = [
    // Room for the largest scale (the default limit is 10,000).
    "--max-sessions",
    "1000000",
    "--emulator-qr-delay",
    "10ms",
    "--emulator-qr-count",
    "1",
    "--emulator-first-qr-ttl",
    "1s",
    "--shutdown-grace",
    "120s",
];

/// Runs the scenario for `count` sessions and prints its figures.
pub async fn run(env: &BenchEnv, count: u32) -> Result<(), String> {
    let data = env.data_dir(&format!("scale-{count}"));
    let daemon = env.daemon(&format!("daemon-scale-{count}"), &data, &IDLE_SOON).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_empty, threads_empty) = (daemon.rss_kib()?, daemon.threads());
    println!("scale {count}: empty daemon {rss_empty} KiB, {threads_empty} threads; creating");

    let (created, failed, create_time) = create(env, &daemon, count).await?;
    let idle_time = wait_idle(env, &daemon, count).await?;
    settle(&daemon, threads_empty).await;
    let rss_idle = daemon.rss_kib()?;
    let per_session = per_session_kib(rss_idle, rss_empty, count);
    println!("scale {count}: {rss_idle} KiB with {count} idle sessions ({per_session:.2} KiB each); restarting");

    let stop_time = daemon.stop(Duration::from_secs(180)).await?;
    let restarted = env
        .daemon(&format!("daemon-scale-{count}-restored"), &data, &IDLE_SOON)
        .await?;
    let serving = restarted.started.elapsed();
    let listed = wait_listed(env, &restarted, count).await?;
    let restore_time = restarted.started.elapsed();
    settle(&restarted, threads_empty).await;
    let rss_restored = restarted.rss_kib()?;
    restarted.stop(Duration::from_secs(180)).await?;
    let _ = std::fs::remove_dir_all(&data);

    let restored_per_session = per_session_kib(rss_restored, rss_empty, count);
    // The targets are set at 100,000 sessions; other counts are shown, not judged.
    let judged = |met: bool| (count == TARGET_SESSIONS).then_some(met);
    let table = vec![
        row(&[&"", &"value"]),
        row(&[&"sessions created / failed", &format!("{created} / {failed}")]),
        row(&[&"create time s", &format!("{:.2}", create_time.as_secs_f64())]),
        row(&[
            &"creates/s",
            &format!("{:.0}", f64::from(count) / create_time.as_secs_f64()),
        ]),
        row(&[&"until all idle s", &format!("{:.2}", idle_time.as_secs_f64())]),
        row(&[&"RSS empty KiB", &rss_empty]),
        row(&[&"RSS idle KiB", &rss_idle]),
        row(&[&"RSS per idle session KiB", &format!("{per_session:.2}")]),
        row(&[&"shutdown s", &format!("{:.2}", stop_time.as_secs_f64())]),
        row(&[&"restart: start to SERVING s", &format!("{:.2}", serving.as_secs_f64())]),
        row(&[
            &"restart: start to all listed s",
            &format!("{:.2}", restore_time.as_secs_f64()),
        ]),
        row(&[&"sessions listed after restart", &listed]),
        row(&[
            &"RSS restored KiB (per session)",
            &format!("{rss_restored} ({restored_per_session:.2})"),
        ]),
    ];
    let targets = [
        Target {
            key: "rss_at_most_16kib_per_session",
            text: format!("RSS at most 16 KiB per idle session (aimed at 100,000; {count} now {per_session:.2} KiB)"),
            met: judged(per_session <= 16.0),
        },
        Target {
            key: "restore_under_5s",
            text: format!(
                "restore under 5 s (aimed at 100,000; {count} now {:.2} s)",
                restore_time.as_secs_f64()
            ),
            met: judged(restore_time < Duration::from_secs(5)),
        },
    ];
    let figures = json!({
        "sessions": count,
        "created": created,
        "failed": failed,
        "in_flight": env.args.in_flight,
        "create_s": r3(create_time.as_secs_f64()),
        "idle_after_s": r3(idle_time.as_secs_f64()),
        "rss_kib_empty": rss_empty,
        "rss_kib_idle": rss_idle,
        "rss_kib_per_session": r3(per_session),
        "shutdown_s": r3(stop_time.as_secs_f64()),
        "restore_serving_s": r3(serving.as_secs_f64()),
        "restore_all_listed_s": r3(restore_time.as_secs_f64()),
        "restore_semantics": "the sqlite session list, restored before SERVING",
        "rss_kib_restored": rss_restored,
        "rss_kib_per_session_restored": r3(restored_per_session),
    });
    let figures: Map<String, Value> = figures.as_object().cloned().unwrap_or_default();
    report::scenario(&format!("scale_{count}"), &table, &targets, figures);
    Ok(())
}

fn per_session_kib(rss: u64, empty: u64, count: u32) -> f64 {
    rss.saturating_sub(empty) as f64 / f64::from(count.max(1))
}

/// Creates `count` sessions, `in_flight` at a time; returns created, failed, time.
async fn create(env: &BenchEnv, daemon: &Proc, count: u32) -> Result<(u64, u64, Duration), String> {
    let channels = client::channels(daemon.addr, env.args.connections).await?;
    let next = Arc::new(AtomicU64::new(0));
    let (created, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for n in 0..env.args.in_flight as usize {
        let mut sessions = SessionServiceClient::new(channels[n % channels.len()].clone());
        let (next, created, failed) = (next.clone(), created.clone(), failed.clone());
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Relaxed);
                if n >= u64::from(count) {
                    return;
                }
                match sessions.create_session(client::create(&format!("idle-{n:07}"))).await {
                    Ok(_) => created.fetch_add(1, Relaxed),
                    Err(_) => failed.fetch_add(1, Relaxed),
                };
            }
        });
    }
    let progress = || created.load(Relaxed) + failed.load(Relaxed);
    let mut ticker = tokio::time::interval(PROGRESS_EVERY);
    ticker.tick().await;
    let (mut last, mut last_change) = (0, Instant::now());
    loop {
        tokio::select! {
            done = workers.join_next() => if done.is_none() { break },
            _ = ticker.tick() => {
                let now = progress();
                let rate = now as f64 / start.elapsed().as_secs_f64();
                println!("scale {count}: created {now}/{count} ({rate:.0}/s), failed {}", failed.load(Relaxed));
                if now != last {
                    (last, last_change) = (now, Instant::now());
                } else if last_change.elapsed() > env.args.stall_timeout {
                    return Err(format!("creating stalled at {now}/{count} for {:?}: stopped", env.args.stall_timeout));
                }
            }
        }
    }
    Ok((created.load(Relaxed), failed.load(Relaxed), start.elapsed()))
}

/// Waits until the emulator has no connection open (every batch ran out).
async fn wait_idle(env: &BenchEnv, daemon: &Proc, count: u32) -> Result<Duration, String> {
    let start = Instant::now();
    let mut phone = EmulatorServiceClient::new(client::channel(daemon.addr).await?);
    let (mut last, mut last_change, mut printed) = (u64::MAX, Instant::now(), Instant::now());
    loop {
        let (_, open) = client::connections(&mut phone, "").await?;
        if open == 0 {
            return Ok(start.elapsed());
        }
        if open != last {
            (last, last_change) = (open, Instant::now());
        } else if last_change.elapsed() > env.args.stall_timeout {
            return Err(format!(
                "{open} connections stayed open for {:?}: stopped",
                env.args.stall_timeout
            ));
        }
        if printed.elapsed() > PROGRESS_EVERY {
            println!("scale {count}: waiting for batches to run out, {open} connections open");
            printed = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Lets a burst's extra threads (tokio's blocking pool keeps idle threads 10 s) exit
/// before memory is read, bounded by 30 s.
pub async fn settle(daemon: &Proc, threads_empty: usize) {
    let start = Instant::now();
    while daemon.threads() > threads_empty + 4 && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Pages through ListSessions until all `count` sessions are listed.
async fn wait_listed(env: &BenchEnv, daemon: &Proc, count: u32) -> Result<u64, String> {
    let mut sessions = client::sessions(daemon.addr).await?;
    let (mut best, mut last_change, mut printed) = (0, Instant::now(), Instant::now());
    loop {
        let listed = client::list_all(&mut sessions).await?;
        if listed >= u64::from(count) {
            return Ok(listed);
        }
        if listed > best {
            (best, last_change) = (listed, Instant::now());
        } else if last_change.elapsed() > env.args.stall_timeout {
            return Err(format!(
                "only {listed}/{count} sessions listed after the restart: stopped"
            ));
        }
        if printed.elapsed() > PROGRESS_EVERY {
            println!("scale {count}: restoring, {listed}/{count} listed");
            printed = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
