//! `CampaignService`: checks a request, writes or reads the campaign tables
//! through the event log, tells the runner a session has work, and converts.
//! WatchCampaign follows the log's campaign changes (no polling), at most one
//! message every 250 ms.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{campaign_input as wire, streams::WireStream};
use crate::{
    campaign::Campaigns,
    domain::{input, SessionId},
    error::SessionError,
    events::campaign::{Action, CampaignRow, CampaignState, ItemStatus, NewCampaign, Written, MAX_ITEMS},
    proto::{self, campaign_service_server::CampaignService},
};

/// The runner once the daemon has restored its state.
pub type CampaignSlot = Arc<OnceLock<Campaigns>>;

/// At most one WatchCampaign message this often.
const COALESCE: Duration = Duration::from_millis(250);

/// Serves `CampaignService`.
#[derive(Clone)]
pub struct CampaignApi {
    slot: CampaignSlot,
}

impl CampaignApi {
    /// Serves the runner in `slot` once it is there.
    pub fn new(slot: CampaignSlot) -> Self {
        Self { slot }
    }

    fn runner(&self) -> Result<&Campaigns, SessionError> {
        self.slot
            .get()
            .ok_or_else(|| SessionError::Unavailable("the daemon is restoring its state: retry shortly".into()))
    }

    async fn get(&self, campaign_id: &str) -> Result<CampaignRow, SessionError> {
        let id = wire::campaign_id(campaign_id)?;
        self.runner()?
            .log()
            .campaign(&id)
            .await
            .map_err(storage)?
            .ok_or_else(|| missing(&id))
    }

    fn wire(&self, row: CampaignRow) -> proto::Campaign {
        let next = self.slot.get().and_then(|runner| runner.next_send_at(&row.id));
        wire::campaign(row, next)
    }

    /// The campaign a write left, or the error it means.
    fn written(&self, written: Written, campaign_id: &str) -> Result<CampaignRow, SessionError> {
        match written {
            Written::Campaign(row) => Ok(*row),
            Written::Missing => Err(missing(campaign_id)),
            Written::Conflict(_) => Err(SessionError::AlreadyExists(format!(
                "campaign {campaign_id:?} exists with other content: use a new campaign_id, or AddCampaignItems to add items"
            ))),
            Written::TooMany(row) => Err(SessionError::ResourceExhausted(format!(
                "campaign {campaign_id:?} holds {} items and takes at most {MAX_ITEMS}: start another campaign",
                row.counts.total
            ))),
            Written::Final(row) => Err(SessionError::FailedPrecondition {
                message: format!(
                    "campaign {campaign_id:?} is {}: a finished campaign cannot be paused or resumed; create a new one",
                    row.state.as_str_name()
                ),
                status: None,
                reason: "CAMPAIGN_FINISHED",
            }),
        }
    }

    async fn act(&self, campaign_id: &str, action: Action) -> Result<Response<proto::Campaign>, Status> {
        let id = wire::campaign_id(campaign_id)?;
        let runner = self.runner()?;
        let written = runner.log().operate_campaign(&id, action).await.map_err(storage)?;
        let row = self.written(written, &id)?;
        if action == Action::Resume {
            runner.kick(&row.session_id);
        }
        Ok(Response::new(self.wire(row)))
    }
}

fn storage(error: crate::store::DbError) -> SessionError {
    SessionError::Unavailable(format!("the event log failed: {error}; try again"))
}

fn missing(campaign_id: &str) -> SessionError {
    SessionError::Missing(format!(
        "campaign {campaign_id:?} not found: create it first or check the id"
    ))
}

#[tonic::async_trait]
impl CampaignService for CampaignApi {
    async fn create_campaign(
        &self,
        request: Request<proto::CreateCampaignRequest>,
    ) -> Result<Response<proto::Campaign>, Status> {
        let body = request.into_inner();
        let id = wire::campaign_id(&body.campaign_id)?;
        let session = SessionId::parse(&body.session_id)?;
        let pacing = wire::pacing(body.pacing)?;
        let labels = input::labels(body.labels)?;
        let items = wire::items(body.items, 0)?;
        let runner = self.runner()?;
        runner.door().peek(session.clone()).await?;
        let fingerprint = wire::fingerprint(session.as_str(), &pacing, body.start_paused, &labels, &items);
        let new = NewCampaign {
            id: id.clone(),
            session_id: session.to_string(),
            pacing,
            start_paused: body.start_paused,
            labels,
            fingerprint,
            items,
        };
        let written = runner.log().create_campaign(new).await.map_err(storage)?;
        let row = self.written(written, &id)?;
        if row.session_id != session.as_str() {
            return Err(SessionError::AlreadyExists(format!(
                "campaign {id:?} exists on session {}: use a new campaign_id",
                row.session_id
            ))
            .into());
        }
        runner.kick(&row.session_id);
        Ok(Response::new(self.wire(row)))
    }

    async fn add_campaign_items(
        &self,
        request: Request<proto::AddCampaignItemsRequest>,
    ) -> Result<Response<proto::Campaign>, Status> {
        let body = request.into_inner();
        let current = self.get(&body.campaign_id).await?;
        let items = wire::items(body.items, current.counts.total)?;
        let runner = self.runner()?;
        let written = runner
            .log()
            .add_campaign_items(&current.id, items)
            .await
            .map_err(storage)?;
        let row = self.written(written, &current.id)?;
        runner.kick(&row.session_id);
        Ok(Response::new(self.wire(row)))
    }

