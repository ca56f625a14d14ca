//! The daemon's logs where they usually end up: a pipe, a file, a container's log.

mod common;

use std::time::Duration;

use common::{process::Process, *};

#[tokio::test]
async fn text_logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Process::start(dir.path(), &["--log-format", "text"]).await;
    daemon.sessions().await.create_session(create("alice")).await.unwrap();
    let log = wait_for(Duration::from_secs(10), "a log line about alice", || async {
        let log = daemon.log().await;
        log.iter().any(|line| line.contains("alice")).then_some(log)
    })
    .await;

    let coloured: Vec<_> = log.iter().filter(|line| line.contains("\x1b[")).collect();
    assert!(coloured.is_empty(), "escape codes in a piped log: {coloured:?}");
    let listening = log.iter().find(|line| line.contains("wa-sessiond listening")).unwrap();
    assert!(listening.contains(" INFO "), "the level in plain text: {listening}");
    assert!(
        log.iter().any(|line| line.contains("session_id=alice")),
        "fields in plain text: {log:?}"
    );
}
