//! send: the outbound path end to end, on the emulated WhatsApp. One consumer
//! stream reads every EVENT_KIND_OUTBOUND event while three runs send texts, each
//! with its own idempotency key:
//! - one session: SendMessage as fast as `--send-in-flight` (64) calls in flight
//!   allow, for `--duration` (or `--send-messages`);
//! - 100 sessions (`--send-sessions`): the same, spread round robin;
//! - steady: `--send-rate` (500/s) over the same sessions for `--duration`.
//!
//! Per run: accepted/s (answers SENT), server-acked/s (SERVER_ACK events at the
//! consumer), and p50/p99 from the call to the answer (SENT) and from the call to the
//! SERVER_ACK event, and the daemon's CPU per message (from /proc). Baseline, in the
//! same run: the same rows committed by a bare SQLite group-commit loop in this
//! process (`send_baseline`).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, Mutex, Semaphore};
use tonic::transport::Channel;
use wa_sessiond::proto::{
    event::Body, event_service_client::EventServiceClient, send_message_request::Content,
    session_service_client::SessionServiceClient, EventKind, MessageStatus, SendMessageRequest, StreamEventsRequest,
};

use crate::{
    child::BenchEnv,
    client,
    load::percentile,
    report::{self, r3, row, Target},
    send_baseline::{self, chat, text},
};

/// Messages the baseline commits.
const BASELINE_MESSAGES: usize = 30_000;
/// Calls in flight in the steady run at most (it is paced, not closed-loop).
const STEADY_IN_FLIGHT: usize = 4096;
/// A run whose SERVER_ACKs stop coming this long is reported with what arrived.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// When each call was made, by its client_message_id.
type Calls = Arc<Mutex<HashMap<String, Instant>>>;
/// What the consumer saw: (client_message_id, status, when).
type Seen = mpsc::UnboundedReceiver<(String, i32, Instant)>;

/// One run's shape.
struct Run {
    /// Its key prefix (keys are unique in a daemon's life).
    prefix: &'static str,
    /// The sessions it sends from, round robin.
    ids: Vec<String>,
    /// Closed loop with this many calls in flight, or paced at one call per `pace`.
    in_flight: usize,
    pace: Option<Duration>,
    /// It stops sending after `duration` or `max` calls (0: no bound).
    duration: Duration,
    max: usize,
}

/// One run's figures.
#[derive(Default)]
struct Outcome {
    calls: usize,
    accepted: usize,
    errors: usize,
    first_error: Option<String>,
    /// From the first call to the last answer, and to the last SERVER_ACK.
    answers_s: f64,
    acks_s: f64,
    acked: usize,
    failed: usize,
    /// Microseconds, sorted.
    to_sent: Vec<u32>,
    to_ack: Vec<u32>,
    /// The daemon's CPU time (user + system) over the run, acks included.
    daemon_cpu: Duration,
}

impl Outcome {
    fn accepted_per_s(&self) -> f64 {
        self.accepted as f64 / self.answers_s.max(1e-9)
    }

    fn acked_per_s(&self) -> f64 {
        self.acked as f64 / self.acks_s.max(1e-9)
    }

    /// The daemon's CPU per accepted message, µs.
    fn cpu_us_per_message(&self) -> f64 {
        self.daemon_cpu.as_secs_f64() * 1e6 / self.accepted.max(1) as f64
    }

    /// The daemon's CPU over the run's span, in cores.
    fn cpu_cores(&self) -> f64 {
        self.daemon_cpu.as_secs_f64() / self.acks_s.max(self.answers_s).max(1e-9)
    }

    fn cells(&self, name: String) -> Vec<String> {
        let ms = |l: &[u32], q| format!("{:.2}", percentile(l, q));
        vec![
            name,
            self.accepted.to_string(),
            format!("{:.0}", self.accepted_per_s()),
            format!("{:.0}", self.acked_per_s()),
            ms(&self.to_sent, 0.50),
            ms(&self.to_sent, 0.99),
            ms(&self.to_ack, 0.50),
            ms(&self.to_ack, 0.99),
            format!("{:.0} µs, {:.2} cores", self.cpu_us_per_message(), self.cpu_cores()),
        ]
    }

    fn json(&self, baseline: f64) -> Value {
        let ms = |l: &[u32], q| r3(percentile(l, q));
        json!({
            "calls": self.calls, "accepted": self.accepted, "errors": self.errors, "first_error": self.first_error,
            "server_acked": self.acked, "failed": self.failed, "acks_missing": self.accepted.saturating_sub(self.acked + self.failed),
            "accepted_per_s": r3(self.accepted_per_s()), "server_acked_per_s": r3(self.acked_per_s()),
            "accepted_ratio_to_baseline": r3(self.accepted_per_s() / baseline),
            "sent_p50_ms": ms(&self.to_sent, 0.50), "sent_p99_ms": ms(&self.to_sent, 0.99),
            "server_ack_p50_ms": ms(&self.to_ack, 0.50), "server_ack_p99_ms": ms(&self.to_ack, 0.99),
            "daemon_cpu_us_per_message": r3(self.cpu_us_per_message()), "daemon_cpu_cores": r3(self.cpu_cores()),
        })
    }
}

