//! campaign throughput: N sessions (`--campaign-sessions`, 100) x M items
//! (`--campaign-items`, 1,000) at interval 0, in four runs, each on a fresh daemon
//! with N linked sessions and one consumer of the outbound events:
//! 1. direct: SendMessage, each session sending its M texts one after another (one
//!    call in flight per session, as a campaign at interval 0 sends);
//! 2. campaigns: one campaign per session with the same texts to the same chats,
//!    created paused and filled (1,000 items a call), then all resumed;
//! 3. direct again, as run 1: runs 1 and 3 bracket the campaigns, so that a
//!    machine that got slower or faster meanwhile moves the baseline too;
//! 4. direct at the campaigns' rate: SendMessage paced at run 2's acked/s, round
//!    robin over the sessions.
//!
//! Per run: items server-acked per second (from the first call, or the first
//! ResumeCampaign, to the last SERVER_ACK at the consumer) and the daemon's CPU per
//! item (from /proc; run 2 counts the queueing too). Targets (issue 21): the
//! campaigns' rate within 1.2 x of the mean of runs 1 and 3, their CPU per item
//! within 1.2 x of run 4's (the same rate, so group commit batches alike).

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use wa_sessiond::proto::{CampaignCounts, CampaignState};

use crate::{
    child::BenchEnv,
    client,
    report::{self, r3, row, Target},
};

use super::{
    acks::Acks,
    direct::{self, Shape},
    linked_daemon,
    rpc::{self, Plan},
};

/// The bound on both ratios.
const WITHIN: f64 = 1.2;

/// The event log's writer thread: every send's writes go through it, so its CPU
/// per item is where campaigns and direct sends differ.
const WRITER: &str = "event-log";

/// One run's figures.
#[derive(Debug, Default)]
struct Run {
    /// Items asked for (calls made, or items queued).
    items: u64,
    acked: u64,
    failed: u64,
    /// SERVER_ACK updates that named their campaign.
    in_campaign: u64,
    errors: u64,
    first_error: Option<String>,
    /// Before the sending: queueing the campaigns (run 2 only).
    queue_secs: f64,
    /// From the first call (or resume) to the last SERVER_ACK or FAILED.
    secs: f64,
    /// The daemon's CPU over the run, queueing included.
    cpu: Duration,
    /// The event log writer thread's share of it.
    writer_cpu: Duration,
}

impl Run {
    fn per_s(&self) -> f64 {
        self.acked as f64 / self.secs.max(1e-9)
    }

    fn cpu_us_per_item(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.acked.max(1) as f64
    }

    fn writer_us_per_item(&self) -> f64 {
        self.writer_cpu.as_secs_f64() * 1e6 / self.acked.max(1) as f64
    }

    fn cores(&self) -> f64 {
        self.cpu.as_secs_f64() / (self.queue_secs + self.secs).max(1e-9)
    }

    fn cells(&self, name: String) -> Vec<String> {
        row(&[
            &name,
            &self.acked,
            &format!("{:.0}", self.per_s()),
            &format!("{:.1}", self.secs),
            &format!("{:.0} µs, {:.2} cores", self.cpu_us_per_item(), self.cores()),
            &format!("{:.0} µs", self.writer_us_per_item()),
            &self.failed,
        ])
    }

    fn json(&self) -> Value {
        json!({
            "items": self.items, "server_acked": self.acked, "failed": self.failed, "errors": self.errors,
            "first_error": self.first_error, "acked_per_s": r3(self.per_s()), "seconds": r3(self.secs),
            "queue_seconds": r3(self.queue_secs), "daemon_cpu_us_per_item": r3(self.cpu_us_per_item()),
            "daemon_cpu_cores": r3(self.cores()), "writer_cpu_us_per_item": r3(self.writer_us_per_item()),
        })
    }
}

