//! real: the daemon's real backend (whatsapp-rust) against the fake WhatsApp, both
//! as child processes. Links sessions (create, the fake's phone scans the code,
//! CONNECTED) up to each count of `--real-sessions` (100, then 1,000): VmRSS per
//! CONNECTED session over the empty daemon; the CPU the connected sessions use
//! idle (keepalives) over `--idle-window`; then SIGTERM and a restart on the same
//! data dir: the time until every session is CONNECTED again, and the most
//! handshakes in flight at once (the daemon's `connects_in_flight_peak`), which
//! must stay within `--max-concurrent-connects`. At each count, and after the
//! restore, the daemon's open files per CONNECTED session (over the empty daemon's).

use std::{
    ops::Range,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Map, Value};
use wa_sessiond::proto::{session_service_client::SessionServiceClient, SessionStatus, WatchSessionRequest};

use crate::{
    child::{free_addr, BenchEnv, Proc},
    client,
    fake::Fake,
    report::{self, r3, row, Target},
    scale::settle,
};

/// How often a long phase prints where it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// The daemon's peak metric of handshakes in flight.
const PEAK_METRIC: &str = "wa_sessiond_connects_in_flight_peak";
/// The bound on one session's link: create, scan, CONNECTED.
const LINK_BOUND: Duration = Duration::from_secs(120);
/// The open files a CONNECTED session may hold: its socket and its credential
/// store's database (the daemon's own budget per session; issue 23's target).
const FILES_PER_SESSION: f64 = 2.0;

/// Memory after linking up to a count.
struct Step {
    /// Sessions linked.
    count: u32,
    /// How long linking the last ones took.
    link_time: Duration,
    /// VmRSS, KiB.
    rss: u64,
    /// Open files.
    files: u64,
}

