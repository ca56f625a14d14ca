//! events: the inbound path end to end, on the emulated WhatsApp. Three runs over 20
//! linked sessions, one consumer stream reading everything:
//! - drain: 50,000 messages queued at the server while the sessions are away, then
//!   they connect: events committed to the log and received by the consumer per
//!   second, from the first connect until the last event arrives;
//! - steady: DeliverMessage at 1,000/s for the run's duration: latency from the call
//!   (the server accepting it) until the consumer receives it, p50/p99;
//! - flood: DeliverMessage as fast as 256 calls in flight allow: rate and latency.
//!
//! Baseline, in the same run: the same rows (same columns, indexes and body sizes)
//! committed by a bare SQLite group-commit loop in this process.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{json, Map};
use tokio::sync::Semaphore;
use tonic::transport::Channel;
use wa_sessiond::proto::{
    emulator_service_client::EmulatorServiceClient, event::Body, event_service_client::EventServiceClient,
    session_service_client::SessionServiceClient, ConnectSessionRequest, DeliverMessageRequest,
    DisconnectSessionRequest, EventKind, StreamEventsRequest,
};

use crate::{
    child::BenchEnv,
    client,
    load::percentile,
    report::{self, r3, row, Target},
};

const SESSIONS: usize = 20;
const DRAIN: usize = 50_000;
const STEADY_RATE: u64 = 1_000;
const FLOOD_IN_FLIGHT: usize = 256;

/// The next unused text number (every message's text is unique in a run).
static NEXT_TEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// When each text was handed to DeliverMessage, by text.
type Sent = Arc<tokio::sync::Mutex<HashMap<String, Instant>>>;

