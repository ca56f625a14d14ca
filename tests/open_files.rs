//! The open-files limit on the binary: started under a soft limit below the hard one
//! (a systemd default of 1,024 is the usual case), the daemon raises its soft limit
//! to the hard one, logs both and the one it started with, and exports the files it
//! holds and its limit on `/metrics`.

mod common;

use std::time::Duration;

use common::{http_get, process::Process, wait_for, Scrape};

/// The limits the binary starts under (soft below hard).
const SOFT: u64 = 256;
const HARD: u64 = 1024;

#[tokio::test]
async fn a_soft_limit_below_the_hard_one_is_raised_at_start_logged_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Process::start_with_nofile(dir.path(), SOFT, HARD, &[]).await;
    assert_eq!(daemon.nofile(), (HARD, HARD), "the process runs under the raised limit");

    let line = wait_for(Duration::from_secs(10), "the open files limit's log line", || async {
        daemon
            .log()
            .await
            .into_iter()
            .find(|line| line.contains("open files limit"))
    })
    .await;
    for field in [format!("soft={HARD}"), format!("hard={HARD}"), format!("before={SOFT}")] {
        assert!(line.contains(&field), "{field} in {line}");
    }

    let admin = daemon.admin_addr().await;
    let (code, body) = http_get(admin, "/metrics").await;
    assert_eq!(code, 200, "{body}");
    let scrape = Scrape::parse(&body);
    assert_eq!(scrape.value("wa_sessiond_open_files_limit", &[]), HARD as f64);
    // What the daemon holds, as /proc sees it around the scrape (the scrape's own
    // connection and the reads of /proc come and go).
    let exported = scrape.value("wa_sessiond_open_files", &[]);
    let seen = daemon.open_files().len() as f64;
    assert!(
        exported >= 5.0,
        "a daemon with its listeners and log holds some: {exported}"
    );
    assert!(
        (exported - seen).abs() <= 4.0,
        "exported {exported} open files, /proc shows {seen}"
    );
}
