//! The link page, proven in a real browser (headless Chromium) against the daemon
//! with the emulator and short QR lifetimes: what a person sees, from the code on
//! the screen to the redirect once the phone is linked. Screenshots (desktop and
//! 360 px wide) are kept in `target/link-screenshots/`.

#[path = "../common/mod.rs"]
mod common;

mod browser;
mod edges;
mod guard;
mod host;
mod http;
mod link_daemon;
mod messages;
mod resume;
mod revoke;
mod states;

use std::time::Duration;

use browser::Browser;
use common::create;
use link_daemon::{seconds, wait_drawn, LinkDaemon, DESKTOP, PHONE, SHOWN};
use wa_sessiond::proto::{DeleteSessionRequest, EnterPairingCodeRequest, ScanQrRequest};

/// How long the countdown of a fresh 30 s code may take to reach its warning.
const TO_WARNING: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drawn_qr_is_the_current_code_and_its_countdown_runs_and_warns_under_15s() {
    if browser::skipped_without_chromium("the_drawn_qr_is_the_current_code_and_its_countdown_runs_and_warns_under_15s")
    {
        return;
    }
    let daemon = LinkDaemon::start(|c| {
        c.emulator_first_qr_ttl = Duration::from_secs(30);
        c.emulator_next_qr_ttl = Duration::from_secs(30);
    })
    .await;
    // The browser first: the code's 30 s start when the session is created.
    let page = Browser::start(DESKTOP.0, DESKTOP.1).await;
    let url = daemon.session_with_link("alice", "").await;
    page.open(&url).await;

    let qr = wait_drawn(&page, &daemon, "alice", "the page to draw the current code", |_| true).await;
    assert!(page.shown("#countdown").await);
    let first = seconds(&page.text("#countdown-time").await);
    assert!(
        (16..=30).contains(&first),
        "a fresh 30 s code shows 00:16 to 00:30, got {first}"
    );
    assert!(
        !page.classes("#countdown").await.contains("warn"),
        "no warning above 15 s"
    );
    assert_eq!(page.text("#status").await, "Waiting for you to scan the code");
    page.keep_screenshot("qr-desktop").await;

    page.until(SHOWN, "the countdown to go down", || async {
        (seconds(&page.text("#countdown-time").await) < first).then_some(())
    })
    .await;
    let warned = page
        .until(TO_WARNING, "the countdown to turn to its warning colour", || async {
            if !page.classes("#countdown").await.contains("warn") {
                return None;
            }
            Some(page.text("#countdown-time").await)
        })
        .await;
    assert!(seconds(&warned) <= 15, "warns at 15 s or less, shown {warned}");

    page.resize(PHONE.0, PHONE.1).await;
    page.until(SHOWN, "the same code drawn 360 px wide", || async {
        (page.qr_codes_shown().await == [qr.code.clone()]).then_some(())
    })
    .await;
    page.keep_screenshot("qr-360").await;
    page.close().await;
    daemon.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drawn_code_rotates_to_the_next_of_the_batch_without_a_reload() {
    if browser::skipped_without_chromium("the_drawn_code_rotates_to_the_next_of_the_batch_without_a_reload") {
        return;
    }
    let daemon = LinkDaemon::start(|c| {
        c.emulator_first_qr_ttl = Duration::from_secs(3);
        c.emulator_next_qr_ttl = Duration::from_secs(3);
        c.emulator_qr_count = 3;
    })
    .await;
    let page = Browser::start(DESKTOP.0, DESKTOP.1).await;
    let url = daemon.session_with_link("bob", "").await;
    page.open(&url).await;
    let first = wait_drawn(&page, &daemon, "bob", "the first code", |qr| qr.index == 1).await;
    page.client
        .execute("window.stillTheSamePage = true", vec![])
        .await
        .unwrap();

    let next = wait_drawn(&page, &daemon, "bob", "the second code of the batch", |qr| {
        qr.index == 2
    })
    .await;
    assert_eq!(next.generation, first.generation, "the same batch, no new connection");
    assert_ne!(next.code, first.code);
    let same_page = page
        .client
        .execute("return window.stillTheSamePage === true", vec![])
        .await
        .unwrap();
    assert_eq!(same_page, serde_json::Value::Bool(true), "the page was not reloaded");
    page.close().await;
    daemon.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_feed_stops_the_expired_code_gets_an_overlay_and_the_button_brings_a_new_generation() {
    if browser::skipped_without_chromium(
        "when_the_feed_stops_the_expired_code_gets_an_overlay_and_the_button_brings_a_new_generation",
    ) {
        return;
    }
    let daemon = LinkDaemon::start(|c| {
        c.link.link_idle_timeout = Duration::from_secs(1);
        c.emulator_first_qr_ttl = Duration::from_secs(6);
        c.emulator_next_qr_ttl = Duration::from_secs(6);
        c.emulator_qr_count = 3;
    })
    .await;
    let page = Browser::start(DESKTOP.0, DESKTOP.1).await;
    let url = daemon.session_with_link("carol", "").await;
    page.open(&url).await;
    let shown = wait_drawn(&page, &daemon, "carol", "the first code", |_| true).await;
    assert!(!page.shown("#expired").await);

    // The feed idles out after 1 s; the code it showed expires 6 s after issue.
    page.until(SHOWN, "the expired overlay and its button", || async {
        (page.shown("#expired").await && page.shown("#renew").await).then_some(())
    })
    .await;
    assert!(page.classes("#renew").await.contains("pulse"));
    assert!(page.classes("#countdown").await.contains("over"), "red at 0");
    assert_eq!(page.text("#countdown-time").await, "00:00");
    assert!(page.text("#status").await.contains("expired"));
    page.keep_screenshot("expired-desktop").await;
    page.resize(PHONE.0, PHONE.1).await;
    page.keep_screenshot("expired-360").await;
    page.resize(DESKTOP.0, DESKTOP.1).await;

    page.click("#renew").await;
    let fresh = wait_drawn(&page, &daemon, "carol", "a fresh code of the next generation", |qr| {
        qr.generation == shown.generation + 1
    })
    .await;
    assert_eq!(fresh.index, 1);
    assert!(!page.shown("#expired").await, "the overlay is gone");
    page.close().await;
    daemon.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanning_the_code_shows_linked_on_the_open_page_then_redirects() {
    if browser::skipped_without_chromium("scanning_the_code_shows_linked_on_the_open_page_then_redirects") {
        return;
    }
    let daemon = LinkDaemon::long_lived_codes(|_| {}).await;
    let page = Browser::start(DESKTOP.0, DESKTOP.1).await;
    let url = daemon.session_with_link("dave", "/after-link?from=wa").await;
    page.open(&url).await;
    wait_drawn(&page, &daemon, "dave", "the code", |_| true).await;
    page.client
        .execute("window.stillTheSamePage = true", vec![])
        .await
        .unwrap();

    // Causality, not wall time (browsers run in parallel on a loaded machine): the
    // open page, fed live, says "Linked" once the phone scanned, before it redirects.
    let scan = ScanQrRequest {
        session_id: "dave".into(),
        ..Default::default()
    };
    daemon.daemon.phone().await.scan_qr(scan).await.unwrap();
    // One look at the page (one script, so the redirect cannot fall between its
    // parts): "Linked" on the page that was open all along, told by its feed and not
    // a reload, which the redirect has not yet left.
    const LOOK: &str = "const shown = (id) => { const e = document.getElementById(id); \
        return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden'; }; \
        return [window.stillTheSamePage === true, shown('done'), \
        (document.getElementById('status') || {}).textContent || '', shown('qr')];";
    let qr_shown = page
        .until(SHOWN, "the open page to say linked", || async {
            let look = page.client.execute(LOOK, vec![]).await.ok()?;
            let look = look.as_array()?.clone();
            let same_page_linked = look[0] == true && look[1] == true && look[2].as_str()?.trim() == "Linked";
            same_page_linked.then(|| look[3] == true)
        })
        .await;
    assert!(!qr_shown, "no QR once linked");
    page.keep_screenshot("linked-desktop").await;
    page.until(SHOWN, "the redirect", || async {
        (page.path().await == "/after-link").then_some(())
    })
    .await;
    page.close().await;
    daemon.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pairing_code_shown_on_the_page_is_accepted_by_the_phone() {
    if browser::skipped_without_chromium("the_pairing_code_shown_on_the_page_is_accepted_by_the_phone") {
        return;
    }
    // WhatsApp's own timings: a pairing code lives until its connection's batch ends.
    let daemon = LinkDaemon::start(|c| {
        c.emulator_first_qr_ttl = Duration::from_secs(60);
        c.emulator_next_qr_ttl = Duration::from_secs(20);
    })
    .await;
    let page = Browser::start(PHONE.0, PHONE.1).await;
    let url = daemon.session_with_link("erin", "").await;
    page.open(&url).await;
    wait_drawn(&page, &daemon, "erin", "the code, 360 px wide", |_| true).await;

    page.click("#switch").await;
    assert!(page.shown("#phone").await && !page.shown("#qr").await);
    // By keyboard: the number, then Enter submits it.
    page.type_into("#phone", "+1 555 123 4567\u{E007}").await;
    let code = page
        .until(SHOWN, "a pairing code in XXXX-XXXX form", || async {
            let code = page.text("#pairing-code").await;
            let well_formed = code.len() == 9
                && code.as_bytes()[4] == b'-'
                && code.chars().filter(|c| *c != '-').all(|c| c.is_ascii_alphanumeric());
            well_formed.then_some(code)
        })
        .await;
    let left = seconds(&page.text("#pairing-time").await);
    assert!(left > 60, "the pairing code's own countdown, got {left} s");
    page.keep_screenshot("pairing-code-360").await;

    let enter = EnterPairingCodeRequest {
        session_id: "erin".into(),
        code,
    };
    daemon.daemon.phone().await.enter_pairing_code(enter).await.unwrap();
    page.until(SHOWN, "the page to say linked", || async {
        page.shown("#done").await.then_some(())
    })
    .await;
    page.keep_screenshot("linked-360").await;
    page.close().await;
    daemon.daemon.stop().await;
}

/// Changes one character of the token's signed payload.
fn tampered(url: &str) -> String {
    let (prefix, token) = url.rsplit_once('/').unwrap();
    let (payload, tag) = token.split_once('.').unwrap();
    let mut payload = payload.to_owned().into_bytes();
    payload[3] = if payload[3] == b'A' { b'B' } else { b'A' };
    format!("{prefix}/{}.{tag}", String::from_utf8(payload).unwrap())
}

async fn shows_the_invalid_page(page: &Browser, url: &str) {
    page.open(url).await;
    let title = page.text("h1").await;
    assert_eq!(title, "This link is no longer valid", "{url}");
    assert_eq!(
        page.count("img").await + page.count("svg").await + page.count("#qr").await,
        0,
        "no QR"
    );
    assert!(page.qr_codes_shown().await.is_empty(), "nothing to scan on the screen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_expired_and_deleted_session_links_show_the_invalid_page_and_no_qr() {
    if browser::skipped_without_chromium("tampered_expired_and_deleted_session_links_show_the_invalid_page_and_no_qr") {
        return;
    }
    let daemon = LinkDaemon::start(|_| {}).await;
    let good = daemon.session_with_link("frank", "").await;
    let forged = tampered(&good);
    assert_eq!(http::get(&forged).await.status, 403);

    let short = daemon.link("frank", Some(Duration::from_secs(1)), "").await;
    common::wait_for(SHOWN, "the 1 s link to expire", || async {
        (http::get(&short).await.status == 410).then_some(())
    })
    .await;

    let doomed = daemon.session_with_link("gina", "").await;
    let page = Browser::start(DESKTOP.0, DESKTOP.1).await;
    page.open(&doomed).await;
    wait_drawn(&page, &daemon, "gina", "the code before the delete", |_| true).await;
    let delete = DeleteSessionRequest {
        session_id: "gina".into(),
    };
    daemon.daemon.sessions().await.delete_session(delete).await.unwrap();
    page.until(SHOWN, "the open page to say the link is gone", || async {
        (page.shown("#gone").await && !page.shown("#qr").await).then_some(())
    })
    .await;
    assert!(page.qr_codes_shown().await.is_empty());
    assert_eq!(http::get(&doomed).await.status, 410);
    // A new session under the same id is another session: the old link stays dead.
    daemon
        .daemon
        .sessions()
        .await
        .create_session(create("gina"))
        .await
        .unwrap();
    assert_eq!(http::get(&doomed).await.status, 410);

    shows_the_invalid_page(&page, &forged).await;
    shows_the_invalid_page(&page, &short).await;
    shows_the_invalid_page(&page, &doomed).await;
    page.keep_screenshot("invalid-desktop").await;
    page.resize(PHONE.0, PHONE.1).await;
    page.keep_screenshot("invalid-360").await;
    page.close().await;
    daemon.daemon.stop().await;
}
