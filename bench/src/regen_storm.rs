//! regen_storm: many concurrent GetSession on one session whose QR batch ran out
//! (QR_WAITING, expired code, no connection). They must share one regeneration: the
//! wall time until every caller has the new code, and the connections the emulated
//! server saw started (must be exactly 1).

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use prost::Message;
use serde_json::{json, Map, Value};
use tokio::sync::Barrier;
use tonic::transport::Channel;
use wa_sessiond::proto::{
    emulator_service_client::EmulatorServiceClient, session_service_client::SessionServiceClient, Session,
    SessionStatus,
};

use crate::{
    child::{BenchEnv, Proc},
    client::{self, Sessions},
    report::{self, r3, row, Target},
};

/// The emulator's delay from connect to first code in this scenario.
const QR_DELAY: Duration = Duration::from_millis(200);
/// A batch of one code living this long: the session is exhausted soon after.
const QR_TTL: Duration = Duration::from_millis(500);
/// The session stormed.
const ID: &str = "storm";

/// One storm's figures.
struct Storm {
    first: Duration,
    wall: Duration,
    connections: u64,
    callers_with_new_code: usize,
    distinct_codes: usize,
}

/// Runs the scenario and prints its figures.
pub async fn run(env: &BenchEnv) -> Result<(), String> {
    let args = &env.args;
    let (delay, ttl) = (
        humantime::format_duration(QR_DELAY).to_string(),
        humantime::format_duration(QR_TTL).to_string(),
    );
    let extra = [
        "--emulator-qr-delay",
        &delay,
        "--emulator-qr-count",
        "1",
        "--emulator-first-qr-ttl",
        &ttl,
        "--emulator-next-qr-ttl",
        &ttl,
    ];
    let daemon = env
        .daemon("daemon-regen_storm", &env.data_dir("regen_storm"), &extra)
        .await?;
    let channels = client::channels(daemon.addr, args.connections).await?;
    let mut sessions = SessionServiceClient::new(channels[0].clone());
    sessions
        .create_session(client::create(ID))
        .await
        .map_err(|e| format!("create failed: {}", e.message()))?;
    let mut storms = Vec::new();
    for round in 1..=args.rounds {
        println!(
            "regen_storm: round {round}/{}: {} callers at once",
            args.rounds, args.storm
        );
        storms.push(storm(&daemon, &channels, args.storm).await?);
    }
    let sample = sessions
        .get_session(client::peek(ID))
        .await
        .map_err(|e| format!("GetSession failed: {}", e.message()))?
        .into_inner();
    drop(channels);
    daemon.stop(Duration::from_secs(20)).await?;
    let floor = baseline_storms(env, &sample).await?;
    print(env, &storms, &floor);
    Ok(())
}

/// Waits until the session is exhausted, then storms it once.
async fn storm(daemon: &Proc, channels: &[Channel], callers: u32) -> Result<Storm, String> {
    let mut phone = EmulatorServiceClient::new(channels[0].clone());
    let mut sessions = SessionServiceClient::new(channels[0].clone());
    let exhausted = wait_exhausted(daemon, &mut sessions, &mut phone).await?;
    let old_generation = exhausted.qr.as_ref().map_or(0, |qr| qr.generation);
    let (started_before, _) = client::connections(&mut phone, ID).await?;

    let (first, wall, answers) = fire(channels, callers).await;
    let codes: HashSet<_> = answers.iter().map(|(_, code)| code).collect();
    let with_new_code = answers.iter().filter(|(g, _)| *g == old_generation + 1).count();
    let (started_after, _) = client::connections(&mut phone, ID).await?;
    Ok(Storm {
        first,
        wall,
        connections: started_after - started_before,
        callers_with_new_code: with_new_code,
        distinct_codes: codes.len(),
    })
}

