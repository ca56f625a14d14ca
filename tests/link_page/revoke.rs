//! A link holder cannot drive WhatsApp traffic without limit, and a link does not
//! outlive its purpose: refreshes and pairing codes are rate-limited per link and
//! per session (429 with Retry-After), RevokeLinks (and an operator's stop or
//! logout) ends every link issued so far, and a session that linked refuses its old
//! links (410) while the feed open at that moment still shows it linked. What the
//! page does is counted on `/metrics`.

use tonic::Code;
use wa_sessiond::proto::{DisconnectSessionRequest, LogoutSessionRequest, RevokeLinksRequest, SessionStatus};

use super::{
    common,
    http::{self, Answer},
    link_daemon::{LinkDaemon, SHOWN},
};

/// POSTs `body` to the link's `action` as the page does.
async fn post(daemon: &LinkDaemon, url: &str, action: &str, body: &str) -> Answer {
    let origin = format!("http://{}", daemon.link_addr);
    let headers = [("Content-Type", "application/json"), ("Origin", origin.as_str())];
    http::request("POST", &format!("{url}/{action}"), &headers, body).await
}

fn revoke(id: &str) -> RevokeLinksRequest {
    RevokeLinksRequest { session_id: id.into() }
}

#[tokio::test]
async fn refreshes_and_pairing_codes_are_limited_per_link_and_per_session_with_retry_after() {
    let daemon = LinkDaemon::start(|_| {}).await;
    let url = daemon.session_with_link("ann", "").await;
    for n in 1..=3 {
        let refreshed = post(&daemon, &url, "refresh", "{}").await;
        assert_eq!(refreshed.status, 200, "refresh {n} of the burst: {}", refreshed.body);
    }
    let generation = daemon.qr("ann").await.generation;
    let limited = post(&daemon, &url, "refresh", "{}").await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "one more every 20 s: Retry-After {retry}");
    assert!(limited.body.contains("try again in"), "{}", limited.body);
    // Another link to the same session draws on the same session's allowance.
    let other = daemon.link("ann", None, "").await;
    assert_eq!(post(&daemon, &other, "refresh", "{}").await.status, 429);
    assert_eq!(daemon.qr("ann").await.generation, generation, "WhatsApp was not asked");

    let phone = r#"{"phone_number":"+15551234567"}"#;
    for n in 1..=3 {
        let code = post(&daemon, &url, "pairing-code", phone).await;
        assert_eq!(code.status, 200, "pairing code {n}: {}", code.body);
    }
    assert_eq!(post(&daemon, &url, "pairing-code", phone).await.status, 429);

    let scrape = daemon.daemon.scrape().await;
    assert_eq!(scrape.value("wa_sessiond_link_refreshes_total", &[]), 3.0);
    assert_eq!(scrape.value("wa_sessiond_link_pairing_codes_total", &[]), 3.0);
    assert_eq!(
        scrape.value("wa_sessiond_link_refusals_total", &[("reason", "rate_limited")]),
        3.0
    );
    daemon.daemon.stop().await;
}