/// Runs the scenario and prints its figures.
pub async fn run(env: &BenchEnv) -> Result<(), String> {
    let baseline = tokio::task::spawn_blocking({
        let dir = env.data_dir("events-baseline");
        move || baseline::rows_per_second(&dir, DRAIN)
    })
    .await
    .map_err(|e| e.to_string())??;

    let data = env.data_dir("events");
    // Connecting takes 1 ms at the emulated server: the drain measures the inbound
    // path, not WhatsApp's handshake.
    let extra = ["--max-concurrent-connects", "64", "--emulator-qr-delay", "1ms"];
    let daemon = env.daemon("events", &data, &extra).await?;
    let channel = client::channel(daemon.addr).await?;
    let ids: Vec<String> = (0..SESSIONS).map(|i| format!("ev{i:02}")).collect();
    client::connected_sessions(&channel, &ids).await?;
    let sent: Sent = Arc::default();
    let (received_tx, mut received) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let consumer = tokio::spawn(consume(channel.clone(), received_tx));

    // drain
    let mut sessions = SessionServiceClient::new(channel.clone());
    for id in &ids {
        let stop = DisconnectSessionRequest { session_id: id.clone() };
        sessions
            .disconnect_session(stop)
            .await
            .map_err(|e| e.message().to_owned())?;
    }
    println!("events: queueing {DRAIN} messages at the server while {SESSIONS} sessions are away");
    flood(&channel, &ids, DRAIN, None, &sent).await?;
    let start = Instant::now();
    let mut resuming = tokio::task::JoinSet::new();
    for id in &ids {
        let resume = ConnectSessionRequest {
            session_id: id.clone(),
            ..Default::default()
        };
        let mut sessions = sessions.clone();
        resuming.spawn(async move {
            sessions
                .connect_session(resume)
                .await
                .map_err(|e| e.message().to_owned())
        });
    }
    let drained = collect(&mut received, DRAIN, &sent).await?;
    let drain_s = start.elapsed().as_secs_f64();
    while let Some(resumed) = resuming.join_next().await {
        resumed.map_err(|e| e.to_string())??;
    }
    let drain_rate = DRAIN as f64 / drain_s;
    drop(drained);

    println!("events: steady {STEADY_RATE}/s for {:?}", env.args.duration);
    let steady_n = (STEADY_RATE as f64 * env.args.duration.as_secs_f64()) as usize;
    let start = Instant::now();
    let pace = Some(Duration::from_secs(1) / STEADY_RATE as u32);
    let (sending, steady) = tokio::join!(
        flood(&channel, &ids, steady_n, pace, &sent),
        collect(&mut received, steady_n, &sent)
    );
    sending?;
    let steady = steady?;
    let steady_rate = steady_n as f64 / start.elapsed().as_secs_f64();

    println!("events: flood with {FLOOD_IN_FLIGHT} calls in flight");
    let flood_n = (steady_n * 5).max(20_000);
    let start = Instant::now();
    let (sending, flooded) = tokio::join!(
        flood(&channel, &ids, flood_n, None, &sent),
        collect(&mut received, flood_n, &sent)
    );
    sending?;
    let flooded = flooded?;
    let flood_rate = flood_n as f64 / start.elapsed().as_secs_f64();
    consumer.abort();

    // In milliseconds.
    let (p50, p99) = (|l: &[u32]| percentile(l, 0.50), |l: &[u32]| percentile(l, 0.99));
    let table = vec![
        row(&[&"", &"events/s", &"p50 ms", &"p99 ms"]),
        row(&[
            &"baseline: bare sqlite group commit",
            &format!("{baseline:.0}"),
            &"",
            &"",
        ]),
        row(&[&"drain (queued, then connect)", &format!("{drain_rate:.0}"), &"", &""]),
        row(&[
            &format!("steady {STEADY_RATE}/s"),
            &format!("{steady_rate:.0}"),
            &format!("{:.2}", p50(&steady)),
            &format!("{:.2}", p99(&steady)),
        ]),
        row(&[
            &format!("flood ({FLOOD_IN_FLIGHT} in flight)"),
            &format!("{flood_rate:.0}"),
            &format!("{:.2}", p50(&flooded)),
            &format!("{:.2}", p99(&flooded)),
        ]),
    ];
    let targets = [
        Target {
            key: "at_least_20000_events_per_s",
            text: format!("at least 20,000 events/s end to end (drain now {drain_rate:.0})"),
            met: Some(drain_rate >= 20_000.0),
        },
        Target {
            key: "p99_under_50ms_at_1000_per_s",
            text: format!("p99 under 50 ms at {STEADY_RATE}/s (now {:.2} ms)", p99(&steady)),
            met: Some(p99(&steady) < 50.0),
        },
    ];
    let mut figures = Map::new();
    figures.insert("sessions".into(), json!(SESSIONS));
    figures.insert("baseline_rows_per_s".into(), json!(r3(baseline)));
    figures.insert("drain".into(), json!({"events": DRAIN, "seconds": r3(drain_s), "events_per_s": r3(drain_rate), "ratio_to_baseline": r3(drain_rate / baseline)}));
    figures.insert("steady".into(), json!({"events": steady_n, "events_per_s": r3(steady_rate), "p50_ms": r3(p50(&steady)), "p99_ms": r3(p99(&steady))}));
    figures.insert("flood".into(), json!({"events": flood_n, "events_per_s": r3(flood_rate), "p50_ms": r3(p50(&flooded)), "p99_ms": r3(p99(&flooded))}));
    report::scenario("events", &table, &targets, figures);
    daemon.stop(Duration::from_secs(30)).await?;
    Ok(())
}

