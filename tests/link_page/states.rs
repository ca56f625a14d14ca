//! The page's status line between the code and "Linked", in the browser, each
//! state driven through the emulator as it happens on a phone: scanned and linking
//! (PAIRING, then RESTARTING held while the restart's connection opens), logged out
//! (from the phone, or by LogoutSession), and failed with its reason (a pairing
//! connection WhatsApp refused). Logged out and failed offer "Get a new code", and
//! the button brings one.

use std::time::Duration;

use tonic::Code;
use wa_sessiond::proto::{
    DropConnectionRequest, FailConnectsRequest, LogoutFromPhoneRequest, LogoutSessionRequest, RefreshQrRequest,
    SessionStatus,
};

use super::{
    browser::{self, Browser},
    common::{self, STEP},
    link_daemon::{wait_drawn, LinkDaemon, DESKTOP, PHONE, SHOWN},
};

/// How long the restart's connection takes to open while the test holds it: it is
/// released (dropped) long before.
const HOLD: Duration = Duration::from_secs(600);

const WAITING: &str = "Waiting for you to scan the code";
const PAIRING: &str = "Scanned. Linking your phone…";
const RESTARTING: &str = "Scanned. Finishing the link…";
const LOGGED_OUT: &str = "This account was logged out. Get a new code to link it again.";

async fn long_lived_codes() -> LinkDaemon {
    LinkDaemon::long_lived_codes(|_| {}).await
}

/// Waits until the status line says exactly `text`.
async fn says(page: &Browser, text: &str) {
    page.until(SHOWN, &format!("the status line to say {text:?}"), || async {
        (page.text("#status").await == text).then_some(())
    })
    .await;
}

/// Nothing to scan on the page, and the "Get a new code" button offered or not.
async fn no_code_and_renew_offered(page: &Browser, offered: bool) {
    assert!(!page.shown("#qr").await, "no QR image");
    assert!(page.qr_codes_shown().await.is_empty(), "nothing to scan on the screen");
    assert!(!page.shown("#countdown").await, "no countdown without a code");
    assert_eq!(page.shown("#renew").await, offered, "the Get a new code button");
    if offered {
        assert_eq!(page.text("#expired-text").await, "No code to scan");
    }
}

