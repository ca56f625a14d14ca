//! The page tells the service that offered the link once the phone is linked:
//! opened as a popup it posts `{type: "wa-sessiond.linked"}` to `window.opener`
//! and closes itself; embedded in an iframe it posts the same to its parent. Proven
//! with a host page of the test's own on another origin, which lists every message
//! it gets: none while the code is shown, exactly one once linked.

use serde_json::json;

use super::{
    browser::{self, Browser},
    host::{received, Host, Received},
    link_daemon::{wait_drawn, LinkDaemon, DESKTOP, SHOWN},
};

async fn long_lived_codes() -> LinkDaemon {
    framed_by(&[]).await
}

/// A daemon with long-lived codes whose page `origins` may frame.
async fn framed_by(origins: &[String]) -> LinkDaemon {
    LinkDaemon::long_lived_codes(|c| c.link.link_frame_ancestors = origins.to_vec()).await
}

/// Asserts the one message the host got is the page's, from the link's window and
/// origin, in its documented shape.
fn is_the_linked_message(daemon: &LinkDaemon, got: &[Received]) {
    assert_eq!(got.len(), 1, "exactly one message: {got:?}");
    let message = &got[0];
    assert_eq!(message.data, json!({ "type": "wa-sessiond.linked" }), "{message:?}");
    assert_eq!(message.origin, format!("http://{}", daemon.link_addr), "{message:?}");
    assert!(message.from_link, "sent by the link page's window: {message:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opened_as_a_popup_the_page_tells_its_opener_once_linked_and_closes() {
    if browser::skipped_without_chromium("opened_as_a_popup_the_page_tells_its_opener_once_linked_and_closes") {
        return;
    }
    let daemon = long_lived_codes().await;
    let url = daemon.session_with_link("sami", "").await;
    let host = Host::serve(&url).await;
    let browser = Browser::start(DESKTOP.0, DESKTOP.1).await;
    browser.open(&host.url("/popup")).await;
    let host_window = browser.client.window().await.unwrap();
    browser.click("#open").await;
    let popup = browser
        .until(SHOWN, "the popup to open", || async {
            let windows = browser.client.windows().await.ok()?;
            windows.into_iter().find(|w| *w != host_window)
        })
        .await;

    browser.client.switch_to_window(popup).await.unwrap();
    wait_drawn(&browser, &daemon, "sami", "the code in the popup", |_| true).await;
    browser.client.switch_to_window(host_window.clone()).await.unwrap();
    let before = received(&browser).await;
    assert!(before.is_empty(), "nothing before the link: {before:?}");

    daemon.scan("sami").await;
    browser
        .until(SHOWN, "the opener to be told", || async {
            (!received(&browser).await.is_empty()).then_some(())
        })
        .await;
    browser
        .until(SHOWN, "the popup to close itself", || async {
            (browser.client.windows().await.ok()?.len() == 1).then_some(())
        })
        .await;
    is_the_linked_message(&daemon, &received(&browser).await);
    browser.close().await;
    daemon.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_in_an_iframe_the_page_tells_its_parent_once_linked() {
    if browser::skipped_without_chromium("embedded_in_an_iframe_the_page_tells_its_parent_once_linked") {
        return;
    }
    // The host page's origin may frame the link page (--link-frame-ancestors).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let daemon = framed_by(&[origin]).await;
    let url = daemon.session_with_link("tara", "").await;
    let host = Host::serve_on(listener, &url);
    let browser = Browser::start(DESKTOP.0, DESKTOP.1).await;
    browser.open(&host.url("/frame")).await;
    // The frame draws the code (a screenshot shows the whole window, frame included).
    wait_drawn(&browser, &daemon, "tara", "the code in the frame", |_| true).await;
    let before = received(&browser).await;
    assert!(before.is_empty(), "nothing before the link: {before:?}");

    daemon.scan("tara").await;
    browser
        .until(SHOWN, "the parent to be told", || async {
            (!received(&browser).await.is_empty()).then_some(())
        })
        .await;
    browser.client.enter_frame(0).await.unwrap();
    assert!(browser.shown("#done").await, "the frame says linked");
    assert_eq!(browser.text("#status").await, "Linked");
    browser.client.enter_parent_frame().await.unwrap();
    browser.keep_screenshot("linked-in-a-frame").await;
    is_the_linked_message(&daemon, &received(&browser).await);
    browser.close().await;
    daemon.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_frame_ancestors_the_page_does_not_render_inside_a_frame() {
    if browser::skipped_without_chromium("without_frame_ancestors_the_page_does_not_render_inside_a_frame") {
        return;
    }
    let daemon = long_lived_codes().await;
    let url = daemon.session_with_link("uri", "").await;
    let host = Host::serve(&url).await;
    let browser = Browser::start(DESKTOP.0, DESKTOP.1).await;
    // The same page opened on its own renders (the control)...
    browser.open(&url).await;
    wait_drawn(&browser, &daemon, "uri", "the code, not framed", |_| true).await;
    // ...but in the host's frame the browser refuses it: an error document instead,
    // nothing of the page, nothing to scan.
    browser.open(&host.url("/frame")).await;
    browser.client.enter_frame(0).await.unwrap();
    let blocked = browser
        .until(SHOWN, "the frame to hold the browser's error document", || async {
            let url = browser.client.execute("return document.URL", vec![]).await.ok()?;
            let url = url.as_str()?.to_owned();
            url.starts_with("chrome-error:").then_some(url)
        })
        .await;
    assert_eq!(
        browser.count("#status").await + browser.count("#qr").await,
        0,
        "{blocked}"
    );
    browser.client.enter_parent_frame().await.unwrap();
    assert!(
        browser.qr_codes_shown().await.is_empty(),
        "nothing to scan in the frame"
    );
    browser.keep_screenshot("refused-in-a-frame").await;
    browser.close().await;
    daemon.daemon.stop().await;
}
