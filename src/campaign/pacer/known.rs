//! What the pacer knows of its session between steps: the campaigns it runs and
//! the account's restrictions, read again only after a control change (a campaign
//! created, added to, paused, resumed, cancelled or an item failed; the account's
//! health) or when the pacer forgets them, not for each item's progress: at
//! interval 0 that saves two reads per item. An item's progress may end a
//! campaign (DONE), which the pacer finds when nothing is left to send and it
//! looks again afresh.

use tokio::sync::watch;

use crate::{
    campaign::{plan, Shared},
    domain::SessionId,
    events::campaign::CampaignRow,
    proto::AccountHealth,
    store::DbError,
};

/// The campaigns and the health, as last read.
pub(super) struct Known {
    control: watch::Receiver<u64>,
    read: Option<(Vec<CampaignRow>, AccountHealth)>,
}

impl Known {
    /// Nothing known yet; `control` tells when what is known is out of date.
    pub(super) fn new(control: watch::Receiver<u64>) -> Self {
        Self { control, read: None }
    }

    /// The session's campaigns the pacer runs and the account's restrictions,
    /// and whether they were read just now.
    pub(super) async fn get(
        &mut self,
        shared: &Shared,
        session: &SessionId,
    ) -> Result<(Vec<CampaignRow>, AccountHealth, bool), DbError> {
        if let (Some((ours, health)), Ok(false)) = (&self.read, self.control.has_changed()) {
            return Ok((ours.clone(), health.clone(), false));
        }
        self.control.borrow_and_update();
        let ours: Vec<CampaignRow> = shared
            .log
            .live_campaigns(session.as_str())
            .await?
            .into_iter()
            .filter(plan::is_ours)
            .collect();
        let health = shared.log.account_restrictions(session.as_str()).await?;
        self.read = Some((ours.clone(), health.clone()));
        Ok((ours, health, true))
    }

    /// Reads them again at the next step.
    pub(super) fn forget(&mut self) {
        self.read = None;
    }
}
