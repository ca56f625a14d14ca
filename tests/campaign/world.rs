//! What the campaign tests share: clients, item builders, bounded waits on a
//! campaign, and what the emulated server received.

use std::time::{Duration, SystemTime};

use tonic::transport::Channel;
use wa_sessiond::proto::{
    campaign_item::Content, campaign_service_client::CampaignServiceClient,
    emulator_service_client::EmulatorServiceClient, Campaign, CampaignItem, CampaignItemResult, CampaignState,
    CreateCampaignRequest, EmulatedKind, EmulatedMessage, GetCampaignRequest, ListCampaignItemsRequest,
    ListSentMessagesRequest, PacingPolicy, PauseReason,
};

use crate::common::{paired, wait_for, Daemon};

pub type Campaigns = CampaignServiceClient<Channel>;

/// The tests of this binary share the machine; a test that measures gaps at the
/// server runs alone (`alone`), the others together (`together`).
static TIMING: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub async fn alone() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    TIMING.write().await
}

pub async fn together() -> tokio::sync::RwLockReadGuard<'static, ()> {
    TIMING.read().await
}

/// A recipient's number (digits): `seed` apart per test.
pub fn number(seed: usize, i: usize) -> String {
    format!("1555{seed:03}{i:04}")
}

/// Its user JID.
pub fn jid(number: &str) -> String {
    format!("{number}@s.whatsapp.net")
}

/// A text item to `to`, with id `id` and a `{{n}}` placeholder.
pub fn item(id: &str, to: &str) -> CampaignItem {
    CampaignItem {
        item_id: id.into(),
        to: to.into(),
        content: Some(Content::Text(format!("hello {{{{n}}}} from {id}"))),
        vars: [("n".to_owned(), "friend".to_owned())].into(),
    }
}

/// A gap policy of `min`..`max` milliseconds.
pub fn pacing(min: u64, max: u64) -> PacingPolicy {
    let ms = |v: u64| prost_types::Duration::try_from(Duration::from_millis(v)).unwrap();
    PacingPolicy {
        min_interval: Some(ms(min)),
        max_interval: Some(ms(max)),
        ..Default::default()
    }
}

/// A campaign request.
pub fn create(id: &str, session: &str, items: Vec<CampaignItem>, pacing: PacingPolicy) -> CreateCampaignRequest {
    CreateCampaignRequest {
        campaign_id: id.into(),
        session_id: session.into(),
        items,
        pacing: Some(pacing),
        ..Default::default()
    }
}

pub fn state(c: &Campaign) -> CampaignState {
    CampaignState::try_from(c.state).unwrap()
}

pub fn reason(c: &Campaign) -> PauseReason {
    PauseReason::try_from(c.pause_reason).unwrap()
}

pub fn counts(c: &Campaign) -> wa_sessiond::proto::CampaignCounts {
    c.counts.unwrap()
}

/// A daemon on the emulator in `dir` with `session` linked, and a campaign client.
pub async fn linked(dir: &std::path::Path, session: &str) -> (Daemon, Campaigns) {
    let daemon = Daemon::start(dir, |_| {}).await;
    paired(&daemon, session).await;
    let client = CampaignServiceClient::new(daemon.channel().await);
    (daemon, client)
}

/// Creates a campaign (it starts at once).
pub async fn start(client: &Campaigns, id: &str, session: &str, items: Vec<CampaignItem>, pacing: PacingPolicy) {
    client
        .clone()
        .create_campaign(create(id, session, items, pacing))
        .await
        .unwrap();
}

/// Reads the campaign until it is PAUSED for `why` (at most `bound`).
pub async fn wait_paused(client: &Campaigns, id: &str, bound: Duration, why: PauseReason) -> Campaign {
    let what = format!("PAUSED {}", why.as_str_name());
    wait_campaign(client, id, bound, &what, |c| {
        state(c) == CampaignState::Paused && reason(c) == why
    })
    .await
}

/// Reads the campaign until `pred` holds (at most `bound`).
pub async fn wait_campaign(
    client: &Campaigns,
    id: &str,
    bound: Duration,
    what: &str,
    pred: impl Fn(&Campaign) -> bool,
) -> Campaign {
    wait_for(bound, what, || {
        let mut client = client.clone();
        let pred = &pred;
        async move {
            let request = GetCampaignRequest { campaign_id: id.into() };
            match client.get_campaign(request).await {
                Ok(c) => Some(c.into_inner()).filter(|c| pred(c)),
                Err(e) if e.code() == tonic::Code::Unavailable => None,
                Err(e) => panic!("{id}: {e}"),
            }
        }
    })
    .await
}

/// Every item of a campaign, in order.
pub async fn all_items(client: &Campaigns, id: &str) -> Vec<CampaignItemResult> {
    let mut client = client.clone();
    let (mut items, mut token) = (Vec::new(), String::new());
    loop {
        let page = client
            .list_campaign_items(ListCampaignItemsRequest {
                campaign_id: id.into(),
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        items.extend(page.items);
        if page.next_page_token.is_empty() {
            return items;
        }
        token = page.next_page_token;
    }
}

/// What the emulated server received from `session`, in the order it took them.
pub async fn received(phone: &mut EmulatorServiceClient<Channel>, session: &str) -> Vec<EmulatedMessage> {
    let request = ListSentMessagesRequest {
        session_id: session.into(),
    };
    phone.list_sent_messages(request).await.unwrap().into_inner().messages
}

pub fn is_text(m: &EmulatedMessage) -> bool {
    m.kind == EmulatedKind::Text as i32
}

pub fn received_at(m: &EmulatedMessage) -> SystemTime {
    SystemTime::try_from(m.received_at.unwrap()).unwrap()
}

/// Sends a text from `session` to `to` directly and waits (bounded) until the
/// server acked it: the chat is an existing one from then on.
pub async fn existing_chat(daemon: &crate::common::Daemon, session: &str, to: &str) {
    use wa_sessiond::proto::{send_message_request, GetMessageStatusRequest, MessageStatus, SendMessageRequest};
    let mut sessions = daemon.sessions().await;
    let request = SendMessageRequest {
        session_id: session.into(),
        to: to.into(),
        content: Some(send_message_request::Content::Text("hi".into())),
        ..Default::default()
    };
    let id = sessions.send_message(request).await.unwrap().into_inner().message_id;
    wait_for(Duration::from_secs(10), "the direct send server-acked", || {
        let mut sessions = sessions.clone();
        let request = GetMessageStatusRequest {
            session_id: session.into(),
            message_id: id.clone(),
            ..Default::default()
        };
        async move {
            let info = sessions.get_message_status(request).await.unwrap().into_inner();
            (info.status == MessageStatus::ServerAck as i32).then_some(())
        }
    })
    .await;
}

/// Waits (bounded) until the account's health shows new chats barred.
pub async fn barred(daemon: &crate::common::Daemon, session: &str) {
    let sessions = daemon.sessions().await;
    wait_for(Duration::from_secs(10), "the timelock known", || {
        let mut sessions = sessions.clone();
        let request = wa_sessiond::proto::GetAccountHealthRequest {
            session_id: session.into(),
        };
        async move {
            let health = sessions.get_account_health(request).await.unwrap().into_inner();
            health.reachout_restricted_until.map(drop)
        }
    })
    .await;
}