/// Reads every message event, in order, and notes when each arrived.
async fn consume(channel: Channel, out: tokio::sync::mpsc::UnboundedSender<(String, Instant)>) -> Result<(), String> {
    let mut events = EventServiceClient::new(channel);
    let request = StreamEventsRequest {
        kinds: vec![EventKind::Message as i32],
        ..Default::default()
    };
    let mut stream = events
        .stream_events(request)
        .await
        .map_err(|e| e.message().to_owned())?
        .into_inner();
    while let Some(event) = stream.message().await.map_err(|e| e.message().to_owned())? {
        if let Some(Body::Message(message)) = event.body {
            if out.send((message.text, Instant::now())).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Sends `n` messages spread over the sessions, each text unique; paced when `pace`
/// is set, else with up to FLOOD_IN_FLIGHT calls in flight.
async fn flood(channel: &Channel, ids: &[String], n: usize, pace: Option<Duration>, sent: &Sent) -> Result<(), String> {
    let gate = Arc::new(Semaphore::new(FLOOD_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = pace.map(tokio::time::interval);
    let base = NEXT_TEXT.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    for i in 0..n {
        if let Some(tick) = tick.as_mut() {
            tick.tick().await;
        }
        let permit = gate.clone().acquire_owned().await.map_err(|e| e.to_string())?;
        let mut phone = EmulatorServiceClient::new(channel.clone());
        let text = format!("m{}", base + i);
        let request = DeliverMessageRequest {
            session_id: ids[i % ids.len()].clone(),
            from: "15550009999".into(),
            text: text.clone(),
            ..Default::default()
        };
        let sent = sent.clone();
        tasks.spawn(async move {
            sent.lock().await.insert(text, Instant::now());
            let answer = phone.deliver_message(request).await.map_err(|e| e.message().to_owned());
            drop(permit);
            answer.map(drop)
        });
        while let Some(done) = tasks.try_join_next() {
            done.map_err(|e| e.to_string())??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Waits for `n` messages at the consumer; their latencies in µs, from the call.
async fn collect(
    received: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Instant)>,
    n: usize,
    sent: &Sent,
) -> Result<Vec<u32>, String> {
    let mut latencies = Vec::with_capacity(n);
    while latencies.len() < n {
        let (text, at) = tokio::time::timeout(Duration::from_secs(120), received.recv())
            .await
            .map_err(|_| format!("only {} of {n} messages reached the consumer in time", latencies.len()))?
            .ok_or("the consumer stream ended")?;
        if let Some(sent_at) = sent.lock().await.remove(&text) {
            latencies.push(at.saturating_duration_since(sent_at).as_micros() as u32);
        }
    }
    latencies.sort_unstable();
    Ok(latencies)
}

mod baseline {
    //! The same rows as the event log writes, committed by a bare SQLite
    //! group-commit loop: one producer thread, one writer thread, batches of up to
    //! 1,024 rows, WAL with synchronous=FULL.

    use std::{path::Path, sync::mpsc, time::Instant};

    use rusqlite::{params, Connection};

    pub fn rows_per_second(dir: &Path, n: usize) -> Result<f64, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let mut conn = Connection::open(dir.join("baseline.db")).map_err(|e| e.to_string())?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| e.to_string())?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| e.to_string())?;
        conn.execute_batch(
            "CREATE TABLE events (cursor INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, seq INTEGER NOT NULL,
                time_ms INTEGER NOT NULL, kind INTEGER NOT NULL, dedupe TEXT, body BLOB NOT NULL);
             CREATE UNIQUE INDEX events_dedupe ON events (session_id, dedupe) WHERE dedupe IS NOT NULL;
             CREATE INDEX events_by_session ON events (session_id, cursor);",
        )
        .map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel::<(String, u64, String, Vec<u8>)>();
        let start = Instant::now();
        let producer = std::thread::spawn(move || {
            for i in 0..n {
                let session = format!("ev{:02}", i % 20);
                let dedupe = format!("15550009999@s.whatsapp.net\u{1f}15550009999@s.whatsapp.net\u{1f}3EB0{i:016X}");
                // The size of an encoded text message event body.
                let body = vec![0x2a; 120];
                if tx.send((session, i as u64, dedupe, body)).is_err() {
                    return;
                }
            }
        });
        let mut written = 0;
        while written < n {
            let Ok(first) = rx.recv() else { break };
            let mut batch = vec![first];
            while batch.len() < 1024 {
                match rx.try_recv() {
                    Ok(row) => batch.push(row),
                    Err(_) => break,
                }
            }
            let tx = conn.transaction().map_err(|e| e.to_string())?;
            {
                let mut insert = tx
                    .prepare_cached("INSERT OR IGNORE INTO events (session_id, seq, time_ms, kind, dedupe, body) VALUES (?1, ?2, ?3, 1, ?4, ?5)")
                    .map_err(|e| e.to_string())?;
                for (session, seq, dedupe, body) in &batch {
                    insert
                        .execute(params![session, *seq as i64, 0i64, dedupe, body])
                        .map_err(|e| e.to_string())?;
                }
            }
            tx.commit().map_err(|e| e.to_string())?;
            written += batch.len();
        }
        let _ = producer.join();
        Ok(written as f64 / start.elapsed().as_secs_f64())
    }
}