    async fn get_campaign(
        &self,
        request: Request<proto::GetCampaignRequest>,
    ) -> Result<Response<proto::Campaign>, Status> {
        let row = self.get(&request.into_inner().campaign_id).await?;
        Ok(Response::new(self.wire(row)))
    }

    async fn list_campaigns(
        &self,
        request: Request<proto::ListCampaignsRequest>,
    ) -> Result<Response<proto::ListCampaignsResponse>, Status> {
        let body = request.into_inner();
        let session = match body.session_id.as_str() {
            "" => None,
            raw => Some(SessionId::parse(raw)?.to_string()),
        };
        let size = page_size(body.page_size)?;
        let after = match body.page_token.as_str() {
            "" => String::new(),
            token => wire::campaign_id(token).map_err(|_| {
                SessionError::InvalidArgument("page_token is invalid: pass next_page_token as given".into())
            })?,
        };
        let rows = self
            .runner()?
            .log()
            .campaigns(session, after, size + 1)
            .await
            .map_err(storage)?;
        let more = rows.len() > size;
        let campaigns: Vec<_> = rows.into_iter().take(size).map(|row| self.wire(row)).collect();
        let next_page_token = match campaigns.last() {
            Some(last) if more => last.campaign_id.clone(),
            _ => String::new(),
        };
        Ok(Response::new(proto::ListCampaignsResponse {
            campaigns,
            next_page_token,
        }))
    }

    async fn pause_campaign(
        &self,
        request: Request<proto::PauseCampaignRequest>,
    ) -> Result<Response<proto::Campaign>, Status> {
        self.act(&request.into_inner().campaign_id, Action::Pause).await
    }

    async fn resume_campaign(
        &self,
        request: Request<proto::ResumeCampaignRequest>,
    ) -> Result<Response<proto::Campaign>, Status> {
        self.act(&request.into_inner().campaign_id, Action::Resume).await
    }

    async fn cancel_campaign(
        &self,
        request: Request<proto::CancelCampaignRequest>,
    ) -> Result<Response<proto::Campaign>, Status> {
        self.act(&request.into_inner().campaign_id, Action::Cancel).await
    }

    async fn list_campaign_items(
        &self,
        request: Request<proto::ListCampaignItemsRequest>,
    ) -> Result<Response<proto::ListCampaignItemsResponse>, Status> {
        let body = request.into_inner();
        let campaign = self.get(&body.campaign_id).await?;
        let status = match ItemStatus::try_from(body.status) {
            Ok(ItemStatus::Unspecified) => None,
            Ok(status) => Some(status),
            Err(_) => return Err(SessionError::InvalidArgument(format!("status {} is unknown", body.status)).into()),
        };
        let size = page_size(body.page_size)?;
        let after = match body.page_token.as_str() {
            "" => -1,
            token => token.parse::<i64>().map_err(|_| {
                SessionError::InvalidArgument("page_token is invalid: pass next_page_token as given".into())
            })?,
        };
        let rows = self
            .runner()?
            .log()
            .campaign_items(campaign.n, status, after, size + 1)
            .await
            .map_err(storage)?;
        let more = rows.len() > size;
        let last = rows.get(size.min(rows.len()).wrapping_sub(1)).map(|row| row.seq);
        let items = rows.into_iter().take(size).map(wire::item).collect();
        let next_page_token = match last {
            Some(seq) if more => seq.to_string(),
            _ => String::new(),
        };
        Ok(Response::new(proto::ListCampaignItemsResponse {
            items,
            next_page_token,
        }))
    }

    type WatchCampaignStream = WireStream<proto::Campaign>;

    async fn watch_campaign(
        &self,
        request: Request<proto::WatchCampaignRequest>,
    ) -> Result<Response<Self::WatchCampaignStream>, Status> {
        let first = self.get(&request.into_inner().campaign_id).await?;
        let mut changes = self.runner()?.log().follow_campaigns(&first.session_id);
        let api = self.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let id = first.id.clone();
            let mut row = first;
            loop {
                changes.statuses.borrow_and_update();
                let over = matches!(row.state, CampaignState::Done | CampaignState::Cancelled);
                let sent = api.wire(row.clone());
                if tx.send(Ok(sent)).await.is_err() || over {
                    return;
                }
                let coalesced = tokio::time::Instant::now() + COALESCE;
                loop {
                    tokio::select! {
                        changed = changes.statuses.changed() => if changed.is_err() { return },
                        () = tx.closed() => return,
                    }
                    tokio::time::sleep_until(coalesced).await;
                    let Some(runner) = api.slot.get() else { return };
                    let now = match runner.log().campaign(&id).await {
                        Ok(Some(now)) => now,
                        // Deleted with its session.
                        Ok(None) => return,
                        Err(error) => {
                            let _ = tx.send(Err(Status::from(storage(error)))).await;
                            return;
                        }
                    };
                    if (now.state, now.pause_reason, now.resume_at, now.counts)
                        != (row.state, row.pause_reason, row.resume_at, row.counts)
                    {
                        row = now;
                        break;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// A page size: 0 is 100, at most 1,000.
fn page_size(raw: u32) -> Result<usize, SessionError> {
    Ok(match raw {
        0 => 100,
        n => (n as usize).min(1000),
    })
}
