//! campaign: CampaignService (issue 21) on the emulated WhatsApp, in three parts,
//! each on a fresh daemon and data dir (`--campaign-parts`):
//! - throughput ([`throughput`]): 100 sessions x 1,000 items at interval 0: items
//!   server-acked per second and the daemon's CPU per item, against SendMessage
//!   called directly over the same sessions (at its own pace, one call in flight
//!   per session, before and after the campaigns; then at the campaigns' rate,
//!   for the CPU per item);
//! - pacing ([`pacing`]): 50 sessions x 40 items at 1-2 s: the gaps between a
//!   session's sends as the emulated server received them, and the gap error (a
//!   send's time minus the `next_send_at` WatchCampaign announced for it);
//! - memory ([`memory`]): 1,000,000 items queued over 1,000 paused campaigns on
//!   sessions that are not linked: the daemon's RSS growth, and items accepted/s.
//!
//! A daemon without the service (it answers UNIMPLEMENTED) ends the scenario with
//! "CampaignService not implemented" before anything is measured.

mod acks;
mod direct;
mod gaps;
mod memory;
mod pacing;
mod rpc;
mod throughput;

use clap::ValueEnum;
use tonic::transport::Channel;

use crate::{
    child::{BenchEnv, Proc},
    client,
};

/// One part of the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Part {
    /// Items/s and CPU per item at interval 0, against direct SendMessage.
    Throughput,
    /// The gap error at 1-2 s.
    Pacing,
    /// RSS growth for a million queued items.
    Memory,
}

/// The daemon flags every part uses: connects are not the bottleneck, and linking
/// takes 1 ms at the emulated server.
const DAEMON_FLAGS: [&str; 4] = ["--max-concurrent-connects", "64", "--emulator-qr-delay", "1ms"];

/// Runs the chosen parts in order; each prints its own figures. An UNIMPLEMENTED
/// answer stops the scenario at once; another failure is reported and the next
/// part runs.
pub async fn run(env: &BenchEnv) -> Result<(), String> {
    let mut failed = Vec::new();
    for &part in &env.args.campaign_parts {
        let outcome = match part {
            Part::Throughput => throughput::run(env).await,
            Part::Pacing => pacing::run(env).await,
            Part::Memory => memory::run(env).await,
        };
        match outcome {
            Ok(()) => {}
            Err(e) if e.starts_with(rpc::NOT_IMPLEMENTED) => return Err(e),
            Err(e) => {
                println!("campaign: {part:?} could not finish: {e}\n");
                failed.push(format!("{part:?}: {e}"));
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// Starts a fresh daemon, checks it serves CampaignService, links `sessions`.
pub async fn linked_daemon(
    env: &BenchEnv,
    label: &str,
    sessions: usize,
) -> Result<(Proc, Vec<Channel>, Vec<String>), String> {
    let daemon = env.daemon(label, &env.data_dir(label), &DAEMON_FLAGS).await?;
    let channels = client::channels(daemon.addr, env.args.connections).await?;
    rpc::probe(&channels[0]).await?;
    let ids: Vec<String> = (0..sessions).map(|i| format!("cp{i:03}")).collect();
    println!("campaign: {label}: linking {sessions} sessions");
    client::connected_sessions(&channels[0], &ids).await?;
    Ok((daemon, channels, ids))
}