/// Clicks "Get a new code" and waits for a code of a new generation to be drawn.
async fn renew_brings_a_code(page: &Browser, daemon: &LinkDaemon, id: &str) {
    page.click("#renew").await;
    wait_drawn(page, daemon, id, "a new code after Get a new code", |_| true).await;
    says(page, WAITING).await;
    assert!(!page.shown("#expired").await, "the overlay is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_scan_the_page_says_scanned_and_linking_while_the_restart_is_held_then_linked() {
    if browser::skipped_without_chromium(
        "after_the_scan_the_page_says_scanned_and_linking_while_the_restart_is_held_then_linked",
    ) {
        return;
    }
    let daemon = long_lived_codes().await;
    let page = Browser::start(DESKTOP.0, DESKTOP.1).await;
    let url = daemon.session_with_link("olga", "").await;
    page.open(&url).await;
    wait_drawn(&page, &daemon, "olga", "the code", |_| true).await;
    says(&page, WAITING).await;
    page.record_statuses().await;

    // Connections started from now on take HOLD to open: the pairing one is already
    // open, so the scan pairs (PAIRING) and the restart's connection is held
    // (RESTARTING) until the test drops it.
    daemon.daemon.emulator.set_config(|c| c.step_delay = HOLD);
    daemon.scan("olga").await;
    daemon.wait_status("olga", SessionStatus::Restarting).await;
    says(&page, RESTARTING).await;
    assert_eq!(page.text("#qr-placeholder").await, PAIRING, "where the code was");
    no_code_and_renew_offered(&page, false).await;
    let shown = page.statuses_shown().await;
    let at = |text: &str| shown.iter().position(|t| t == text);
    assert_eq!(shown.first().map(String::as_str), Some(WAITING), "{shown:?}");
    let (pairing, restarting) = (at(PAIRING), at(RESTARTING));
    assert!(
        pairing.is_some() && pairing < restarting,
        "PAIRING said before RESTARTING: {shown:?}"
    );
    assert!(!shown.iter().any(|t| t == "Linked"), "not linked yet: {shown:?}");
    page.keep_screenshot("scanned-desktop").await;
    page.resize(PHONE.0, PHONE.1).await;
    page.keep_screenshot("scanned-360").await;

    // Released: the held connection drops, the next one opens at once and links.
    daemon.daemon.emulator.set_config(|c| c.step_delay = STEP);
    let drop = DropConnectionRequest {
        session_id: "olga".into(),
    };
    daemon.daemon.phone().await.drop_connection(drop).await.unwrap();
    page.until(SHOWN, "the page to say linked", || async {
        page.shown("#done").await.then_some(())
    })
    .await;
    assert_eq!(page.text("#status").await, "Linked");
    page.close().await;
    daemon.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_out_session_shows_logged_out_and_get_a_new_code_brings_one() {
    if browser::skipped_without_chromium("a_logged_out_session_shows_logged_out_and_get_a_new_code_brings_one") {
        return;
    }
    let daemon = long_lived_codes().await;
    // Unlinked on the phone (401).
    common::paired(&daemon.daemon, "pia").await;
    let unlink = LogoutFromPhoneRequest {
        session_id: "pia".into(),
    };
    daemon.daemon.phone().await.logout_from_phone(unlink).await.unwrap();
    daemon.wait_status("pia", SessionStatus::LoggedOut).await;
    // Logged out by the service.
    common::paired(&daemon.daemon, "quinn").await;
    let logout = LogoutSessionRequest {
        session_id: "quinn".into(),
    };
    daemon.daemon.sessions().await.logout_session(logout).await.unwrap();
    daemon.wait_status("quinn", SessionStatus::LoggedOut).await;

    let page = Browser::start(DESKTOP.0, DESKTOP.1).await;
    let quinn = daemon.link("quinn", None, "").await;
    page.open(&quinn).await;
    says(&page, LOGGED_OUT).await;
    no_code_and_renew_offered(&page, true).await;

    let pia = daemon.link("pia", None, "").await;
    page.open(&pia).await;
    says(&page, LOGGED_OUT).await;
    no_code_and_renew_offered(&page, true).await;
    page.keep_screenshot("logged-out-desktop").await;
    page.resize(PHONE.0, PHONE.1).await;
    page.keep_screenshot("logged-out-360").await;
    renew_brings_a_code(&page, &daemon, "pia").await;
    page.close().await;
    daemon.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pairing_whatsapp_refused_shows_failed_with_its_reason_and_get_a_new_code_brings_one() {
    if browser::skipped_without_chromium(
        "a_pairing_whatsapp_refused_shows_failed_with_its_reason_and_get_a_new_code_brings_one",
    ) {
        return;
    }
    let daemon = long_lived_codes().await;
    let page = Browser::start(DESKTOP.0, DESKTOP.1).await;
    let url = daemon.session_with_link("rita", "").await;
    page.open(&url).await;
    let before = wait_drawn(&page, &daemon, "rita", "the code", |_| true).await;

    // The next connection is refused: a new code asked for by the service fails.
    let fail = FailConnectsRequest {
        session_id: "rita".into(),
        count: 1,
    };
    daemon.daemon.phone().await.fail_connects(fail).await.unwrap();
    let refresh = RefreshQrRequest {
        session_id: "rita".into(),
        ..Default::default()
    };
    let refused = daemon.daemon.sessions().await.refresh_qr(refresh).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let failed = daemon.wait_status("rita", SessionStatus::Failed).await;
    assert!(!failed.last_error.is_empty());

    let reason = format!("Linking failed: {}. Get a new code to try again.", failed.last_error);
    says(&page, &reason).await;
    no_code_and_renew_offered(&page, true).await;
    page.keep_screenshot("failed-desktop").await;
    page.resize(PHONE.0, PHONE.1).await;
    page.keep_screenshot("failed-360").await;

    renew_brings_a_code(&page, &daemon, "rita").await;
    let after = daemon.qr("rita").await;
    assert!(after.generation > before.generation, "a new connection's code");
    page.close().await;
    daemon.daemon.stop().await;
}
