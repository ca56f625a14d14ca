//! Idempotent writes and bad input: a retried create is one campaign, other
//! content under its id ALREADY_EXISTS, a retried add adds nothing twice, and each
//! bad input is answered with its code naming the item's position.

use tonic::Code;
use wa_sessiond::proto::{
    campaign_item::Content, AddCampaignItemsRequest, CampaignState, CancelCampaignRequest, GetCampaignRequest,
    ListCampaignsRequest, ResumeCampaignRequest,
};

use crate::world::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_change_nothing_and_bad_input_is_refused_with_its_position() {
    let _timing = together().await;
    let dir = tempfile::tempdir().unwrap();
    let (daemon, mut client) = linked(dir.path(), "in").await;
    let items: Vec<_> = (0..3).map(|i| item(&format!("i{i}"), &number(5, i))).collect();
    let mut request = create("in-c", "in", items.clone(), pacing(60_000, 60_000));
    request.start_paused = true;
    let first = client.create_campaign(request.clone()).await.unwrap().into_inner();
    assert_eq!(state(&first), CampaignState::Paused);
    let again = client.create_campaign(request.clone()).await.unwrap().into_inner();
    assert_eq!(
        (again.created_at, counts(&again).total),
        (first.created_at, 3),
        "one campaign"
    );
    let mut other = request.clone();
    other.items[0].content = Some(Content::Text("other".into()));
    let conflict = client.create_campaign(other).await.unwrap_err();
    assert_eq!(conflict.code(), Code::AlreadyExists, "{conflict:?}");
    let listed = client
        .list_campaigns(ListCampaignsRequest {
            session_id: "in".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.campaigns.len(), 1);

    let more: Vec<_> = (3..6).map(|i| item(&format!("i{i}"), &number(5, i))).collect();
    let add = AddCampaignItemsRequest {
        campaign_id: "in-c".into(),
        items: more,
    };
    assert_eq!(
        counts(&client.add_campaign_items(add.clone()).await.unwrap().into_inner()).total,
        6
    );
    assert_eq!(
        counts(&client.add_campaign_items(add).await.unwrap().into_inner()).total,
        6,
        "no item twice"
    );
    assert_eq!(all_items(&client, "in-c").await.len(), 6);

    let refused = |mut items: Vec<wa_sessiond::proto::CampaignItem>,
                   at: usize,
                   change: fn(&mut wa_sessiond::proto::CampaignItem)| {
        change(&mut items[at]);
        AddCampaignItemsRequest {
            campaign_id: "in-c".into(),
            items,
        }
    };
    let fresh: Vec<_> = (10..13).map(|i| item(&format!("j{i}"), &number(5, i))).collect();
    let cases: Vec<(&str, AddCampaignItemsRequest)> = vec![
        (
            "an invalid to",
            refused(fresh.clone(), 1, |i| i.to = "not a number".into()),
        ),
        (
            "a duplicate item id",
            refused(fresh.clone(), 2, |i| i.item_id = "j10".into()),
        ),
        ("an unknown placeholder", refused(fresh.clone(), 1, |i| i.vars.clear())),
        (
            "a text too long",
            refused(fresh.clone(), 2, |i| {
                i.vars.insert("n".into(), "x".repeat(65_536));
            }),
        ),
    ];
    for (what, request) in cases {
        let error = client.add_campaign_items(request).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{what}: {error:?}");
        assert!(
            error.message().contains("items["),
            "{what} names the item's position: {}",
            error.message()
        );
    }
    let too_many: Vec<_> = (0..1001).map(|i| item(&format!("k{i}"), &number(6, i % 100))).collect();
    let error = client
        .add_campaign_items(AddCampaignItemsRequest {
            campaign_id: "in-c".into(),
            items: too_many,
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
    assert!(error.message().contains("1000"), "{}", error.message());
    assert_eq!(
        all_items(&client, "in-c").await.len(),
        6,
        "nothing of a refused call was added"
    );

    let mut bad_pacing = request.clone();
    bad_pacing.campaign_id = "in-d".into();
    bad_pacing.pacing = Some(pacing(2_000, 1_000));
    assert_eq!(
        client.create_campaign(bad_pacing.clone()).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    bad_pacing.pacing = Some(pacing(0, 25 * 3600 * 1000));
    assert_eq!(
        client.create_campaign(bad_pacing).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let mut nobody = request.clone();
    nobody.campaign_id = "in-e".into();
    nobody.session_id = "nobody".into();
    assert_eq!(client.create_campaign(nobody).await.unwrap_err().code(), Code::NotFound);
    let unknown = GetCampaignRequest {
        campaign_id: "nope".into(),
    };
    assert_eq!(client.get_campaign(unknown).await.unwrap_err().code(), Code::NotFound);

    let cancelled = client
        .cancel_campaign(CancelCampaignRequest {
            campaign_id: "in-c".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&cancelled), CampaignState::Cancelled);
    assert_eq!(counts(&cancelled).cancelled, 6);
    let resume = client
        .resume_campaign(ResumeCampaignRequest {
            campaign_id: "in-c".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(resume.code(), Code::FailedPrecondition, "{resume:?}");
    daemon.stop().await;
}
