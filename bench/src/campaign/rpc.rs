//! The CampaignService calls the parts share: the probe that turns UNIMPLEMENTED
//! into one clear message, the items every part sends, queueing campaigns (created
//! paused, filled 1,000 items a call, with a progress line), resuming and listing
//! them.

use std::{
    ops::Range,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime},
};

use tokio::task::JoinSet;
use tonic::{transport::Channel, Code, Status};
use wa_sessiond::proto::{
    campaign_item::Content, campaign_service_client::CampaignServiceClient, AddCampaignItemsRequest, Campaign,
    CampaignCounts, CampaignItem, CreateCampaignRequest, GetCampaignRequest, ListCampaignsRequest, PacingPolicy,
    ResumeCampaignRequest,
};

use crate::send_baseline::chat;

/// How an UNIMPLEMENTED answer's message starts (the scenario stops on it).
pub const NOT_IMPLEMENTED: &str = "CampaignService not implemented";
/// Items a CreateCampaign or AddCampaignItems call carries at most.
pub const PER_CALL: usize = 1000;
/// Campaigns being created and filled at once.
const IN_FLIGHT: usize = 8;
/// How often long work says how far it is.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The campaign service over one connection.
pub type Campaigns = CampaignServiceClient<Channel>;

/// A failed call in words; UNIMPLEMENTED becomes [`NOT_IMPLEMENTED`].
pub fn failed(what: &str, status: &Status) -> String {
    if status.code() == Code::Unimplemented {
        return format!(
            "{NOT_IMPLEMENTED}: the daemon answered UNIMPLEMENTED to {what}; build it from a branch with issue 21's campaigns"
        );
    }
    format!("{what} failed: {:?}: {}", status.code(), status.message())
}

/// Fails with [`NOT_IMPLEMENTED`] unless the daemon serves CampaignService (an
/// unknown campaign is NOT_FOUND there).
pub async fn probe(channel: &Channel) -> Result<(), String> {
    let request = GetCampaignRequest {
        campaign_id: "bench-probe".into(),
    };
    match Campaigns::new(channel.clone()).get_campaign(request).await {
        Ok(_) => Ok(()),
        Err(status) if status.code() == Code::NotFound => Ok(()),
        Err(status) => Err(failed("GetCampaign", &status)),
    }
}

/// Item `i` of campaign `campaign`'s text: unique, 40 bytes like `send`'s.
pub fn text(campaign: usize, i: usize) -> String {
    format!("campaign bench {campaign:05} message {i:011}")
}

/// Item `i` of campaign `campaign`'s chat (one of 1,000).
pub fn recipient(campaign: usize, i: usize) -> String {
    chat(campaign * 7 + i)
}

/// Items `range` of campaign `campaign`, ids their positions, to 1,000 chats.
pub fn items(campaign: usize, range: Range<usize>) -> Vec<CampaignItem> {
    range
        .map(|i| CampaignItem {
            item_id: i.to_string(),
            to: recipient(campaign, i),
            content: Some(Content::Text(text(campaign, i))),
            ..Default::default()
        })
        .collect()
}

/// A PacingPolicy with these gaps and nothing else (no caps, no typing).
pub fn pacing(min: Duration, max: Duration) -> PacingPolicy {
    let proto = |d: Duration| prost_types::Duration::try_from(d).unwrap_or_default();
    PacingPolicy {
        min_interval: Some(proto(min)),
        max_interval: Some(proto(max)),
        ..Default::default()
    }
}

/// The campaigns to queue: each (campaign id, session id) gets `items` items.
pub struct Plan {
    pub campaigns: Vec<(String, String)>,
    pub items: usize,
    pub pacing: PacingPolicy,
    /// CreateCampaign carries the first 1,000 items (else it carries none and
    /// every item goes in with AddCampaignItems).
    pub items_in_create: bool,
    /// Names the work in the progress line.
    pub label: String,
}

/// How long queueing took.
pub struct Queued {
    /// From the first call to the last answer.
    pub secs: f64,
    pub items: u64,
    pub calls: u64,
}

