//! What the emulated server acknowledged, as a consumer of the daemon's outbound
//! events sees it: one EVENT_KIND_OUTBOUND stream from the oldest event (a fresh
//! daemon holds only the run's), counted as it arrives, and a bounded wait for a
//! number of final answers (SERVER_ACK or FAILED) with a progress line.

use std::time::{Duration, Instant};

use tokio::{sync::watch, task::JoinHandle};
use tonic::transport::Channel;
use wa_sessiond::proto::{
    event::Body, event_service_client::EventServiceClient, EventKind, MessageStatus, StreamEventsRequest,
};

use super::rpc::PROGRESS_EVERY;

/// A wait that sees no new answer this long ends with what arrived.
const STALL: Duration = Duration::from_secs(30);

/// The outbound events counted so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    pub sent: u64,
    pub acked: u64,
    pub failed: u64,
    /// SERVER_ACKs whose update names a campaign (`campaign_id` set).
    pub acked_in_campaign: u64,
    /// When the last SERVER_ACK or FAILED arrived.
    pub last: Option<Instant>,
}

impl Tally {
    /// Messages with a final answer from the server.
    pub fn answered(&self) -> u64 {
        self.acked + self.failed
    }
}

/// The consumer stream, counting in the background; stops when dropped.
pub struct Acks {
    tally: watch::Receiver<Tally>,
    task: JoinHandle<()>,
}

impl Acks {
    /// Opens the stream (its headers came back before this returns).
    pub async fn follow(channel: Channel) -> Result<Self, String> {
        let request = StreamEventsRequest {
            kinds: vec![EventKind::Outbound as i32],
            from_beginning: true,
            ..Default::default()
        };
        let mut stream = EventServiceClient::new(channel)
            .stream_events(request)
            .await
            .map_err(|e| format!("StreamEvents failed: {}", e.message()))?
            .into_inner();
        let (tx, tally) = watch::channel(Tally::default());
        let task = tokio::spawn(async move {
            while let Ok(Some(event)) = stream.message().await {
                let Some(Body::Outbound(update)) = event.body else {
                    continue;
                };
                let now = Instant::now();
                tx.send_modify(|t| match MessageStatus::try_from(update.status) {
                    Ok(MessageStatus::Sent) => t.sent += 1,
                    Ok(MessageStatus::ServerAck) => {
                        t.acked += 1;
                        t.acked_in_campaign += u64::from(!update.campaign_id.is_empty());
                        t.last = Some(now);
                    }
                    Ok(MessageStatus::Failed) => {
                        t.failed += 1;
                        t.last = Some(now);
                    }
                    _ => {}
                });
            }
        });
        Ok(Self { tally, task })
    }

    /// The counts now.
    pub fn now(&self) -> Tally {
        *self.tally.borrow()
    }

    /// Waits until `expected` messages have a final answer, or none came for
    /// STALL; says how far it is every PROGRESS_EVERY.
    pub async fn wait(&mut self, expected: u64, label: &str) -> Tally {
        let mut last_progress = (self.now().answered(), Instant::now());
        loop {
            let done = self.tally.wait_for(|t| t.answered() >= expected);
            if let Ok(Ok(tally)) = tokio::time::timeout(PROGRESS_EVERY, done).await {
                return *tally;
            }
            let tally = self.now();
            println!(
                "campaign: {label}: {} of {expected} acked by the server",
                tally.answered()
            );
            if tally.answered() > last_progress.0 {
                last_progress = (tally.answered(), Instant::now());
            } else if last_progress.1.elapsed() >= STALL || self.task.is_finished() {
                println!("campaign: {label}: no answer for {STALL:?}; counting what arrived");
                return tally;
            }
        }
    }
}

impl Drop for Acks {
    fn drop(&mut self) {
        self.task.abort();
    }
}