/// Runs the scenario and prints its figures.
pub async fn run(env: &BenchEnv) -> Result<(), String> {
    let mut counts = env.args.real_sessions.clone();
    counts.sort_unstable();
    let total = *counts.last().ok_or("--real-sessions names no count")?;
    let (ws, control) = (free_addr()?, free_addr()?);
    let fake_proc = env.fake_whatsapp(ws, control).await?;
    let fake = Fake::connect(control).await?;
    let width = env.args.max_concurrent_connects.to_string();
    let backend_args = backend(ws);
    let backend: Vec<&str> = backend_args.iter().map(String::as_str).collect();
    let extra = [
        "--max-sessions",
        "1000000",
        "--max-concurrent-connects",
        width.as_str(),
        "--qr-timeout",
        "60s",
        "--shutdown-grace",
        "120s",
    ];
    let data = env.data_dir("real");
    let daemon = env.daemon_on("daemon-real", &data, &backend, &extra).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_empty, threads_empty) = (daemon.rss_kib()?, daemon.threads());
    let files_empty = daemon.open_files();
    println!("real: empty daemon {rss_empty} KiB, {threads_empty} threads, {files_empty} open files; linking");

    let mut steps = Vec::new();
    let mut linked = 0;
    for &count in &counts {
        let link_time = link(env, &daemon, &fake, linked..count).await?;
        linked = count;
        settle(&daemon, threads_empty).await;
        let (rss, files) = (daemon.rss_kib()?, daemon.open_files());
        println!("real: {count} CONNECTED, {rss} KiB, {files} open files");
        steps.push(Step {
            count,
            link_time,
            rss,
            files,
        });
    }
    let peak_linking = client::metric(daemon.admin.ok_or("no admin port")?, PEAK_METRIC).await?;

    println!("real: idle for {:?}", env.args.idle_window);
    let (cpu_before, idle_start) = (daemon.cpu_time(), Instant::now());
    tokio::time::sleep(env.args.idle_window).await;
    let idle_cpu = daemon.cpu_time().saturating_sub(cpu_before).as_secs_f64();
    let idle_wall = idle_start.elapsed().as_secs_f64();
    // CPU seconds per second of wall time, per 1,000 connected sessions.
    let idle_cores_per_1000 = idle_cpu / idle_wall * 1000.0 / f64::from(total);
    let still_connected = count_connected(&daemon).await?;

    println!("real: SIGTERM and restart");
    let stop_time = daemon.stop(Duration::from_secs(180)).await?;
    let mut fake_counts = fake.clone();
    let closed = wait_closed(&mut fake_counts).await?;
    let (started_before, _) = fake_counts.connections().await?;
    let restarted = env.daemon_on("daemon-real-restored", &data, &backend, &extra).await?;
    let serving = restarted.started.elapsed();
    let restored = wait_connected(env, &restarted, total).await?;
    let restore_time = restarted.started.elapsed();
    let peak = client::metric(restarted.admin.ok_or("no admin port")?, PEAK_METRIC).await?;
    let (started_after, open_after) = fake_counts.connections().await?;
    settle(&restarted, threads_empty).await;
    let (rss_restored, files_restored) = (restarted.rss_kib()?, restarted.open_files());
    restarted.stop(Duration::from_secs(180)).await?;
    fake_proc.stop(Duration::from_secs(30)).await?;
    let _ = std::fs::remove_dir_all(&data);

    let per = |rss: u64, count: u32| rss.saturating_sub(rss_empty) as f64 / f64::from(count.max(1));
    let files_per = |files: u64, count: u32| files.saturating_sub(files_empty) as f64 / f64::from(count.max(1));
    // The cost of the sessions added at each step, apart from what the first ones
    // paid once (allocator arenas, the runtime's threads; for files, the event
    // log's readers opened on first use): the growth between steps.
    let marginal = added_per_step(&steps, rss_empty, |step| step.rss);
    let files_added = added_per_step(&steps, files_empty, |step| step.files);
    // The first step's figure is the measure only when it is the only one.
    let later = files_added.get(1..).filter(|later| !later.is_empty());
    let most_files = later.unwrap_or(&files_added).iter().copied().fold(0.0, f64::max);
    let mut table = vec![row(&[&"", &"value"])];
    for (step, added) in steps.iter().zip(&marginal) {
        table.push(row(&[
            &format!(
                "link {} sessions: time s / RSS KiB / KiB per session (per added one)",
                step.count
            ),
            &format!(
                "{:.1} / {} / {:.1} ({added:.1})",
                step.link_time.as_secs_f64(),
                step.rss,
                per(step.rss, step.count)
            ),
        ]));
    }
    for (step, added) in steps.iter().zip(&files_added) {
        table.push(row(&[
            &format!("{} CONNECTED: open files (per session; per added one)", step.count),
            &format!("{} ({:.3}; {added:.3})", step.files, files_per(step.files, step.count)),
        ]));
    }
    let idle_row = format!("idle CPU per 1,000 connected, over {idle_wall:.0} s (% of a core)");
    let handshakes = format!("restore: handshakes in flight at most (limit {width})");
    table.extend([
        row(&[&"RSS empty KiB", &rss_empty]),
        row(&[&"peak handshakes in flight while linking", &peak_linking]),
        row(&[&idle_row, &format!("{:.2}", idle_cores_per_1000 * 100.0)]),
        row(&[&"CONNECTED after the idle window", &still_connected]),
        row(&[
            &"shutdown s / fake connections closed after s",
            &format!("{:.2} / {:.2}", stop_time.as_secs_f64(), closed.as_secs_f64()),
        ]),
        row(&[&"restore: start to SERVING s", &format!("{:.2}", serving.as_secs_f64())]),
        row(&[
            &"restore: start to all CONNECTED s",
            &format!("{:.2}", restore_time.as_secs_f64()),
        ]),
        row(&[&"restore: CONNECTED", &restored]),
        row(&[&handshakes, &peak]),
        row(&[
            &"restore: connections the fake saw / open",
            &format!("{} / {open_after}", started_after - started_before),
        ]),
        row(&[
            &"RSS restored KiB (per session)",
            &format!("{rss_restored} ({:.1})", per(rss_restored, total)),
        ]),
        row(&[
            &"open files empty / restored (per session)",
            &format!(
                "{files_empty} / {files_restored} ({:.2})",
                files_per(files_restored, total)
            ),
        ]),
    ]);
    let within = peak <= f64::from(env.args.max_concurrent_connects)
        && peak_linking <= f64::from(env.args.max_concurrent_connects);
    let targets = [
        Target {
            key: "handshakes_within_max_concurrent_connects",
            text: format!("handshakes in flight never above --max-concurrent-connects {width} (linking {peak_linking}, restore {peak})"),
            met: Some(within),
        },
        Target {
            key: "open_files_per_connected_session",
            text: format!("open files per added CONNECTED session at most {FILES_PER_SESSION} (most seen between steps {most_files:.3})"),
            met: Some(most_files <= FILES_PER_SESSION),
        },
    ];
    let rss_steps: Vec<Value> = steps
        .iter()
        .zip(&marginal)
        .map(|(s, added)| json!({"sessions": s.count, "link_s": r3(s.link_time.as_secs_f64()), "rss_kib": s.rss, "rss_kib_per_session": r3(per(s.rss, s.count)), "rss_kib_per_added_session": r3(*added), "open_files": s.files, "open_files_per_session": r3(files_per(s.files, s.count))}))
        .collect();
    let figures = json!({
        "sessions": total,
        "max_concurrent_connects": env.args.max_concurrent_connects,
        "rss_kib_empty": rss_empty,
        "steps": rss_steps,
        "peak_in_flight_linking": peak_linking,
        "idle_window_s": r3(idle_wall),
        "idle_cpu_s": r3(idle_cpu),
        "idle_cpu_cores_per_1000_sessions": r3(idle_cores_per_1000),
        "connected_after_idle": still_connected,
        "shutdown_s": r3(stop_time.as_secs_f64()),
        "restore_serving_s": r3(serving.as_secs_f64()),
        "restore_all_connected_s": r3(restore_time.as_secs_f64()),
        "restore_connected": restored,
        "restore_peak_in_flight": peak,
        "restore_connections_started": started_after - started_before,
        "rss_kib_restored": rss_restored,
        "open_files_empty": files_empty,
        "open_files_restored": files_restored,
        "open_files_per_session_restored": r3(files_per(files_restored, total)),
    });
    let figures: Map<String, Value> = figures.as_object().cloned().unwrap_or_default();
    report::scenario(&format!("real_{total}"), &table, &targets, figures);
    Ok(())
}