/// Creates the plan's campaigns PAUSED (OPERATOR) and fills them, IN_FLIGHT
/// campaigns at a time over `channels`; says how far it is every PROGRESS_EVERY.
pub async fn queue(channels: &[Channel], plan: &Plan) -> Result<Queued, String> {
    let total = (plan.campaigns.len() * plan.items) as u64;
    let (queued, calls) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    let mut next = plan.campaigns.iter().enumerate();
    loop {
        while tasks.len() < IN_FLIGHT {
            let Some((n, (campaign_id, session_id))) = next.next() else {
                break;
            };
            let mut client = Campaigns::new(channels[n % channels.len()].clone());
            let first = if plan.items_in_create {
                plan.items.min(PER_CALL)
            } else {
                0
            };
            let create = CreateCampaignRequest {
                campaign_id: campaign_id.clone(),
                session_id: session_id.clone(),
                items: items(n, 0..first),
                pacing: Some(plan.pacing),
                start_paused: true,
                ..Default::default()
            };
            let (count, made, wanted) = (queued.clone(), calls.clone(), plan.items);
            let campaign_id = campaign_id.clone();
            tasks.spawn(async move {
                client
                    .create_campaign(create)
                    .await
                    .map_err(|s| failed("CreateCampaign", &s))?;
                made.fetch_add(1, Ordering::Relaxed);
                count.fetch_add(first as u64, Ordering::Relaxed);
                for from in (first..wanted).step_by(PER_CALL) {
                    let range = from..(from + PER_CALL).min(wanted);
                    let added = range.len() as u64;
                    let request = AddCampaignItemsRequest {
                        campaign_id: campaign_id.clone(),
                        items: items(n, range),
                    };
                    client
                        .add_campaign_items(request)
                        .await
                        .map_err(|s| failed("AddCampaignItems", &s))?;
                    made.fetch_add(1, Ordering::Relaxed);
                    count.fetch_add(added, Ordering::Relaxed);
                }
                Ok::<_, String>(())
            });
        }
        tokio::select! {
            done = tasks.join_next() => match done {
                Some(done) => done.map_err(|e| e.to_string())??,
                None => break,
            },
            _ = progress.tick() => {
                println!("campaign: {}: {} of {total} items queued", plan.label, queued.load(Ordering::Relaxed));
            }
        }
    }
    Ok(Queued {
        secs: start.elapsed().as_secs_f64(),
        items: queued.load(Ordering::Relaxed),
        calls: calls.load(Ordering::Relaxed),
    })
}

/// Resumes the campaigns, all at once; returns when every call answered.
pub async fn resume_all(channels: &[Channel], ids: &[String]) -> Result<(), String> {
    let mut tasks = JoinSet::new();
    for (n, id) in ids.iter().enumerate() {
        let mut client = Campaigns::new(channels[n % channels.len()].clone());
        let request = ResumeCampaignRequest {
            campaign_id: id.clone(),
        };
        tasks.spawn(async move {
            client
                .resume_campaign(request)
                .await
                .map_err(|s| failed("ResumeCampaign", &s))
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Every campaign of every session, paging through ListCampaigns.
pub async fn list_all(channel: &Channel) -> Result<Vec<Campaign>, String> {
    let mut client = Campaigns::new(channel.clone());
    let (mut all, mut page_token) = (Vec::new(), String::new());
    loop {
        let request = ListCampaignsRequest {
            session_id: String::new(),
            page_size: 1000,
            page_token,
        };
        let page = client
            .list_campaigns(request)
            .await
            .map_err(|s| failed("ListCampaigns", &s))?
            .into_inner();
        all.extend(page.campaigns);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}

/// The campaigns' counts added up.
pub fn sum_counts(campaigns: &[Campaign]) -> CampaignCounts {
    let mut sum = CampaignCounts::default();
    for c in campaigns.iter().filter_map(|c| c.counts.as_ref()) {
        sum.total += c.total;
        sum.pending += c.pending;
        sum.sent += c.sent;
        sum.server_ack += c.server_ack;
        sum.delivered += c.delivered;
        sum.read += c.read;
        sum.failed += c.failed;
        sum.skipped += c.skipped;
        sum.cancelled += c.cancelled;
    }
    sum
}

/// Items handed to WhatsApp (SENT or further).
pub fn handed_over(counts: &CampaignCounts) -> u64 {
    counts.sent + counts.server_ack + counts.delivered + counts.read
}

/// A protobuf time as the system's (before 1970 or unreadable: the epoch).
pub fn system_time(at: &prost_types::Timestamp) -> SystemTime {
    SystemTime::try_from(*at).unwrap_or(SystemTime::UNIX_EPOCH)
}
