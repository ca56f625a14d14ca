//! The link page's edges without a browser: CreateLinkUrl's answers, the headers
//! a browser is told, cross-site posts, and a feed resuming by revision.

use std::time::Duration;

use tonic::Code;
use wa_sessiond::proto::CreateLinkUrlRequest;

use super::{
    common::{process::Process, Daemon},
    http,
    link_daemon::LinkDaemon,
};

fn link_request(id: &str, ttl: Option<Duration>, redirect_url: &str) -> CreateLinkUrlRequest {
    CreateLinkUrlRequest {
        session_id: id.into(),
        ttl: ttl.map(|ttl| ttl.try_into().unwrap()),
        redirect_url: redirect_url.into(),
    }
}

#[tokio::test]
async fn create_link_url_refuses_unknown_sessions_plain_http_redirects_and_ttls_out_of_range() {
    let daemon = LinkDaemon::start(|_| {}).await;
    let mut client = daemon.daemon.sessions().await;
    let unknown = client
        .create_link_url(link_request("nobody", None, ""))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");

    daemon
        .daemon
        .sessions()
        .await
        .create_session(super::create("hana"))
        .await
        .unwrap();
    let http = client
        .create_link_url(link_request("hana", None, "http://app.example.com/done"))
        .await
        .unwrap_err();
    assert_eq!(http.code(), Code::InvalidArgument);
    assert!(
        http.message().contains("redirect_url must be an https url"),
        "{}",
        http.message()
    );
    for ttl in [Duration::from_millis(500), Duration::from_secs(24 * 3600 + 1)] {
        let refused = client
            .create_link_url(link_request("hana", Some(ttl), ""))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().contains("ask for 1s to 24h"), "{}", refused.message());
    }

    let before = std::time::SystemTime::now();
    let link = client
        .create_link_url(link_request("hana", None, ""))
        .await
        .unwrap()
        .into_inner();
    let expires = std::time::SystemTime::try_from(link.expires_at.unwrap()).unwrap();
    let ttl = expires.duration_since(before).unwrap();
    assert!(
        ttl > Duration::from_secs(14 * 60) && ttl <= Duration::from_secs(15 * 60 + 1),
        "{ttl:?}"
    );
    assert_eq!(http::get(&link.url).await.status, 200);
    daemon.daemon.stop().await;
}

#[tokio::test]
async fn without_the_link_listener_create_link_url_says_how_to_switch_it_on() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    client.create_session(super::create("ivan")).await.unwrap();
    let refused = client
        .create_link_url(link_request("ivan", None, ""))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("--link-listen"), "{}", refused.message());
    daemon.stop().await;
}

#[tokio::test]
async fn the_page_is_not_stored_sends_no_referrer_and_allows_only_its_own_script_and_style() {
    let daemon = LinkDaemon::start(|_| {}).await;
    let url = daemon.session_with_link("jane", "").await;
    let page = http::get(&url).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    let policy = page.header("content-security-policy").expect("a csp");
    assert!(
        policy.starts_with("default-src 'none'; script-src 'sha256-"),
        "{policy}"
    );
    assert!(
        !policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"),
        "{policy}"
    );
    assert!(
        !page.body.contains("http://") && !page.body.contains("https://"),
        "nothing from elsewhere"
    );

    let (prefix, _) = url.rsplit_once('/').unwrap();
    let unknown = http::get(&format!("{prefix}/not-a-token")).await;
    assert_eq!(unknown.status, 403);
    assert_eq!(unknown.header("cache-control"), Some("no-store"));
    assert!(unknown.body.contains("This link is no longer valid") && !unknown.body.contains("<img"));
    daemon.daemon.stop().await;
}

