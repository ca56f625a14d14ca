//! campaign pacing: P linked sessions (`--campaign-pacing-sessions`, 50), one
//! campaign each of K items (`--campaign-pacing-items`, 40) at min 1 s / max 2 s
//! (`--campaign-pacing-min`, `--campaign-pacing-max`): about K x 1.5 s of run.
//! Each campaign is watched (WatchCampaign) from before it is resumed, noting every
//! `next_send_at` it announces. Once all are DONE, the emulated server's
//! ListSentMessages gives when it received each send; per session:
//! (a) the gaps between consecutive sends, p50/p99;
//! (b) the share of gaps outside [min - 20 ms, max + 20 ms];
//! (c) the gap error: each send's time minus the announced `next_send_at` nearest
//!     to it, p50/p99 (target: p99 under 20 ms; not judged if none was announced).

use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map};
use tokio::{sync::mpsc, task::JoinHandle};
use tonic::transport::Channel;
use wa_sessiond::proto::{
    emulator_service_client::EmulatorServiceClient, CampaignState, EmulatedKind, ListSentMessagesRequest,
    WatchCampaignRequest,
};

use crate::{
    child::BenchEnv,
    report::{self, r3, row, Target},
};

use super::{
    gaps::Accuracy,
    linked_daemon,
    rpc::{self, Campaigns, Plan, PROGRESS_EVERY},
};

/// The slack around the policy's bounds in (b).
const SLACK: Duration = Duration::from_millis(20);
/// The bound on the gap error's p99, ms.
const ERROR_P99_MS: f64 = 20.0;
/// How long a finished campaign's watch may take to end.
const WATCH_END: Duration = Duration::from_secs(5);

/// One campaign's watch: the announced `next_send_at` values, as they came.
struct Watch {
    announced: mpsc::UnboundedReceiver<SystemTime>,
    task: JoinHandle<Result<(), String>>,
}

impl Watch {
    /// Opens the watch; returns once the campaign's current state came.
    async fn open(channel: Channel, campaign_id: String) -> Result<Self, String> {
        let request = WatchCampaignRequest { campaign_id };
        let mut stream = Campaigns::new(channel)
            .watch_campaign(request)
            .await
            .map_err(|s| rpc::failed("WatchCampaign", &s))?
            .into_inner();
        stream
            .message()
            .await
            .map_err(|s| rpc::failed("WatchCampaign", &s))?
            .ok_or("WatchCampaign ended before the campaign's state")?;
        let (tx, announced) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut last = None;
            while let Some(campaign) = stream.message().await.map_err(|s| rpc::failed("WatchCampaign", &s))? {
                let at = campaign.next_send_at.as_ref().map(rpc::system_time);
                if at.is_some() && at != last {
                    let _ = tx.send(at.unwrap_or(SystemTime::UNIX_EPOCH));
                    last = at;
                }
            }
            Ok(())
        });
        Ok(Self { announced, task })
    }

    /// Waits (bounded) for the stream to end; returns the distinct announced times
    /// and whether the stream failed.
    async fn finish(mut self) -> (Vec<SystemTime>, Option<String>) {
        let error = match tokio::time::timeout(WATCH_END, &mut self.task).await {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(e),
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => {
                self.task.abort();
                Some(format!("the watch did not end within {WATCH_END:?} of DONE"))
            }
        };
        let mut announced = Vec::new();
        while let Ok(at) = self.announced.try_recv() {
            announced.push(at);
        }
        (announced, error)
    }
}

/// Runs the part and prints its figures.
pub async fn run(env: &BenchEnv) -> Result<(), String> {
    let args = &env.args;
    let (sessions, items) = (
        args.campaign_pacing_sessions as usize,
        args.campaign_pacing_items as usize,
    );
    let (min, max) = (args.campaign_pacing_min, args.campaign_pacing_max);
    if min > max {
        return Err(format!(
            "--campaign-pacing-min {min:?} is over --campaign-pacing-max {max:?}"
        ));
    }
    let (daemon, channels, ids) = linked_daemon(env, "campaign-pacing", sessions).await?;
    let campaign_ids: Vec<String> = ids.iter().map(|id| format!("pace-{id}")).collect();
    let plan = Plan {
        campaigns: campaign_ids.iter().cloned().zip(ids.iter().cloned()).collect(),
        items,
        pacing: rpc::pacing(min, max),
        items_in_create: true,
        label: "pacing".into(),
    };
    rpc::queue(&channels, &plan).await?;
    let mut watches = Vec::new();
    for (n, id) in campaign_ids.iter().enumerate() {
        watches.push(Watch::open(channels[n % channels.len()].clone(), id.clone()).await?);
    }
    let planned = (min + max).mul_f64(items.saturating_sub(1) as f64 / 2.0);
    println!("campaign: pacing: {sessions} campaigns x {items} items at {min:?}-{max:?}, about {planned:?}");
    let start = Instant::now();
    rpc::resume_all(&channels, &campaign_ids).await?;
    let bound = max.mul_f64(items as f64 * 1.5) + Duration::from_secs(60);
    let pending = wait_done(&channels[0], (sessions * items) as u64, bound).await?;
    let run_secs = start.elapsed().as_secs_f64();

    let window = (min / 2).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut accuracy = Accuracy::default();
    let mut watch_errors = Vec::new();
    let mut phone = EmulatorServiceClient::new(channels[0].clone());
    for (id, watch) in ids.iter().zip(watches) {
        let (announced, error) = watch.finish().await;
        watch_errors.extend(error);
        accuracy.add_session(&sent_times(&mut phone, id).await?, &announced, window);
    }
    accuracy.finish();
    daemon.stop(Duration::from_secs(30)).await?;
    print(env, &accuracy, pending, run_secs, &watch_errors);
    Ok(())
}

