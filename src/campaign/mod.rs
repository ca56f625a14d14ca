//! The campaign runner: one pacer per session with campaigns to send (a tokio task
//! each, [`pacer`]), started when a campaign is created or resumed, at startup for
//! every session with a campaign that is not over, and by a sweep that also
//! refreshes the campaign gauges. Pacers hold nothing that is not on disk (the
//! tables are the truth), so a plain task that a sweep restarts is all the
//! supervision they need. The rules they follow are in [`plan`].

mod pacer;
pub mod plan;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::{
    events::{campaign::PauseReason, EventLog},
    metrics::{Metrics, StateLabels},
    registry::Sessions,
};

/// How often the sweep starts missing pacers and refreshes the gauges.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// What the pacers share.
pub(crate) struct Shared {
    log: EventLog,
    door: Sessions,
    metrics: Arc<Metrics>,
    /// Each session's pacer.
    pacers: Mutex<HashMap<String, JoinHandle<()>>>,
    /// When each campaign's next item is planned (only while one is).
    next_send: Mutex<HashMap<String, SystemTime>>,
}

/// The runner (cheap to clone).
#[derive(Clone)]
pub struct Campaigns {
    shared: Arc<Shared>,
}

impl Campaigns {
    /// A runner over `log`, sending through `door`.
    pub fn new(log: EventLog, door: Sessions, metrics: Arc<Metrics>) -> Self {
        let shared = Arc::new(Shared {
            log,
            door,
            metrics,
            pacers: Mutex::default(),
            next_send: Mutex::default(),
        });
        Self { shared }
    }

    /// The event log the campaigns live in.
    pub fn log(&self) -> &EventLog {
        &self.shared.log
    }

    /// The door into the sessions.
    pub fn door(&self) -> &Sessions {
        &self.shared.door
    }

    /// Starts the sweep (at once, then every few seconds): a pacer for every
    /// session with a campaign that is not over. Ends when the log closes.
    pub fn start(&self) -> JoinHandle<()> {
        let runner = self.clone();
        tokio::spawn(async move {
            loop {
                match runner.shared.log.campaign_sessions().await {
                    Ok(sessions) => sessions.iter().for_each(|id| runner.kick(id)),
                    Err(crate::store::DbError::Closed) => return,
                    Err(error) => warn!(%error, "could not read which sessions have campaigns; trying again"),
                }
                runner.refresh_gauges().await;
                tokio::time::sleep(SWEEP_EVERY).await;
            }
        })
    }

    /// Makes sure `session_id` has a pacer (a running one sees the change itself).
    pub fn kick(&self, session_id: &str) {
        let mut pacers = self.shared.pacers.lock();
        if pacers.get(session_id).is_some_and(|pacer| !pacer.is_finished()) {
            return;
        }
        let task = tokio::spawn(pacer::run(self.shared.clone(), session_id.to_owned()));
        pacers.insert(session_id.to_owned(), task);
    }

    /// When a campaign's next item is planned (None: none is).
    pub fn next_send_at(&self, campaign_id: &str) -> Option<SystemTime> {
        self.shared.next_send.lock().get(campaign_id).copied()
    }

    async fn refresh_gauges(&self) {
        match self.shared.log.campaign_gauges().await {
            Ok((by_state, counts)) => {
                let campaigns: Vec<_> = by_state
                    .into_iter()
                    .map(|(state, reason, count)| {
                        let labels = StateLabels {
                            state: state.as_str_name().trim_start_matches("CAMPAIGN_STATE_").to_owned(),
                            reason: match reason {
                                PauseReason::Unspecified => "none".to_owned(),
                                reason => reason.as_str_name().trim_start_matches("PAUSE_REASON_").to_owned(),
                            },
                        };
                        (labels, count)
                    })
                    .collect();
                let c = counts;
                let items = [
                    ("PENDING", c.pending + c.sending),
                    ("SENT", c.sent),
                    ("SERVER_ACK", c.server_ack),
                    ("DELIVERED", c.delivered),
                    ("READ", c.read),
                    ("FAILED", c.failed),
                    ("SKIPPED", c.skipped),
                    ("CANCELLED", c.cancelled),
                ]
                .map(|(status, n)| (status, n as i64));
                self.shared.metrics.campaigns.set_counts(&campaigns, &items);
            }
            Err(error) => warn!(%error, "could not count the campaigns for the metrics"),
        }
    }
}