#[tokio::test]
async fn revoke_links_and_an_operator_stop_end_every_link_issued_before_and_new_ones_work() {
    let daemon = LinkDaemon::start(|_| {}).await;
    let first = daemon.session_with_link("bo", "").await;
    let second = daemon.link("bo", None, "").await;
    assert_eq!(http::get(&first).await.status, 200);

    let mut sessions = daemon.daemon.sessions().await;
    let revoked = sessions.revoke_links(revoke("bo")).await.unwrap().into_inner();
    assert_eq!(revoked.link_generation, 1);
    assert!(revoked.revoked_at.is_some());
    for url in [&first, &second] {
        let gone = http::get(url).await;
        assert_eq!(gone.status, 410, "{url}");
        assert!(gone.body.contains("This link is no longer valid"), "{}", gone.body);
        assert_eq!(post(&daemon, url, "refresh", "{}").await.status, 410);
    }
    let fresh = daemon.link("bo", None, "").await;
    assert_eq!(http::get(&fresh).await.status, 200);

    // Stopped by the operator: its links end too; a new one is needed to pair again.
    let stop = DisconnectSessionRequest {
        session_id: "bo".into(),
    };
    sessions.disconnect_session(stop).await.unwrap();
    assert_eq!(http::get(&fresh).await.status, 410);
    assert_eq!(http::get(&daemon.link("bo", None, "").await).await.status, 200);

    let unknown = sessions.revoke_links(revoke("nobody")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    let scrape = daemon.daemon.scrape().await;
    assert!(scrape.value("wa_sessiond_link_refusals_total", &[("reason", "revoked")]) >= 5.0);
    daemon.daemon.stop().await;
}

#[tokio::test]
async fn an_operator_logout_ends_every_link_issued_before_and_a_new_one_works() {
    let daemon = LinkDaemon::start(|_| {}).await;
    // One session waiting for its scan, one linked (its link issued since).
    let waiting = daemon.session_with_link("di", "").await;
    common::paired(&daemon.daemon, "ed").await;
    let linked = daemon.link("ed", None, "").await;
    for url in [&waiting, &linked] {
        assert_eq!(http::get(url).await.status, 200, "before the logout: {url}");
    }

    let mut sessions = daemon.daemon.sessions().await;
    for (id, url) in [("di", &waiting), ("ed", &linked)] {
        let logout = LogoutSessionRequest { session_id: id.into() };
        sessions.logout_session(logout).await.unwrap();
        daemon.wait_status(id, SessionStatus::LoggedOut).await;
        let gone = http::get(url).await;
        assert_eq!(gone.status, 410, "{id}: {}", gone.body);
        assert!(gone.body.contains("This link is no longer valid"), "{}", gone.body);
        assert_eq!(post(&daemon, url, "refresh", "{}").await.status, 410, "{id}");
        let resumed = http::request("GET", &format!("{url}/events"), &[], "").await;
        assert!(resumed.body.contains("event: gone"), "{id}: {}", resumed.body);
        // A new link is needed to pair again, and it works.
        let fresh = daemon.link(id, None, "").await;
        assert_eq!(
            http::get(&fresh).await.status,
            200,
            "{id}: a link issued after the logout"
        );
    }
    let scrape = daemon.daemon.scrape().await;
    assert!(scrape.value("wa_sessiond_link_refusals_total", &[("reason", "revoked")]) >= 6.0);
    daemon.daemon.stop().await;
}

#[tokio::test]
async fn once_linked_the_open_feed_shows_it_and_new_requests_with_the_link_get_410() {
    let daemon = LinkDaemon::long_lived_codes(|_| {}).await;
    let url = daemon.session_with_link("cy", "").await;
    assert_eq!(http::get(&url).await.status, 200);
    let mut feed = http::open_feed(&format!("{url}/events"), &[]).await;
    feed.read_until(SHOWN, "the code", |body| body.contains("SESSION_STATUS_QR_WAITING"))
        .await;
    let scrape = daemon.daemon.scrape().await;
    assert_eq!(scrape.value("wa_sessiond_link_page_views_total", &[]), 1.0);
    assert_eq!(scrape.value("wa_sessiond_link_feeds_open", &[]), 1.0);

    daemon.scan("cy").await;
    feed.read_until(SHOWN, "the linked state on the open feed", |body| {
        body.contains("SESSION_STATUS_CONNECTED")
    })
    .await;
    assert_eq!(http::get(&url).await.status, 410, "the page again: a new request");
    assert_eq!(post(&daemon, &url, "refresh", "{}").await.status, 410);
    let resumed = http::request("GET", &format!("{url}/events"), &[], "").await;
    assert!(resumed.body.contains("event: gone"), "{}", resumed.body);
    drop(feed);
    daemon.daemon.stop().await;
}
