//! The event log's campaign side, as CampaignService and the pacers use it: write
//! (create, add, the operator's and the daemon's state changes, an item that
//! cannot be sent), each answered once on disk, and read (a campaign, pages, the
//! next pending items, new contacts, the daily caps' counts), plus the signals that
//! a session's campaigns changed.

use std::time::SystemTime;

use super::{
    campaign::{
        caps,
        read::{self, Next},
        sql::{Action, Done, Job, Written},
        Auto, CampaignRow, CheckRow, Counts, ItemRow, ItemStatus, NewCampaign, NewItem, Verdict,
    },
    db::{self, Follow},
    EventLog,
};
use crate::store::DbError;

impl EventLog {
    async fn campaign_job(&self, job: Job) -> Result<Done, DbError> {
        match self.run(db::Op::Campaign(Box::new(job))).await? {
            db::Out::Campaign(done) => Ok(done),
            _ => unreachable!("a campaign job answers Campaign"),
        }
    }

    async fn written(&self, job: Job) -> Result<Written, DbError> {
        match self.campaign_job(job).await? {
            Done::Written(written) => Ok(written),
            Done::Changed(_) => unreachable!("create, add and actions answer Written"),
        }
    }

    async fn changed(&self, job: Job) -> Result<bool, DbError> {
        match self.campaign_job(job).await? {
            Done::Changed(n) => Ok(n > 0),
            Done::Written(_) => unreachable!("automatic changes answer Changed"),
        }
    }

    /// Creates a campaign (or finds the one with that id); answers once on disk.
    pub async fn create_campaign(&self, new: NewCampaign) -> Result<Written, DbError> {
        self.written(Job::Create(new)).await
    }

    /// Adds the items the campaign does not have yet; answers once on disk.
    pub async fn add_campaign_items(&self, campaign_id: &str, items: Vec<NewItem>) -> Result<Written, DbError> {
        let campaign_id = campaign_id.to_owned();
        self.written(Job::Add { campaign_id, items }).await
    }

    /// The operator pauses, resumes or cancels a campaign; answers once on disk.
    pub async fn operate_campaign(&self, campaign_id: &str, action: Action) -> Result<Written, DbError> {
        let campaign_id = campaign_id.to_owned();
        self.written(Job::Operate { campaign_id, action }).await
    }

    /// The daemon runs or pauses a campaign (never one the operator paused); true
    /// when it changed.
    pub async fn campaign_auto(&self, n: i64, auto: Auto) -> Result<bool, DbError> {
        self.changed(Job::Automatic { n, auto }).await
    }

    /// An item that cannot be sent: FAILED with `error`.
    pub async fn fail_campaign_item(&self, n: i64, seq: u64, error: String) -> Result<bool, DbError> {
        self.changed(Job::Fail { n, seq, error }).await
    }

    /// Caches a lookup's verdicts for the session and skips the campaign's items
    /// at `skip` (not on WhatsApp); answers once on disk.
    pub async fn record_checks(
        &self,
        n: i64,
        session_id: &str,
        verdicts: Vec<(String, Verdict)>,
        skip: Vec<u64>,
    ) -> Result<bool, DbError> {
        let session_id = session_id.to_owned();
        self.changed(Job::Checked {
            n,
            session_id,
            verdicts,
            skip,
        })
        .await
    }

    /// A chat's cached verdict for the session, and when it was checked.
    pub async fn number_verdict(&self, session_id: &str, chat: &str) -> Result<Option<(Verdict, SystemTime)>, DbError> {
        let (id, chat) = (session_id.to_owned(), chat.to_owned());
        self.readers.with(move |conn| read::verdict(conn, &id, &chat)).await
    }

    /// The first `limit` PENDING items of a campaign with what a lookup needs.
    pub async fn check_batch(&self, session_id: &str, n: i64, limit: usize) -> Result<Vec<CheckRow>, DbError> {
        let id = session_id.to_owned();
        self.readers
            .with(move |conn| read::check_batch(conn, &id, n, limit))
            .await
    }

    /// A campaign by id.
    pub async fn campaign(&self, campaign_id: &str) -> Result<Option<CampaignRow>, DbError> {
        let id = campaign_id.to_owned();
        self.readers.with(move |conn| read::campaign(conn, &id)).await
    }

    /// Campaigns ordered by id after `after`, of one session (None: all).
    pub async fn campaigns(
        &self,
        session_id: Option<String>,
        after: String,
        limit: usize,
    ) -> Result<Vec<CampaignRow>, DbError> {
        self.readers
            .with(move |conn| read::list(conn, session_id.as_deref(), &after, limit))
            .await
    }

    /// A session's campaigns that are not over.
    pub async fn live_campaigns(&self, session_id: &str) -> Result<Vec<CampaignRow>, DbError> {
        let id = session_id.to_owned();
        self.readers.with(move |conn| read::live(conn, &id)).await
    }

    /// Sessions with a campaign that is not over.
    pub async fn campaign_sessions(&self) -> Result<Vec<String>, DbError> {
        self.readers.with(read::sessions).await
    }

    /// A campaign's items after position `after` (-1: from the start), of one status.
    pub async fn campaign_items(
        &self,
        n: i64,
        status: Option<ItemStatus>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<ItemRow>, DbError> {
        self.readers
            .with(move |conn| read::items(conn, n, status, after, limit))
            .await
    }

    /// What a campaign of `session_id` sends next, skipping items to new
    /// contacts with `skip_new` (at most `scan` items ahead).
    pub async fn next_item(&self, session_id: &str, n: i64, skip_new: bool, scan: usize) -> Result<Next, DbError> {
        let id = session_id.to_owned();
        self.readers
            .with(move |conn| read::next(conn, &id, n, skip_new, scan))
            .await
    }

    /// A campaign's next `limit` PENDING items, each with whether it goes to a new
    /// contact, in one read.
    pub async fn next_items(&self, session_id: &str, n: i64, limit: usize) -> Result<Vec<(ItemRow, bool)>, DbError> {
        let id = session_id.to_owned();
        self.readers
            .with(move |conn| read::next_batch(conn, &id, n, limit))
            .await
    }

    /// The session's campaign sends since `since` (to new contacts only with
    /// `new_contacts`): how many, and the oldest one's time.
    pub async fn campaign_sends(
        &self,
        session_id: &str,
        new_contacts: bool,
        since: SystemTime,
    ) -> Result<(u64, Option<SystemTime>), DbError> {
        let id = session_id.to_owned();
        self.readers
            .with(move |conn| caps::since(conn, &id, new_contacts, since))
            .await
    }

    /// Campaigns by state and pause reason, and every campaign's counts summed.
    pub async fn campaign_gauges(&self) -> Result<(read::ByState, Counts), DbError> {
        self.readers.with(read::gauges).await
    }

    /// Follows one session's campaigns: what its pacer sends next (campaigns,
    /// items accepted or failed, the account's health), and its items' statuses.
    /// Other sessions' changes are not heard.
    pub fn follow_campaigns(&self, session_id: &str) -> Follow {
        self.campaigns.follow(session_id)
    }
}
