//! campaign memory: 1,000,000 items (`--campaign-queued-items`) queued over 1,000
//! campaigns (`--campaign-queued-campaigns`) on 10 sessions that are created but
//! never linked, each campaign created paused (so nothing sends) and filled by
//! AddCampaignItems, 1,000 items a call, 8 campaigns at a time. Figures: the
//! daemon's VmRSS growth from before the first call to after the last answer
//! (target: under 64 MiB, items live on disk), its peak growth over the work, and
//! items accepted per second. A warm-up campaign of 1,000 items goes in before
//! the RSS is first read.

use std::time::Duration;

use serde_json::{json, Map};
use wa_sessiond::proto::session_service_client::SessionServiceClient;

use crate::{
    child::BenchEnv,
    client,
    media_measure::Peak,
    report::{self, r3, row, Target},
};

use super::{
    rpc::{self, Plan, Queued},
    DAEMON_FLAGS,
};

/// Sessions the campaigns are spread over (created, never linked).
const SESSIONS: usize = 10;
/// The bound on RSS growth, MiB.
const GROWTH_MIB: f64 = 64.0;
/// The size: the target is judged from here.
const FULL_SIZE: u64 = 1_000_000;
/// The most items a campaign holds.
const MAX_PER_CAMPAIGN: usize = 1_000_000;

/// Runs the part and prints its figures.
pub async fn run(env: &BenchEnv) -> Result<(), String> {
    let campaigns = env.args.campaign_queued_campaigns as usize;
    let per_campaign = (env.args.campaign_queued_items as usize / campaigns).max(1);
    if per_campaign > MAX_PER_CAMPAIGN {
        return Err(format!(
            "{per_campaign} items a campaign is over the {MAX_PER_CAMPAIGN} a campaign holds: raise --campaign-queued-campaigns"
        ));
    }
    let label = "campaign-memory";
    let daemon = env.daemon(label, &env.data_dir(label), &DAEMON_FLAGS).await?;
    let channels = client::channels(daemon.addr, env.args.connections).await?;
    rpc::probe(&channels[0]).await?;
    let ids: Vec<String> = (0..SESSIONS).map(|i| format!("mem{i:02}")).collect();
    let mut sessions = SessionServiceClient::new(channels[0].clone());
    for id in &ids {
        sessions
            .create_session(client::create(id))
            .await
            .map_err(|e| format!("CreateSession {id} failed: {}", e.message()))?;
    }
    let warm_up = Plan {
        campaigns: vec![("mem-warm-up".into(), ids[0].clone())],
        items: rpc::PER_CALL,
        pacing: rpc::pacing(Duration::ZERO, Duration::ZERO),
        items_in_create: false,
        label: "memory warm-up".into(),
    };
    rpc::queue(&channels, &warm_up).await?;

    let plan = Plan {
        campaigns: (0..campaigns)
            .map(|n| (format!("mem-{n:06}"), ids[n % SESSIONS].clone()))
            .collect(),
        items: per_campaign,
        label: "memory".into(),
        ..warm_up
    };
    let total = (campaigns * per_campaign) as u64;
    println!("campaign: memory: queueing {total} items over {campaigns} paused campaigns, 1,000 a call");
    let rss_before = daemon.rss_kib()?;
    let peak = Peak::new(daemon.pid());
    let (queued, peak_kib) = peak.over(rpc::queue(&channels, &plan)).await?;
    let rss_after = daemon.rss_kib()?;
    let counts = rpc::sum_counts(&rpc::list_all(&channels[0]).await?);
    drop(channels);
    daemon.stop(Duration::from_secs(60)).await?;

    let figures = Figures {
        queued,
        total,
        campaigns,
        rss_before,
        rss_after,
        peak_kib,
        peak_method: peak.method(),
        listed_total: counts.total,
        handed_over: rpc::handed_over(&counts),
    };
    figures.print();
    Ok(())
}

/// What the part measured.
struct Figures {
    queued: Queued,
    /// Items asked for (the warm-up's not counted).
    total: u64,
    campaigns: usize,
    /// VmRSS, KiB.
    rss_before: u64,
    rss_after: u64,
    /// Peak growth over the work, KiB.
    peak_kib: u64,
    peak_method: &'static str,
    /// Items ListCampaigns counted at the end, warm-up included.
    listed_total: u64,
    /// Items that went out anyway (should be none).
    handed_over: u64,
}

impl Figures {
    fn print(&self) {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let growth = mib(self.rss_after.saturating_sub(self.rss_before));
        let per_s = self.queued.items as f64 / self.queued.secs.max(1e-9);
        let table = vec![
            row(&[
                &"",
                &"items",
                &"calls",
                &"seconds",
                &"items/s",
                &"RSS growth MiB",
                &"peak growth MiB",
            ]),
            row(&[
                &format!("{} paused campaigns, AddCampaignItems 1,000 a call", self.campaigns),
                &self.queued.items,
                &self.queued.calls,
                &format!("{:.1}", self.queued.secs),
                &format!("{per_s:.0}"),
                &format!("{growth:.1}"),
                &format!("{:.1}", mib(self.peak_kib)),
            ]),
        ];
        let targets = [Target {
            key: "rss_growth_under_64mib_for_1m_queued_items",
            text: format!(
                "RSS growth under 64 MiB for 1,000,000 queued items (now {growth:.1} MiB for {})",
                self.queued.items
            ),
            met: (self.total >= FULL_SIZE).then_some(growth < GROWTH_MIB),
        }];
        let mut figures = Map::new();
        figures.insert("campaigns".into(), json!(self.campaigns));
        figures.insert("items".into(), json!(self.queued.items));
        figures.insert("calls".into(), json!(self.queued.calls));
        figures.insert("seconds".into(), json!(r3(self.queued.secs)));
        figures.insert("items_per_s".into(), json!(r3(per_s)));
        figures.insert("rss_before_mib".into(), json!(r3(mib(self.rss_before))));
        figures.insert("rss_after_mib".into(), json!(r3(mib(self.rss_after))));
        figures.insert("rss_growth_mib".into(), json!(r3(growth)));
        figures.insert("peak_growth_mib".into(), json!(r3(mib(self.peak_kib))));
        figures.insert("peak_method".into(), json!(self.peak_method));
        figures.insert("items_listed".into(), json!(self.listed_total));
        figures.insert("items_sent".into(), json!(self.handed_over));
        report::scenario("campaign_memory", &table, &targets, figures);
        println!(
            "campaign: memory: VmRSS {:.1} MiB before, {:.1} MiB after; ListCampaigns counts {} items (warm-up's {} included), {} sent",
            mib(self.rss_before),
            mib(self.rss_after),
            self.listed_total,
            rpc::PER_CALL,
            self.handed_over
        );
    }
}