/// Runs the four runs and prints their figures.
pub async fn run(env: &BenchEnv) -> Result<(), String> {
    let (sessions, items) = (env.args.campaign_sessions as usize, env.args.campaign_items as usize);
    println!("campaign: throughput: {sessions} sessions x {items} items; SendMessage directly, one call in flight per session");
    let direct = direct_run(env, "direct", sessions, items, Shape::PerSession).await?;
    println!("campaign: throughput: the same items as {sessions} campaigns at interval 0");
    let (campaigns, counts, done) = campaign_run(env, sessions, items).await?;
    let rate = campaigns.per_s();
    if campaigns.acked == 0 || rate < 1.0 {
        return Err(format!(
            "the campaigns sent {} of {} items ({} failed): nothing to compare",
            campaigns.acked, campaigns.items, campaigns.failed
        ));
    }
    println!("campaign: throughput: SendMessage directly again, one call in flight per session");
    let again = direct_run(env, "again", sessions, items, Shape::PerSession).await?;
    println!("campaign: throughput: SendMessage directly at the campaigns' rate, {rate:.0}/s");
    let paced = direct_run(env, "paced", sessions, items, Shape::Paced(rate)).await?;
    print(sessions, items, [&direct, &campaigns, &again, &paced], &counts, done);
    Ok(())
}

async fn direct_run(env: &BenchEnv, label: &str, sessions: usize, items: usize, shape: Shape) -> Result<Run, String> {
    let (daemon, channels, ids) = linked_daemon(env, &format!("campaign-{label}"), sessions).await?;
    let mut acks = Acks::follow(client::channel(daemon.addr).await?).await?;
    let (cpu, writer, start) = (daemon.cpu_time(), daemon.thread_cpu_time(WRITER), Instant::now());
    let answers = direct::send(&channels, &ids, items, shape).await;
    let tally = acks.wait(answers.accepted, label).await;
    let run = Run {
        items: (sessions * items) as u64,
        acked: tally.acked,
        failed: tally.failed,
        in_campaign: tally.acked_in_campaign,
        errors: answers.errors,
        first_error: answers.first_error,
        queue_secs: 0.0,
        secs: tally.last.map_or(start.elapsed(), |l| l - start).as_secs_f64(),
        cpu: daemon.cpu_time().saturating_sub(cpu),
        writer_cpu: daemon.thread_cpu_time(WRITER).saturating_sub(writer),
    };
    daemon.stop(Duration::from_secs(30)).await?;
    Ok(run)
}

/// Run 2; also the campaigns' counts added up and how many are DONE.
async fn campaign_run(env: &BenchEnv, sessions: usize, items: usize) -> Result<(Run, CampaignCounts, usize), String> {
    let (daemon, channels, ids) = linked_daemon(env, "campaign-campaigns", sessions).await?;
    let mut acks = Acks::follow(client::channel(daemon.addr).await?).await?;
    let campaign_ids: Vec<String> = ids.iter().map(|id| format!("tp-{id}")).collect();
    let plan = Plan {
        campaigns: campaign_ids.iter().cloned().zip(ids.iter().cloned()).collect(),
        items,
        pacing: rpc::pacing(Duration::ZERO, Duration::ZERO),
        items_in_create: true,
        label: "throughput".into(),
    };
    let (cpu, writer) = (daemon.cpu_time(), daemon.thread_cpu_time(WRITER));
    let queued = rpc::queue(&channels, &plan).await?;
    let start = Instant::now();
    rpc::resume_all(&channels, &campaign_ids).await?;
    let total = (sessions * items) as u64;
    let tally = acks.wait(total, "campaigns").await;
    let cpu = daemon.cpu_time().saturating_sub(cpu);
    let writer_cpu = daemon.thread_cpu_time(WRITER).saturating_sub(writer);
    let listed = rpc::list_all(&channels[0]).await?;
    let done = listed.iter().filter(|c| c.state == CampaignState::Done as i32).count();
    let run = Run {
        items: queued.items,
        acked: tally.acked,
        failed: tally.failed,
        in_campaign: tally.acked_in_campaign,
        errors: 0,
        first_error: None,
        queue_secs: queued.secs,
        secs: tally.last.map_or(start.elapsed(), |l| l - start).as_secs_f64(),
        cpu,
        writer_cpu,
    };
    daemon.stop(Duration::from_secs(30)).await?;
    Ok((run, rpc::sum_counts(&listed), done))
}

