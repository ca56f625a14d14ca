//! Campaign items follow the outbound log in its transactions: an accepted item
//! leaves PENDING, a second accept of its id is the existing message (never a
//! second send), its statuses move the counts, a forgotten send is PENDING again,
//! a cancelled item is withdrawn, the last item makes the campaign DONE, the new
//! contact rule reads the log, and a deleted session's campaigns go (their items
//! in chunks).

use std::collections::BTreeMap;

use super::{message, open};
use crate::events::{
    campaign::{Action, ItemContent, ItemStatus, Link, NewCampaign, NewItem, Next, Pacing, Written},
    outbound::{Accept, Accepted, MessageStatus, Update},
    StatusChange,
};

pub(super) fn new_campaign(items: usize) -> NewCampaign {
    NewCampaign {
        id: "c".into(),
        session_id: "s".into(),
        pacing: Pacing {
            min_ms: 0,
            max_ms: 0,
            daily_limit: 0,
            new_contact_daily_limit: 0,
            typing: false,
            skip_unregistered: false,
        },
        start_paused: false,
        labels: BTreeMap::new(),
        fingerprint: "f".into(),
        items: (0..items)
            .map(|i| NewItem {
                item_id: format!("i{i}"),
                chat: format!("{i}@s.whatsapp.net"),
                content: ItemContent::Text { text: format!("t{i}") },
                message_id: format!("M{i}"),
            })
            .collect(),
    }
}

pub(super) fn accept(i: usize) -> Accept {
    Accept {
        session_id: "s".into(),
        message_id: format!("M{i}"),
        client_id: None,
        chat: format!("{i}@s.whatsapp.net"),
        fingerprint: "x".into(),
        payload: "{}".into(),
        queued: false,
        campaign: Some(Link {
            campaign_id: "c".into(),
            item_id: format!("i{i}"),
            // The one campaign of a fresh log is its first: key 1.
            campaign: 1,
            seq: i as u64,
            new_contact: true,
        }),
    }
}

#[tokio::test]
async fn items_follow_their_messages_and_the_counts_stay_true() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let Written::Campaign(created) = log.create_campaign(new_campaign(3)).await.unwrap() else {
        panic!("created")
    };
    assert_eq!((created.counts.total, created.counts.pending), (3, 3));

    assert!(matches!(log.accept(accept(0)).await.unwrap(), Accepted::New { .. }));
    assert!(
        matches!(log.accept(accept(0)).await.unwrap(), Accepted::Existing(_)),
        "a preset id the log has is that message"
    );
    log.mark_sent("s", "M0").await.unwrap();
    log.update_detached(Update::to("s", "M0", MessageStatus::ServerAck));
    // A send that never reached the connection: PENDING again.
    assert!(matches!(log.accept(accept(1)).await.unwrap(), Accepted::New { .. }));
    log.forget("s", "M1").await.unwrap();
    let row = log.campaign("c").await.unwrap().unwrap();
    assert_eq!(
        (row.counts.server_ack, row.counts.pending, row.counts.sending),
        (1, 2, 0),
        "{row:?}"
    );
    let items = log.campaign_items(row.n, None, -1, 10).await.unwrap();
    assert_eq!(items[0].status, ItemStatus::ServerAck);
    assert!(items[0].sent_at.is_some());
    assert_eq!(items[1].status, ItemStatus::Pending);

    // The new-contact rule: a chat that wrote to the account is not new.
    log.append(vec![message("s", "2@s.whatsapp.net", "in1", "hello")])
        .await
        .unwrap();
    let Next::Item(first, new) = log.next_item("s", row.n, false, 8).await.unwrap() else {
        panic!("an item")
    };
    assert_eq!((first.item_id.as_str(), new), ("i1", true));
    let Next::Item(skipped_to, new) = log.next_item("s", row.n, true, 8).await.unwrap() else {
        panic!("an existing chat's item")
    };
    assert_eq!((skipped_to.item_id.as_str(), new), ("i2", false));

    // Cancel: the pending items go, and an accept of one is withdrawn.
    let Written::Campaign(cancelled) = log.operate_campaign("c", Action::Cancel).await.unwrap() else {
        panic!("cancelled")
    };
    assert_eq!((cancelled.counts.cancelled, cancelled.counts.pending), (2, 0));
    assert_eq!(log.accept(accept(2)).await.unwrap(), Accepted::Withdrawn);
    assert!(matches!(
        log.operate_campaign("c", Action::Resume).await.unwrap(),
        Written::Final(_)
    ));

    log.delete_session("s", StatusChange::default()).await.unwrap();
    assert_eq!(log.campaign("c").await.unwrap(), None, "gone with its session");
    assert_eq!(
        log.campaign_items(row.n, None, -1, 10).await.unwrap().len(),
        3,
        "hidden, not yet removed"
    );
    assert!(
        log.remove_deleted(100).await.unwrap() >= 3,
        "its events and 3 items removed in a chunk"
    );
    assert!(log.campaign_items(row.n, None, -1, 10).await.unwrap().is_empty());
    assert_eq!(log.remove_deleted(100).await.unwrap(), 0);
}

