//! The day WhatsApp retires the WhatsApp Web version (issue 23 item 17), on the
//! real backend against the fake: without `--wa-version` the daemon announces the
//! version the fake's sw.js names (and keeps it in the data dir for the next
//! start); when the fake raises its minimum, a CONNECTED session goes through
//! CLIENT_OUTDATED and is CONNECTED again on the new version, without a new QR
//! code or a restart; the periodic refresh (`--wa-version-refresh`) picks up a
//! newer version sw.js names with no 405 to prompt it; a version pinned below the
//! minimum stops the session with the upgrade message.

use std::time::Duration;

use fake_whatsapp::proto::{ListClientVersionsRequest, SetMinimumVersionRequest};
use wa_sessiond::proto::{DisconnectReason, Session, SessionStatus, WatchSessionRequest};

use super::{common::*, next_change, pair, wait_until, Fake, STEP_BOUND};

/// A version newer than the daemon's built-in one.
const NEWER: (u32, u32, u32) = (2, 3000, 1_050_000_000);

/// The built-in version, as the fake sees it announced.
const BUILTIN: &str = "2.3000.1042742319";

fn dotted(version: (u32, u32, u32)) -> String {
    format!("{}.{}.{}", version.0, version.1, version.2)
}

/// The versions the fake's connections announced, oldest first.
async fn announced(fake: &Fake) -> Vec<String> {
    let listed = fake
        .control
        .clone()
        .list_client_versions(ListClientVersionsRequest {})
        .await;
    listed.unwrap().into_inner().versions
}

/// The fake retires every version below `version`.
async fn retire_below(fake: &Fake, version: (u32, u32, u32)) {
    let request = SetMinimumVersionRequest {
        version: dotted(version),
    };
    fake.control.clone().set_minimum_version(request).await.unwrap();
}

/// The daemon's version metric line for `version` from `source`.
fn info_line(version: &str, source: &str) -> String {
    format!("wa_sessiond_whatsapp_version_info{{version=\"{version}\",source=\"{source}\"}} 1")
}

/// Waits (bounded) until the daemon exports `version` from `source`.
async fn wait_version(daemon: &Daemon, version: &str, source: &str) {
    let line = info_line(version, source);
    wait_for(STEP_BOUND, &format!("the daemon on {version} ({source})"), || async {
        daemon.metrics.encode().contains(&line).then_some(())
    })
    .await;
}

fn reason(session: &Session) -> DisconnectReason {
    DisconnectReason::try_from(session.disconnect_reason).unwrap()
}

#[tokio::test]
async fn with_no_pin_the_daemon_announces_the_version_the_fakes_sw_js_names_and_keeps_it() {
    let options = fake_whatsapp::Options {
        version: NEWER,
        ..Default::default()
    };
    let fake = Fake::start_with(options).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    wait_version(&daemon, &dotted(NEWER), "resolved").await;
    pair(&daemon, &fake, "vera", "15550007001").await;
    let seen = announced(&fake).await;
    assert!(!seen.is_empty() && seen.iter().all(|v| *v == dotted(NEWER)), "{seen:?}");
    let stored = std::fs::read_to_string(dir.path().join("whatsapp-version.json")).unwrap();
    assert!(stored.contains(&dotted(NEWER)), "{stored}");
    daemon.stop().await;

    // The next start uses the stored version at once, sw.js unreachable or not.
    let daemon = Daemon::start(dir.path(), |config| {
        fake.wire()(config);
        config.wa_version_url = closed_local_sw_js();
    })
    .await;
    wait_version(&daemon, &dotted(NEWER), "stored").await;
    wait_until(&daemon, "vera", "CONNECTED again", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;
    let seen = announced(&fake).await;
    assert_eq!(seen.last(), Some(&dotted(NEWER)), "{seen:?}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_retired_version_takes_a_connected_session_through_client_outdated_back_to_connected() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    wait_version(&daemon, BUILTIN, "resolved").await;
    let linked = pair(&daemon, &fake, "wendy", "15550007002").await;
    let mut stream = daemon
        .sessions()
        .await
        .watch_session(WatchSessionRequest {
            session_id: "wendy".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let retired_at = std::time::Instant::now();
    retire_below(&fake, NEWER).await;
    let mut seen = Vec::new();
    let back = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let session = next_change(&mut stream).await;
            seen.push((status(&session), reason(&session), session.qr.is_some()));
            let outdated = seen.iter().any(|s| s.1 == DisconnectReason::ClientOutdated);
            if outdated && status(&session) == SessionStatus::Connected {
                return session;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not CONNECTED again through CLIENT_OUTDATED within 60 s: {seen:?}"));

    eprintln!(
        "CONNECTED again {:?} after the version was retired",
        retired_at.elapsed()
    );
    assert!(
        seen.contains(&(SessionStatus::Reconnecting, DisconnectReason::ClientOutdated, false)),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .all(|(s, _, qr)| !qr && *s != SessionStatus::QrWaiting && *s != SessionStatus::Failed),
        "no new qr code, never failed: {seen:?}"
    );
    assert_eq!(back.jid, linked.jid, "the same device, no new pairing");
    let versions = announced(&fake).await;
    assert_eq!(versions.last(), Some(&dotted(NEWER)), "{versions:?}");
    wait_version(&daemon, &dotted(NEWER), "resolved").await;
    daemon.stop().await;
}

#[tokio::test]
async fn the_periodic_refresh_picks_up_a_newer_version_without_a_405_or_a_restart() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |config| {
        fake.wire()(config);
        config.wa_version_refresh = Duration::from_secs(1);
    })
    .await;
    wait_version(&daemon, BUILTIN, "resolved").await;

    // sw.js names a newer version; nothing is connected, so no 405 can prompt a
    // fetch: only the periodic refresh finds it.
    retire_below(&fake, NEWER).await;
    wait_version(&daemon, &dotted(NEWER), "resolved").await;
    assert_eq!(announced(&fake).await, Vec::<String>::new(), "no connection so far");
    // Stored just after it is exported.
    let file = dir.path().join("whatsapp-version.json");
    wait_for(STEP_BOUND, "the newer version stored", || async {
        let stored = std::fs::read_to_string(&file).ok()?;
        stored.contains(&dotted(NEWER)).then_some(())
    })
    .await;

    // The next connection announces it, and is admitted at once.
    pair(&daemon, &fake, "yara", "15550007004").await;
    let seen = announced(&fake).await;
    assert!(!seen.is_empty() && seen.iter().all(|v| *v == dotted(NEWER)), "{seen:?}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_version_pinned_below_the_minimum_stops_the_session_with_the_upgrade_message() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |config| {
        fake.wire()(config);
        config.wa_version = Some((2, 3000, 1_042_742_319));
    })
    .await;
    assert!(daemon.metrics.encode().contains(&info_line(BUILTIN, "pinned")));
    pair(&daemon, &fake, "yuri", "15550007003").await;

    retire_below(&fake, NEWER).await;
    let failed = wait_until(&daemon, "yuri", "FAILED (client outdated)", |s| {
        status(s) == SessionStatus::Failed
    })
    .await;
    assert_eq!(reason(&failed), DisconnectReason::ClientOutdated);
    assert!(
        failed.last_error.contains("upgrade wa-sessiond or pin --wa-version"),
        "{}",
        failed.last_error
    );
    let versions = announced(&fake).await;
    assert!(
        versions.iter().all(|v| v == BUILTIN),
        "only the pinned version: {versions:?}"
    );
    daemon.stop().await;
}