/// Runs the scenario and prints its figures.
pub async fn run(env: &BenchEnv) -> Result<(), String> {
    let args = &env.args;
    let sessions = args.send_sessions as usize;
    let baseline = tokio::task::spawn_blocking({
        let dir = env.data_dir("send-baseline");
        move || send_baseline::messages_per_second(&dir, BASELINE_MESSAGES, sessions)
    })
    .await
    .map_err(|e| e.to_string())??;

    let data = env.data_dir("send");
    let extra = ["--max-concurrent-connects", "64", "--emulator-qr-delay", "1ms"];
    let daemon = env.daemon("send", &data, &extra).await?;
    let channels = client::channels(daemon.addr, args.connections).await?;
    let ids: Vec<String> = (0..sessions).map(|i| format!("sd{i:03}")).collect();
    println!("send: linking {sessions} sessions");
    client::connected_sessions(&channels[0], &ids).await?;
    let calls: Calls = Arc::default();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let consumer = tokio::spawn(consume(client::channel(daemon.addr).await?, seen_tx));
    // The stream is open (its headers came) before anything is sent; a moment for
    // the daemon to start following the log.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let in_flight = args.send_in_flight as usize;
    let (duration, max) = (args.duration, args.send_messages as usize);
    let rate = args.send_rate;
    let runs = [
        ("one session", ids[..1].to_vec(), "one", in_flight, None),
        ("sessions", ids.clone(), "many", in_flight, None),
        (
            "steady",
            ids.clone(),
            "steady",
            STEADY_IN_FLIGHT,
            Some(Duration::from_secs(1) / rate),
        ),
    ];
    let mut outcomes = Vec::new();
    for (what, run_ids, prefix, in_flight, pace) in runs {
        let shape = match pace {
            Some(_) => format!("{rate}/s over {} sessions", run_ids.len()),
            None => format!("{in_flight} in flight over {} session(s)", run_ids.len()),
        };
        println!("send: {what}, {shape}, for {duration:?}");
        let run = Run {
            prefix,
            ids: run_ids,
            in_flight,
            pace,
            duration,
            max: if pace.is_some() { 0 } else { max },
        };
        let cpu = daemon.cpu_time();
        let mut outcome = send_run(&channels, &run, &calls, &mut seen).await?;
        outcome.daemon_cpu = daemon.cpu_time().saturating_sub(cpu);
        outcomes.push((shape, outcome));
    }
    consumer.abort();
    report_all(sessions, rate, baseline, &outcomes);
    daemon.stop(Duration::from_secs(30)).await?;
    Ok(())
}

/// Sends one run's texts, then waits for their SERVER_ACKs (bounded).
async fn send_run(channels: &[Channel], run: &Run, calls: &Calls, seen: &mut Seen) -> Result<Outcome, String> {
    let gate = Arc::new(Semaphore::new(run.in_flight));
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = run.pace.map(tokio::time::interval);
    let mut outcome = Outcome::default();
    let mut last_answer = Instant::now();
    let mut note = |outcome: &mut Outcome, done: Result<Result<u32, String>, tokio::task::JoinError>| match done
        .map_err(|e| e.to_string())
        .and_then(|answer| answer)
    {
        Ok(micros) => {
            outcome.accepted += 1;
            outcome.to_sent.push(micros);
            last_answer = Instant::now();
        }
        Err(error) => {
            outcome.errors += 1;
            outcome.first_error.get_or_insert(error);
        }
    };
    let start = Instant::now();
    for i in 0.. {
        if start.elapsed() >= run.duration || (run.max > 0 && i >= run.max) {
            break;
        }
        if let Some(tick) = tick.as_mut() {
            tick.tick().await;
        }
        let permit = gate.clone().acquire_owned().await.map_err(|e| e.to_string())?;
        let key = format!("{}{i}", run.prefix);
        let request = SendMessageRequest {
            session_id: run.ids[i % run.ids.len()].clone(),
            to: chat(i),
            client_message_id: key.clone(),
            content: Some(Content::Text(text(i))),
            ..Default::default()
        };
        let mut sessions = SessionServiceClient::new(channels[i % channels.len()].clone());
        let calls = calls.clone();
        tasks.spawn(async move {
            let called = Instant::now();
            calls.lock().await.insert(key, called);
            let answer = sessions.send_message(request).await;
            let micros = called.elapsed().as_micros() as u32;
            drop(permit);
            let answer = answer.map_err(|e| format!("{:?}: {}", e.code(), e.message()))?;
            match answer.into_inner().status {
                s if s == MessageStatus::Sent as i32 => Ok(micros),
                s => Err(format!("answered status {s}, not SENT")),
            }
        });
        outcome.calls += 1;
        while let Some(done) = tasks.try_join_next() {
            note(&mut outcome, done);
        }
    }
    while let Some(done) = tasks.join_next().await {
        note(&mut outcome, done);
    }
    outcome.answers_s = last_answer.saturating_duration_since(start).as_secs_f64();
    collect_acks(run.prefix, start, calls, seen, &mut outcome).await;
    outcome.to_sent.sort_unstable();
    outcome.to_ack.sort_unstable();
    Ok(outcome)
}