#[tokio::test]
async fn the_last_item_sent_makes_the_campaign_done() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    log.create_campaign(new_campaign(2)).await.unwrap();
    for i in 0..2 {
        log.accept(accept(i)).await.unwrap();
        log.mark_sent("s", &format!("M{i}")).await.unwrap();
    }
    let row = log.campaign("c").await.unwrap().unwrap();
    assert_eq!(row.state, crate::events::campaign::CampaignState::Done);
    assert_eq!((row.counts.sent, row.counts.pending), (2, 0));
}

#[tokio::test]
async fn a_lookup_caches_its_verdicts_and_skips_only_pending_items_not_on_whatsapp() {
    use crate::events::campaign::Verdict;
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let Written::Campaign(row) = log.create_campaign(new_campaign(3)).await.unwrap() else {
        panic!("created")
    };
    // Item 0 already left PENDING: a lookup never skips it.
    log.accept(accept(0)).await.unwrap();
    let batch = log.check_batch("s", row.n, 50).await.unwrap();
    assert_eq!(batch.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2], "pending only");
    assert!(batch.iter().all(|r| r.new && r.cached.is_none()), "{batch:?}");

    let verdicts = vec![
        ("0@s.whatsapp.net".to_owned(), Verdict::Unregistered),
        ("1@s.whatsapp.net".to_owned(), Verdict::Registered),
        ("2@s.whatsapp.net".to_owned(), Verdict::Unregistered),
    ];
    assert!(log.record_checks(row.n, "s", verdicts, vec![0, 2]).await.unwrap());
    let after = log.campaign("c").await.unwrap().unwrap();
    assert_eq!(
        (after.counts.skipped, after.counts.pending, after.counts.sending),
        (1, 1, 1),
        "{after:?}"
    );
    let items = log.campaign_items(row.n, None, -1, 10).await.unwrap();
    assert_eq!(items[0].status, ItemStatus::Sending, "not PENDING: not skipped");
    assert_eq!(items[2].status, ItemStatus::Skipped);
    assert!(items[2].error.starts_with("not on WhatsApp"), "{}", items[2].error);
    // A replay skips nothing twice.
    log.record_checks(row.n, "s", vec![], vec![2]).await.unwrap();
    let again = log.campaign("c").await.unwrap().unwrap();
    assert_eq!(again.counts.skipped, 1);

    let (verdict, checked) = log.number_verdict("s", "2@s.whatsapp.net").await.unwrap().unwrap();
    assert_eq!(verdict, Verdict::Unregistered);
    assert_eq!(
        log.number_verdict("other", "2@s.whatsapp.net").await.unwrap(),
        None,
        "per session"
    );
    // A new lookup replaces the verdict and its time.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let joined = vec![("2@s.whatsapp.net".to_owned(), Verdict::Registered)];
    log.record_checks(row.n, "s", joined, vec![]).await.unwrap();
    let (verdict, rechecked) = log.number_verdict("s", "2@s.whatsapp.net").await.unwrap().unwrap();
    assert_eq!(verdict, Verdict::Registered);
    assert!(rechecked > checked);
    let batch = log.check_batch("s", row.n, 50).await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(
        batch[0].cached.map(|c| c.0),
        Some(Verdict::Registered),
        "the cache joins in"
    );

    // The last pending item skipped: DONE.
    log.record_checks(row.n, "s", vec![], vec![1]).await.unwrap();
    log.mark_sent("s", "M0").await.unwrap();
    let done = log.campaign("c").await.unwrap().unwrap();
    assert_eq!(done.state, crate::events::campaign::CampaignState::Done, "{done:?}");

    log.delete_session("s", StatusChange::default()).await.unwrap();
    assert_eq!(
        log.number_verdict("s", "2@s.whatsapp.net").await.unwrap(),
        None,
        "the verdicts go with the session"
    );
}