/// What each step added, per session added: `of` a step over the one before
/// (`empty` before the first).
fn added_per_step(steps: &[Step], empty: u64, of: impl Fn(&Step) -> u64) -> Vec<f64> {
    let mut last = (0, empty);
    steps
        .iter()
        .map(|step| {
            let added = of(step).saturating_sub(last.1) as f64 / f64::from((step.count - last.0).max(1));
            last = (step.count, of(step));
            added
        })
        .collect()
}

/// Links the sessions numbered `range` (`in_flight` at a time): each created, its
/// first code scanned by its own phone, then watched until CONNECTED. Returns how
/// long that took.
async fn link(env: &BenchEnv, daemon: &Proc, fake: &Fake, range: Range<u32>) -> Result<Duration, String> {
    let channels = client::channels(daemon.addr, env.args.connections).await?;
    let next = Arc::new(AtomicU64::new(u64::from(range.start)));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for n in 0..env.args.in_flight.min(range.len() as u32) as usize {
        let sessions = SessionServiceClient::new(channels[n % channels.len()].clone());
        let (next, done, fake, end) = (next.clone(), done.clone(), fake.clone(), u64::from(range.end));
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Relaxed);
                if n >= end {
                    return Ok::<_, String>(());
                }
                let linked = tokio::time::timeout(LINK_BOUND, link_one(sessions.clone(), fake.clone(), n)).await;
                linked.map_err(|_| format!("session {n} was not linked within {LINK_BOUND:?}"))??;
                done.fetch_add(1, Relaxed);
            }
        });
    }
    let mut ticker = tokio::time::interval(PROGRESS_EVERY);
    ticker.tick().await;
    loop {
        tokio::select! {
            finished = workers.join_next() => match finished {
                None => break,
                Some(outcome) => outcome.map_err(|e| e.to_string())??,
            },
            _ = ticker.tick() => {
                let now = done.load(Relaxed);
                println!("real: linked {now}/{} ({:.0}/s)", range.len(), now as f64 / start.elapsed().as_secs_f64());
            }
        }
    }
    Ok(start.elapsed())
}

