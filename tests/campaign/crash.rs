//! Nothing twice, nothing skipped: a campaign of 500 items at interval 0 on the
//! real binary, killed with -9 at three random moments and restarted on the same
//! data dir each time. At the end each item is at the emulated server exactly
//! once, under its own message id (the server keeps one entry per id, so a
//! second send under another id would show as a second entry for the chat), the
//! counts add up and nothing is pending.

use std::{collections::HashMap, time::Duration};

use rand::Rng;
use wa_sessiond::proto::{campaign_service_client::CampaignServiceClient, CampaignItemStatus, CampaignState};

use crate::{common::process::Process, world::*};

const ITEMS: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_kill_9s_mid_campaign_leave_every_item_at_the_server_exactly_once() {
    let _timing = together().await;
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Process::start(dir.path(), &[]).await;
    daemon.link("k9").await;
    let client = CampaignServiceClient::new(daemon.channel().await);
    let mut created = 0;
    while created < ITEMS {
        let items: Vec<_> = (created..ITEMS.min(created + 250))
            .map(|i| item(&format!("i{i}"), &number(8, i)))
            .collect();
        let n = items.len();
        if created == 0 {
            client
                .clone()
                .create_campaign(create("k9-c", "k9", items, pacing(0, 0)))
                .await
                .unwrap();
        } else {
            let add = wa_sessiond::proto::AddCampaignItemsRequest {
                campaign_id: "k9-c".into(),
                items,
            };
            client.clone().add_campaign_items(add).await.unwrap();
        }
        created += n;
    }
    let mut sent_before = 0;
    for kill in 0..3 {
        let wait = rand::thread_rng().gen_range(150..700);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let client = CampaignServiceClient::new(daemon.channel().await);
        let now = wait_campaign(&client, "k9-c", Duration::from_secs(30), "readable", |_| true).await;
        let pending = counts(&now).pending as usize;
        eprintln!("kill {kill}: {} of {ITEMS} left pending", pending);
        sent_before = ITEMS - pending;
        daemon.kill9();
        daemon = Process::start(dir.path(), &[]).await;
    }
    assert!(sent_before > 0, "the kills came mid-campaign");
    let client = CampaignServiceClient::new(daemon.channel().await);
    let done = wait_campaign(&client, "k9-c", Duration::from_secs(120), "DONE", |c| {
        state(c) == CampaignState::Done
    })
    .await;
    let c = counts(&done);
    assert_eq!(c.total, ITEMS as u64);
    assert_eq!(c.pending, 0, "{done:?}");
    assert_eq!(
        c.sent + c.server_ack + c.delivered + c.read + c.failed + c.skipped + c.cancelled,
        ITEMS as u64,
        "the counts add up: {done:?}"
    );
    let items = all_items(&client, "k9-c").await;
    assert_eq!(items.len(), ITEMS);
    assert!(items.iter().all(|i| i.status != CampaignItemStatus::Pending as i32));
    let mut phone = daemon.phone().await;
    let at_server = received(&mut phone, "k9").await;
    let mut per_chat: HashMap<&str, Vec<&str>> = HashMap::new();
    for m in at_server.iter().filter(|m| is_text(m)) {
        per_chat.entry(m.to.as_str()).or_default().push(m.message_id.as_str());
    }
    for item in &items {
        let ids = per_chat.get(item.to.as_str()).cloned().unwrap_or_default();
        assert_eq!(
            ids,
            vec![item.message_id.as_str()],
            "item {} is at the server exactly once, under its own id",
            item.item_id
        );
    }
    daemon.kill9();
}