/// Polls ListCampaigns until every campaign is DONE (or CANCELLED), bounded;
/// returns the items still pending then.
async fn wait_done(channel: &Channel, total: u64, bound: Duration) -> Result<u64, String> {
    let start = Instant::now();
    let mut said = Instant::now();
    loop {
        let campaigns = rpc::list_all(channel).await?;
        let counts = rpc::sum_counts(&campaigns);
        let finished = campaigns
            .iter()
            .all(|c| c.state == CampaignState::Done as i32 || c.state == CampaignState::Cancelled as i32);
        if finished || start.elapsed() > bound {
            if !finished {
                println!("campaign: pacing: not DONE after {bound:?}; measuring what was sent");
            }
            return Ok(counts.pending);
        }
        if said.elapsed() >= PROGRESS_EVERY {
            println!("campaign: pacing: {} of {total} items sent", rpc::handed_over(&counts));
            said = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// When the emulated server received each text the session sent.
async fn sent_times(phone: &mut EmulatorServiceClient<Channel>, session_id: &str) -> Result<Vec<SystemTime>, String> {
    let request = ListSentMessagesRequest {
        session_id: session_id.into(),
    };
    let sent = phone
        .list_sent_messages(request)
        .await
        .map_err(|e| format!("ListSentMessages failed: {}", e.message()))?
        .into_inner();
    Ok(sent
        .messages
        .iter()
        .filter(|m| m.kind == EmulatedKind::Text as i32)
        .filter_map(|m| m.received_at.as_ref().map(rpc::system_time))
        .collect())
}

fn print(env: &BenchEnv, accuracy: &Accuracy, pending: u64, run_secs: f64, watch_errors: &[String]) {
    let args = &env.args;
    let (min, max) = (args.campaign_pacing_min, args.campaign_pacing_max);
    let expected = u64::from(args.campaign_pacing_sessions) * u64::from(args.campaign_pacing_items);
    let outside = accuracy.outside(min, max, SLACK);
    let outside_share = outside as f64 / accuracy.gaps.len().max(1) as f64;
    let max_of = |l: &[u32]| l.last().map_or(0.0, |&m| f64::from(m) / 1000.0);
    let min_gap = accuracy.gaps.first().map_or(0.0, |&m| f64::from(m) / 1000.0);
    let bounds = format!("[{:?}, {:?}]", min.saturating_sub(SLACK), max + SLACK);
    let table = vec![
        row(&[&"", &"count", &"p50 ms", &"p99 ms", &"min ms", &"max ms", &"note"]),
        row(&[
            &"gap between a session's sends (server's received_at)",
            &accuracy.gaps.len(),
            &format!("{:.1}", accuracy.gap_ms(0.50)),
            &format!("{:.1}", accuracy.gap_ms(0.99)),
            &format!("{min_gap:.1}"),
            &format!("{:.1}", max_of(&accuracy.gaps)),
            &format!("{outside} ({:.2} %) outside {bounds}", outside_share * 100.0),
        ]),
        row(&[
            &"gap error: send - announced next_send_at",
            &accuracy.errors.len(),
            &format!("{:.1}", accuracy.error_ms(0.50)),
            &format!("{:.1}", accuracy.error_ms(0.99)),
            &"",
            &format!("{:.1}", max_of(&accuracy.errors)),
            &format!("{} early, {} sends matched none", accuracy.early, accuracy.unmatched),
        ]),
    ];
    let observable = !accuracy.errors.is_empty();
    let p99 = accuracy.error_ms(0.99);
    let targets = [Target {
        key: "gap_error_p99_under_20ms",
        text: if observable {
            format!(
                "gap error p99 under 20 ms (now {p99:.1} ms over {} sends)",
                accuracy.errors.len()
            )
        } else {
            "gap error p99 under 20 ms: not observable (WatchCampaign announced no next_send_at near a send)".into()
        },
        met: observable.then_some(p99 < ERROR_P99_MS),
    }];
    let mut figures = Map::new();
    figures.insert("sessions".into(), json!(args.campaign_pacing_sessions));
    figures.insert("items_per_campaign".into(), json!(args.campaign_pacing_items));
    figures.insert("min_interval_ms".into(), json!(min.as_millis() as u64));
    figures.insert("max_interval_ms".into(), json!(max.as_millis() as u64));
    figures.insert("run_seconds".into(), json!(r3(run_secs)));
    figures.insert(
        "sends".into(),
        json!({"at_server": accuracy.sends, "expected": expected, "pending_at_end": pending}),
    );
    figures.insert(
        "gaps".into(),
        json!({
            "count": accuracy.gaps.len(), "p50_ms": r3(accuracy.gap_ms(0.50)), "p99_ms": r3(accuracy.gap_ms(0.99)),
            "min_ms": r3(min_gap), "max_ms": r3(max_of(&accuracy.gaps)),
            "outside_bounds_20ms": outside, "outside_bounds_20ms_share": r3(outside_share),
        }),
    );
    figures.insert(
        "gap_error".into(),
        json!({
            "matched": accuracy.errors.len(), "unmatched": accuracy.unmatched, "early": accuracy.early,
            "p50_ms": r3(accuracy.error_ms(0.50)), "p99_ms": r3(p99), "max_ms": r3(max_of(&accuracy.errors)),
        }),
    );
    figures.insert("watch_errors".into(), json!(watch_errors.len()));
    report::scenario("campaign_pacing", &table, &targets, figures);
    if accuracy.sends as u64 != expected {
        println!(
            "campaign: pacing: the server received {} of {expected} items",
            accuracy.sends
        );
    }
    if let Some(first) = watch_errors.first() {
        println!(
            "campaign: pacing: {} watches failed, the first: {first}",
            watch_errors.len()
        );
    }
}
