//! WatchCampaign: the campaign now, then its changes at most every 250 ms, ending
//! once DONE was sent; each item's outbound events name it; the pace shows in the metrics; a deleted session's
//! campaigns go with it.

use std::time::{Duration, Instant};

use tonic::Code;
use wa_sessiond::proto::{
    event::Body, event_service_client::EventServiceClient, CampaignState, DeleteSessionRequest, EventKind,
    GetCampaignRequest, MessageStatus, StreamEventsRequest, WatchCampaignRequest,
};

use crate::world::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_sees_the_campaign_then_its_coalesced_changes_until_done() {
    let _timing = together().await;
    let dir = tempfile::tempdir().unwrap();
    let (daemon, mut client) = linked(dir.path(), "wt").await;
    let items = (0..8).map(|i| item(&format!("w{i}"), &number(9, i))).collect();
    let mut request = create("wt-c", "wt", items, pacing(100, 150));
    request.start_paused = true;
    client.create_campaign(request).await.unwrap();
    let watch = WatchCampaignRequest {
        campaign_id: "wt-c".into(),
    };
    let mut stream = client.watch_campaign(watch).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().expect("the current state first");
    assert_eq!((state(&first), counts(&first).pending), (CampaignState::Paused, 8));
    client
        .resume_campaign(wa_sessiond::proto::ResumeCampaignRequest {
            campaign_id: "wt-c".into(),
        })
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Some(campaign) = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("a change within 30s")
        .unwrap()
    {
        seen.push((Instant::now(), campaign));
    }
    let (_, last) = seen.last().expect("changes");
    assert_eq!(state(last), CampaignState::Done, "the stream ends once DONE was sent");
    assert_eq!(counts(last).pending, 0);
    for pair in seen.windows(2) {
        let apart = pair[1].0 - pair[0].0;
        assert!(
            apart >= Duration::from_millis(200),
            "changes coalesced to one per 250 ms: {apart:?}"
        );
    }
    let pending: Vec<u64> = seen.iter().map(|(_, c)| counts(c).pending).collect();
    assert!(pending.windows(2).all(|p| p[1] <= p[0]), "{pending:?}");

    // Each item's statuses are events naming the campaign and the item.
    let mut events = EventServiceClient::new(daemon.channel().await);
    let request = StreamEventsRequest {
        session_ids: vec!["wt".into()],
        from_beginning: true,
        kinds: vec![EventKind::Outbound as i32],
        ..Default::default()
    };
    let mut stream = events.stream_events(request).await.unwrap().into_inner();
    let mut acked = std::collections::HashSet::new();
    while acked.len() < 8 {
        let event = crate::common::next(&mut stream).await.expect("the stream goes on");
        let Some(Body::Outbound(update)) = event.body else {
            continue;
        };
        assert_eq!(update.campaign_id, "wt-c", "{update:?}");
        assert!(update.item_id.starts_with('w'), "{update:?}");
        if update.status == MessageStatus::ServerAck as i32 {
            acked.insert(update.item_id);
        }
    }

    let scrape = daemon.scrape().await;
    assert!(scrape.value("wa_sessiond_campaign_sends_total", &[]) >= 8.0);
    assert!(scrape.value("wa_sessiond_campaign_gap_seconds_count", &[]) >= 7.0);
    let acked = [("status", "server_ack")];
    assert_eq!(scrape.value("wa_sessiond_campaign_item_statuses_total", &acked), 8.0);

    daemon
        .sessions()
        .await
        .delete_session(DeleteSessionRequest {
            session_id: "wt".into(),
        })
        .await
        .unwrap();
    let gone = client
        .get_campaign(GetCampaignRequest {
            campaign_id: "wt-c".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "a deleted session's campaigns go with it");
    daemon.stop().await;
}