/// Reads the consumer's events until every accepted message of the run (its keys
/// start with `prefix`) is SERVER_ACK or FAILED, or none came for ACK_WAIT.
async fn collect_acks(prefix: &str, start: Instant, calls: &Calls, seen: &mut Seen, outcome: &mut Outcome) {
    let mut last_ack = start;
    while outcome.acked + outcome.failed < outcome.accepted {
        let Ok(Some((key, status, at))) = tokio::time::timeout(ACK_WAIT, seen.recv()).await else {
            break;
        };
        if !key.starts_with(prefix) || status == MessageStatus::Sent as i32 {
            continue;
        }
        let Some(called) = calls.lock().await.remove(&key) else {
            continue;
        };
        if status == MessageStatus::ServerAck as i32 {
            outcome.acked += 1;
            outcome
                .to_ack
                .push(at.saturating_duration_since(called).as_micros() as u32);
            last_ack = last_ack.max(at);
        } else if status == MessageStatus::Failed as i32 {
            outcome.failed += 1;
        }
    }
    outcome.acks_s = last_ack.saturating_duration_since(start).as_secs_f64();
}

/// Reads every outbound event and notes when each arrived.
async fn consume(channel: Channel, out: mpsc::UnboundedSender<(String, i32, Instant)>) -> Result<(), String> {
    let request = StreamEventsRequest {
        kinds: vec![EventKind::Outbound as i32],
        ..Default::default()
    };
    let mut stream = EventServiceClient::new(channel)
        .stream_events(request)
        .await
        .map_err(|e| e.message().to_owned())?
        .into_inner();
    while let Some(event) = stream.message().await.map_err(|e| e.message().to_owned())? {
        if let Some(Body::Outbound(update)) = event.body {
            if out
                .send((update.client_message_id, update.status, Instant::now()))
                .is_err()
            {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Prints the table, the targets and the JSON line.
fn report_all(sessions: usize, rate: u32, baseline: f64, outcomes: &[(String, Outcome)]) {
    let [(one_shape, one), (many_shape, many), (steady_shape, steady)] = outcomes else {
        return;
    };
    let mut table = vec![
        row(&[
            &"",
            &"accepted",
            &"accepted/s",
            &"acked/s",
            &"SENT p50 ms",
            &"SENT p99 ms",
            &"ACK p50 ms",
            &"ACK p99 ms",
            &"daemon CPU/msg, use",
        ]),
        row(&[
            &"baseline: bare sqlite group commit, same rows",
            &BASELINE_MESSAGES,
            &format!("{baseline:.0}"),
            &"",
            &"",
            &"",
            &"",
            &"",
            &"",
        ]),
    ];
    table.push(one.cells(format!("one session ({one_shape})")));
    table.push(many.cells(format!("{sessions} sessions ({many_shape})")));
    table.push(steady.cells(format!("steady {steady_shape}")));
    let sent_p99 = percentile(&steady.to_sent, 0.99);
    let full_size = sessions >= 100;
    let targets = [
        Target {
            key: "at_least_5000_accepted_per_s_over_100_sessions",
            text: format!(
                "at least 5,000 accepted/s over 100 sessions (now {:.0} over {sessions})",
                many.accepted_per_s()
            ),
            met: full_size.then_some(many.accepted_per_s() >= 5_000.0),
        },
        Target {
            key: "p99_call_to_sent_under_20ms_at_500_per_s",
            text: format!("p99 from call to SENT under 20 ms at 500/s (now {sent_p99:.2} ms at {rate}/s)"),
            met: (full_size && rate == 500).then_some(sent_p99 < 20.0),
        },
    ];
    let mut figures = Map::new();
    figures.insert("sessions".into(), json!(sessions));
    figures.insert(
        "baseline".into(),
        json!({"messages": BASELINE_MESSAGES, "messages_per_s": r3(baseline), "rows_per_message": 5}),
    );
    figures.insert("one_session".into(), one.json(baseline));
    figures.insert("many_sessions".into(), many.json(baseline));
    let mut steady_json = steady.json(baseline);
    steady_json["rate_per_s"] = json!(rate);
    figures.insert("steady".into(), steady_json);
    report::scenario("send", &table, &targets, figures);
    for (shape, outcome) in outcomes {
        if let Some(error) = &outcome.first_error {
            println!("send: {shape}: {} calls failed, the first: {error}", outcome.errors);
        }
        let missing = outcome.accepted.saturating_sub(outcome.acked + outcome.failed);
        if missing > 0 || outcome.failed > 0 {
            println!(
                "send: {shape}: {missing} accepted messages never reached SERVER_ACK at the consumer, {} FAILED",
                outcome.failed
            );
        }
    }
}