/// The daemon's arguments for the real backend against the fake WhatsApp at `ws`.
pub fn backend(ws: std::net::SocketAddr) -> [String; 6] {
    [
        "--backend".into(),
        "whatsapp".into(),
        "--whatsapp-url".into(),
        format!("ws://{ws}/ws/chat"),
        "--wa-version-url".into(),
        format!("http://{ws}/sw.js"),
    ]
}

/// Creates session `n`, has its phone scan the first code, waits for CONNECTED;
/// the session's id and its phone number (digits).
pub async fn link_one(mut sessions: client::Sessions, mut fake: Fake, n: u64) -> Result<(String, String), String> {
    let id = format!("real-{n:07}");
    let phone = format!("1555{n:07}");
    let created = sessions
        .create_session(client::create(&id))
        .await
        .map_err(|e| format!("create {id}: {}", e.message()))?
        .into_inner();
    let code = created.qr.ok_or_else(|| format!("create {id}: no qr code"))?.code;
    let watch = WatchSessionRequest {
        session_id: id.clone(),
        ..Default::default()
    };
    let mut changes = sessions
        .watch_session(watch)
        .await
        .map_err(|e| format!("watch {id}: {}", e.message()))?
        .into_inner();
    fake.scan(&code, &phone).await?;
    while let Some(session) = changes
        .message()
        .await
        .map_err(|e| format!("watch {id}: {}", e.message()))?
    {
        match client::status(&session) {
            SessionStatus::Connected => return Ok((id, phone)),
            SessionStatus::Failed | SessionStatus::LoggedOut => {
                return Err(format!(
                    "{id} ended {:?}: {}",
                    client::status(&session),
                    session.last_error
                ))
            }
            _ => {}
        }
    }
    Err(format!("the watch of {id} ended before CONNECTED"))
}

/// Sessions CONNECTED now.
async fn count_connected(daemon: &Proc) -> Result<u64, String> {
    let mut sessions = client::sessions(daemon.addr).await?;
    client::list_with(&mut sessions, SessionStatus::Connected).await
}

/// Waits until all `count` sessions are CONNECTED again.
async fn wait_connected(env: &BenchEnv, daemon: &Proc, count: u32) -> Result<u64, String> {
    let (mut best, mut last_change, mut printed) = (0, Instant::now(), Instant::now());
    loop {
        let connected = count_connected(daemon).await?;
        if connected >= u64::from(count) {
            return Ok(connected);
        }
        if connected > best {
            (best, last_change) = (connected, Instant::now());
        } else if last_change.elapsed() > env.args.stall_timeout {
            return Err(format!("only {connected}/{count} CONNECTED after the restart: stopped"));
        }
        if printed.elapsed() > PROGRESS_EVERY {
            println!("real: restoring, {connected}/{count} CONNECTED");
            printed = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (30 s at most) until the fake has no connection open; returns how long.
async fn wait_closed(fake: &mut Fake) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        let (_, open) = fake.connections().await?;
        if open == 0 {
            return Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "{open} connections still open at the fake 30 s after the daemon stopped"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