fn print(sessions: usize, items: usize, runs: [&Run; 4], counts: &CampaignCounts, done: usize) {
    let [direct, campaigns, again, paced] = runs;
    let table = vec![
        row(&[
            &"",
            &"acked",
            &"acked/s",
            &"seconds",
            &"daemon CPU/item, use",
            &"writer CPU/item",
            &"failed",
        ]),
        direct.cells("SendMessage directly, 1 in flight per session".into()),
        campaigns.cells(format!(
            "campaigns at interval 0 (queued in {:.1} s)",
            campaigns.queue_secs
        )),
        again.cells("SendMessage directly again, 1 in flight".into()),
        paced.cells(format!("SendMessage directly at {:.0}/s", campaigns.per_s())),
    ];
    let direct_rate = (direct.per_s() + again.per_s()) / 2.0;
    let rate_ratio = campaigns.per_s() / direct_rate.max(1e-9);
    let cpu_ratio = campaigns.cpu_us_per_item() / paced.cpu_us_per_item().max(1e-9);
    let full_size = sessions >= 100 && items >= 1000;
    let targets = [
        Target {
            key: "campaign_rate_within_1_2x_of_direct",
            text: format!(
                "campaign items/s within 1.2 x of direct SendMessage, runs before and after (now {rate_ratio:.2} x)"
            ),
            met: full_size.then_some(rate_ratio * WITHIN >= 1.0),
        },
        Target {
            key: "campaign_cpu_per_item_within_1_2x_of_direct_at_same_rate",
            text: format!(
                "campaign CPU per item within 1.2 x of direct SendMessage at the same rate (now {cpu_ratio:.2} x)"
            ),
            met: full_size.then_some(cpu_ratio <= WITHIN),
        },
    ];
    let mut figures = Map::new();
    figures.insert("sessions".into(), json!(sessions));
    figures.insert("items_per_session".into(), json!(items));
    figures.insert("direct".into(), direct.json());
    figures.insert("direct_again".into(), again.json());
    figures.insert("direct_mean_acked_per_s".into(), json!(r3(direct_rate)));
    let mut campaign_json = campaigns.json();
    campaign_json["acks_naming_their_campaign"] = json!(campaigns.in_campaign);
    campaign_json["campaigns_done"] = json!(done);
    campaign_json["counts"] = json!({
        "total": counts.total, "pending": counts.pending, "handed_over": rpc::handed_over(counts),
        "server_ack": counts.server_ack, "failed": counts.failed,
    });
    figures.insert("campaigns".into(), campaign_json);
    figures.insert("direct_at_campaign_rate".into(), paced.json());
    figures.insert("rate_ratio_to_direct".into(), json!(r3(rate_ratio)));
    figures.insert("cpu_per_item_ratio_to_direct_same_rate".into(), json!(r3(cpu_ratio)));
    report::scenario("campaign_throughput", &table, &targets, figures);
    if campaigns.in_campaign < campaigns.acked {
        println!(
            "campaign: throughput: {} of {} SERVER_ACK updates did not name their campaign (campaign_id empty)",
            campaigns.acked - campaigns.in_campaign,
            campaigns.acked
        );
    }
    if counts.pending > 0 || done < sessions {
        println!(
            "campaign: throughput: at the end {} items were still pending and {done} of {sessions} campaigns DONE",
            counts.pending
        );
    }
    for (name, run) in [("direct", direct), ("again", again), ("paced", paced)] {
        if let Some(error) = &run.first_error {
            println!(
                "campaign: throughput: {name}: {} calls failed, the first: {error}",
                run.errors
            );
        }
    }
}