#[tokio::test]
async fn the_gauges_count_campaigns_by_state_and_sum_their_items() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let (by_state, counts) = log.campaign_gauges().await.unwrap();
    assert!(by_state.is_empty());
    assert_eq!(counts.total, 0);
    log.create_campaign(new_campaign(3)).await.unwrap();
    assert!(matches!(log.accept(accept(0)).await.unwrap(), Accepted::New { .. }));
    let (by_state, counts) = log.campaign_gauges().await.unwrap();
    assert_eq!(by_state.len(), 1, "{by_state:?}");
    assert_eq!(by_state[0].0, crate::proto::CampaignState::Running);
    assert_eq!(by_state[0].2, 1);
    assert_eq!((counts.total, counts.pending, counts.sending), (3, 2, 1), "{counts:?}");
}

#[tokio::test]
async fn items_listed_by_status_are_listed_by_their_messages_status_and_a_nack_fails_its_item() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let Written::Campaign(row) = log.create_campaign(new_campaign(4)).await.unwrap() else {
        panic!("created")
    };
    for i in 0..3 {
        log.accept(accept(i)).await.unwrap();
        log.mark_sent("s", &format!("M{i}")).await.unwrap();
    }
    log.update_detached(Update::to("s", "M0", MessageStatus::ServerAck));
    log.update_detached(Update::to("s", "M1", MessageStatus::Delivered));
    let mut nack = Update::to("s", "M2", MessageStatus::Failed);
    nack.error_code = 463;
    nack.error = "new chats barred".into();
    log.update_detached(nack);
    // The detached updates are committed once a later write is.
    log.forget("s", "none").await.unwrap();
    assert_eq!(listed(&log, row.n, ItemStatus::ServerAck).await, ["i0"]);
    assert_eq!(listed(&log, row.n, ItemStatus::Delivered).await, ["i1"]);
    assert_eq!(listed(&log, row.n, ItemStatus::Pending).await, ["i3"]);
    assert!(listed(&log, row.n, ItemStatus::Sent).await.is_empty());
    assert_eq!(listed(&log, row.n, ItemStatus::Failed).await, ["i2"]);
    let failed = log
        .campaign_items(row.n, Some(ItemStatus::Failed), -1, 10)
        .await
        .unwrap();
    assert_eq!(
        (failed[0].error_code, failed[0].error.as_str()),
        (463, "new chats barred")
    );
    let counts = log.campaign("c").await.unwrap().unwrap().counts;
    assert_eq!(
        (
            counts.server_ack,
            counts.delivered,
            counts.failed,
            counts.pending,
            counts.sent
        ),
        (1, 1, 1, 1, 0),
        "{counts:?}"
    );
}

/// The ids of a campaign's items of one status, as ListCampaignItems lists them.
async fn listed(log: &crate::events::EventLog, n: i64, status: ItemStatus) -> Vec<String> {
    let items = log.campaign_items(n, Some(status), -1, 10).await.unwrap();
    items.into_iter().map(|item| item.item_id).collect()
}
