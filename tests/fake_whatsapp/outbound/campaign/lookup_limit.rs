//! A number check refused for its rate, on both backends
//! (`outbound::campaign::lookup_limit::{emulator,real}::NAME`): WhatsApp answers a
//! campaign's usync contact query with a 429 naming a backoff; the account shows
//! rate-limited until the backoff ends, the campaign is PAUSED RATE_LIMITED with
//! that `resume_at` and nothing reaches the numbers meanwhile, then it resumes by
//! itself, looks the numbers up again and sends each item once.

use super::*;

alike! {
    a_number_check_refused_for_its_rate_pauses_rate_limited_for_its_backoff_then_resumes_to_done => lookup_rate_limited;
}

/// The backoff WhatsApp names.
const BACKOFF: Duration = Duration::from_secs(2);

async fn lookup_rate_limited(phone: &impl Phone) {
    let daemon = linked(phone, "lkl").await;
    let numbers: Vec<String> = (0..4).map(|i| format!("155577800{i:02}")).collect();
    phone.rate_limit_checks(&daemon, 1, BACKOFF).await;
    let mut client = CampaignServiceClient::new(daemon.channel().await);
    let before = SystemTime::now();
    client
        .create_campaign(checked("lkl-a", "lkl", &numbers, true))
        .await
        .unwrap();
    let (paused, _) = rate_limited_for(&daemon, "lkl", "lkl-a", before, BACKOFF).await;
    assert_eq!(paused.counts.as_ref().unwrap().pending, 4, "nothing went: {paused:?}");

    done(&daemon, "lkl-a", 0, 4).await;
    let received = phone.received(&daemon, "lkl", OWNER).await;
    for number in &numbers {
        let texts = received
            .iter()
            .filter(|m| m.to == jid(number) && m.kind == Kind::Text)
            .count();
        assert_eq!(texts, 1, "{number} got its message once");
    }
    let scrape = daemon.scrape().await;
    assert!(scrape.value("wa_sessiond_campaign_number_lookup_failures_total", &[]) >= 1.0);
    assert!(scrape.value("wa_sessiond_campaign_number_lookups_total", &[]) >= 1.0);
    daemon.stop().await;
}