/// Sends `callers` GetSession at once (released together), over `channels`; returns
/// the time until the first and the last answer, and each answer's QR generation and
/// code.
async fn fire(channels: &[Channel], callers: u32) -> (Duration, Duration, Vec<(u64, String)>) {
    let barrier = Arc::new(Barrier::new(callers as usize + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..callers as usize {
        let mut sessions = SessionServiceClient::new(channels[n % channels.len()].clone());
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            let answer = sessions.get_session(client::get(ID)).await.ok()?.into_inner();
            answer.qr.map(|qr| (qr.generation, qr.code))
        });
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut answers = Vec::with_capacity(callers as usize);
    let mut first = None;
    while let Some(done) = tasks.join_next().await {
        first.get_or_insert_with(|| start.elapsed());
        if let Ok(Some(answer)) = done {
            answers.push(answer);
        }
    }
    (first.unwrap_or_default(), start.elapsed(), answers)
}

/// The same storm against the baseline, which answers at once: what 1,000 calls cost
/// on this machine without any regeneration (the transport's floor).
async fn baseline_storms(env: &BenchEnv, sample: &Session) -> Result<Vec<Duration>, String> {
    let prototype = env.run_dir.join("prototype-storm.bin");
    std::fs::write(&prototype, sample.encode_to_vec()).map_err(|e| format!("cannot write the prototype: {e}"))?;
    let baseline = env.baseline(&prototype).await?;
    let channels = client::channels(baseline.addr, env.args.connections).await?;
    let mut walls = Vec::new();
    for _ in 0..env.args.rounds {
        let (_, wall, answers) = fire(&channels, env.args.storm).await;
        if answers.len() != env.args.storm as usize {
            return Err(format!(
                "the baseline answered {} of {} calls",
                answers.len(),
                env.args.storm
            ));
        }
        walls.push(wall);
    }
    Ok(walls)
}

/// Reads the session (never starting anything) until its batch ran out and the
/// emulator has no connection of it open.
async fn wait_exhausted(
    daemon: &Proc,
    sessions: &mut Sessions,
    phone: &mut EmulatorServiceClient<Channel>,
) -> Result<Session, String> {
    daemon
        .wait_for(Duration::from_secs(30), "the session's qr batch to run out", || {
            let (mut sessions, mut phone) = (sessions.clone(), phone.clone());
            async move {
                let session = sessions.get_session(client::peek(ID)).await.ok()?.into_inner();
                let expired = session
                    .qr
                    .as_ref()
                    .and_then(|qr| qr.expires_at)
                    .is_some_and(|at| SystemTime::try_from(at).is_ok_and(|at| at <= SystemTime::now()));
                let (_, open) = client::connections(&mut phone, ID).await.ok()?;
                (client::status(&session) == SessionStatus::QrWaiting && expired && open == 0).then_some(session)
            }
        })
        .await
}

fn print(env: &BenchEnv, storms: &[Storm], floor: &[Duration]) {
    let delay_ms = QR_DELAY.as_secs_f64() * 1000.0;
    let mut walls: Vec<f64> = storms.iter().map(|s| s.wall.as_secs_f64() * 1000.0).collect();
    walls.sort_by(f64::total_cmp);
    let worst = walls.last().copied().unwrap_or(0.0);
    let median = walls.get(walls.len() / 2).copied().unwrap_or(0.0);
    let max_connections = storms.iter().map(|s| s.connections).max().unwrap_or(0);
    let all_one = storms.iter().all(|s| s.connections == 1);
    let callers = env.args.storm as usize;
    let all_answered = storms
        .iter()
        .all(|s| s.callers_with_new_code == callers && s.distinct_codes == 1);
    let mut table = vec![row(&[
        &"storm",
        &"first answer ms",
        &"wall ms",
        &"past QR delay ms",
        &"connections",
        &"callers with the new code",
        &"distinct codes",
        &"baseline (answers at once) wall ms",
    ])];
    let floor_ms: Vec<f64> = floor.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    for (n, s) in storms.iter().enumerate() {
        let wall_ms = s.wall.as_secs_f64() * 1000.0;
        table.push(row(&[
            &(n + 1),
            &format!("{:.1}", s.first.as_secs_f64() * 1000.0),
            &format!("{wall_ms:.1}"),
            &format!("{:.1}", wall_ms - delay_ms),
            &s.connections,
            &format!("{}/{callers}", s.callers_with_new_code),
            &s.distinct_codes,
            &floor_ms.get(n).map_or("-".into(), |f| format!("{f:.1}")),
        ]));
    }
    let floor_worst = floor_ms.iter().copied().fold(0.0, f64::max);
    let targets = [
        Target {
            key: "exactly_1_connection",
            text: format!("exactly 1 connection per storm (now at most {max_connections})"),
            met: Some(all_one),
        },
        Target {
            key: "under_50ms_past_qr_delay",
            text: format!(
                "under 50 ms past the {delay_ms:.0} ms QR delay (worst storm now {:.1} ms past)",
                worst - delay_ms
            ),
            met: Some(worst - delay_ms < 50.0),
        },
    ];
    let figures = json!({
        "callers": callers,
        "connections": env.args.connections,
        "storms": storms.len(),
        "qr_delay_ms": delay_ms,
        "first_answer_ms": storms.iter().map(|s| r3(s.first.as_secs_f64() * 1000.0)).collect::<Vec<_>>(),
        "wall_ms_median": r3(median),
        "wall_ms_worst": r3(worst),
        "past_qr_delay_ms_worst": r3(worst - delay_ms),
        "connections_started_max": max_connections,
        "every_caller_got_the_one_new_code": all_answered,
        "baseline_wall_ms": floor_ms.iter().map(|f| r3(*f)).collect::<Vec<_>>(),
        "baseline_wall_ms_worst": r3(floor_worst),
    });
    let figures: Map<String, Value> = figures.as_object().cloned().unwrap_or_default();
    report::scenario("regen_storm", &table, &targets, figures);
}