#[tokio::test]
async fn posts_from_other_sites_or_not_in_json_are_refused_and_the_page_own_refresh_works() {
    let daemon = LinkDaemon::start(|_| {}).await;
    let url = daemon.session_with_link("kate", "").await;
    let before = daemon.qr("kate").await;
    let refresh = format!("{url}/refresh");
    let origin = format!("http://{}", daemon.link_addr);

    let form = http::request(
        "POST",
        &refresh,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "",
    )
    .await;
    assert_eq!(form.status, 403);
    let json = [
        ("Content-Type", "application/json"),
        ("Origin", "https://evil.example.com"),
    ];
    assert_eq!(http::request("POST", &refresh, &json, "{}").await.status, 403);
    let cross = [("Content-Type", "application/json"), ("Sec-Fetch-Site", "cross-site")];
    assert_eq!(http::request("POST", &refresh, &cross, "{}").await.status, 403);
    assert_eq!(
        daemon.qr("kate").await.generation,
        before.generation,
        "nothing refreshed"
    );

    let own = [("Content-Type", "application/json"), ("Origin", origin.as_str())];
    let refreshed = http::request("POST", &refresh, &own, "{}").await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(daemon.qr("kate").await.generation, before.generation + 1);
    assert!(
        refreshed.body.contains("\"status\":\"SESSION_STATUS_QR_WAITING\""),
        "{}",
        refreshed.body
    );

    let bad_phone = http::request("POST", &format!("{url}/pairing-code"), &own, r#"{"phone_number":"12"}"#).await;
    assert_eq!(bad_phone.status, 400);
    assert!(
        bad_phone.body.contains("use the country code and number"),
        "{}",
        bad_phone.body
    );
    daemon.daemon.stop().await;
}

#[tokio::test]
async fn a_feed_resumed_at_the_current_revision_sends_nothing_old() {
    let daemon = LinkDaemon::start(|c| {
        c.emulator_first_qr_ttl = Duration::from_secs(60);
        // Each feed ends (idle) after a second, so a plain read of it ends too.
        c.link.link_idle_timeout = Duration::from_secs(1);
    })
    .await;
    let url = daemon.session_with_link("liam", "").await;
    let events = format!("{url}/events");
    let fresh = http::request("GET", &events, &[], "").await;
    assert_eq!(fresh.header("content-type"), Some("text/event-stream"));
    assert_eq!(fresh.header("cache-control"), Some("no-store"));
    let id = fresh
        .body
        .lines()
        .find_map(|line| line.strip_prefix("id: "))
        .expect("a state event with the revision as its id")
        .to_owned();
    assert!(fresh.body.contains("event: state"), "{}", fresh.body);
    assert!(fresh.body.contains("data:image/svg+xml;base64,"));

    let resumed = http::request("GET", &events, &[("Last-Event-ID", id.as_str())], "").await;
    assert!(
        !resumed.body.contains("event: state"),
        "nothing newer than {id}: {}",
        resumed.body
    );
    let behind = (id.parse::<u64>().unwrap() - 1).to_string();
    let caught_up = http::request("GET", &format!("{events}?last_event_id={behind}"), &[], "").await;
    assert!(caught_up.body.contains(&format!("id: {id}")), "{}", caught_up.body);
    daemon.daemon.stop().await;
}

/// The link page's prefix (`http://host:port/link/`) and token of a link URL.
fn split_link(url: &str) -> (&str, &str) {
    let at = url.rfind("/link/").expect("a link url") + "/link/".len();
    (&url[..at], &url[at..])
}

#[tokio::test]
async fn the_binary_serves_the_page_on_link_listen_and_a_link_works_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Process::start(dir.path(), &[]).await;
    first
        .sessions()
        .await
        .create_session(super::create("mona"))
        .await
        .unwrap();
    let link = first
        .sessions()
        .await
        .create_link_url(link_request("mona", None, ""))
        .await
        .unwrap();
    let url = link.into_inner().url;
    assert_eq!(http::get(&url).await.status, 200);
    let serving = first
        .log()
        .await
        .into_iter()
        .any(|line| line.contains("link page serving"));
    assert!(serving, "the daemon says where the page is");
    assert!(
        !first.log().await.iter().any(|line| line.contains(split_link(&url).1)),
        "no token in the log"
    );
    first.sigterm();
    first.wait_exit(Duration::from_secs(10)).await;

    // Same data dir, same key: the link still opens on the restarted daemon's page.
    let second = Process::start(dir.path(), &[]).await;
    let fresh = second
        .sessions()
        .await
        .create_link_url(link_request("mona", None, ""))
        .await
        .unwrap();
    let (prefix, _) = split_link(&fresh.get_ref().url);
    let (_, token) = split_link(&url);
    assert_eq!(http::get(&format!("{prefix}{token}")).await.status, 200);
}
