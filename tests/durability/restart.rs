//! SIGTERM, readiness during the restore, corrupt records and credentials, and a
//! crashing session's restart budget.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_traffic_exits_0_within_the_grace_and_restores_the_same_set() {
    let tmp = tempfile::tempdir().unwrap();
    let mut daemon = Process::start(tmp.path(), &[]).await;
    for n in 0..5 {
        daemon.link(&format!("linked-{n}")).await;
    }
    let ledger = std::sync::Arc::new(tokio::sync::Mutex::new(Ledger::default()));
    let traffic = burst(&daemon, 0, ledger.clone());
    tokio::select! {
        () = traffic => panic!("the burst never stops by itself"),
        () = wait_for(Duration::from_secs(10), "some acknowledged creates", || async {
            (ledger.lock().await.known.len() >= 20).then_some(())
        }) => {}
    }
    daemon.sigterm();
    let (exit, took) = daemon.wait_exit(Duration::from_secs(15)).await;
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        took < Duration::from_secs(5),
        "drained within --shutdown-grace 5s, took {took:?}"
    );
    wait_for(Duration::from_secs(5), "a clean shutdown in the log", || async {
        daemon
            .log()
            .await
            .iter()
            .any(|l| l.contains("shut down cleanly"))
            .then_some(())
    })
    .await;

    let daemon = Process::start(tmp.path(), &[]).await;
    check_ledger(&daemon, &ledger).await;
    let mut sessions = daemon.sessions().await;
    for n in 0..5 {
        wait_status(&mut sessions, &format!("linked-{n}"), SessionStatus::Connected).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_false_until_the_restore_is_done() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Process::start(tmp.path(), &[]).await;
    daemon.link("alice").await;
    let mut daemon = daemon;
    daemon.sigterm();
    daemon.wait_exit(Duration::from_secs(15)).await;
    drop(daemon);

    // Another holder of the data dir (an old pod still draining) holds the restore up.
    let lock = std::fs::File::options()
        .write(true)
        .open(tmp.path().join("wa-sessiond.lock"))
        .unwrap();
    lock.lock().unwrap();
    let daemon = Process::spawn(tmp.path(), &[]).await;
    wait_for(Duration::from_secs(10), "the wait to be logged", || async {
        let log = daemon.log().await;
        log.iter()
            .any(|l| l.contains("another wa-sessiond is using this data dir"))
            .then_some(())
    })
    .await;
    assert_eq!(daemon.health().await, 2, "NOT_SERVING while restoring");
    let admin = daemon.admin_addr().await;
    assert_eq!(
        common::http_get(admin, "/readyz").await.0,
        503,
        "/readyz while restoring"
    );
    assert_eq!(common::http_get(admin, "/livez").await.0, 200, "alive all the same");
    let refused = daemon.sessions().await.get_session(peek("alice")).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert!(refused.message().contains("retry"), "{}", refused.message());

    lock.unlock().unwrap();
    daemon.wait_ready().await;
    assert_eq!(common::http_get(admin, "/readyz").await.0, 200, "/readyz once restored");
    let mut sessions = daemon.sessions().await;
    wait_status(&mut sessions, "alice", SessionStatus::Connected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_is_skipped_by_id_and_corrupt_credentials_pair_again() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Process::start(tmp.path(), &[]).await;
    let mut sessions = daemon.sessions().await;
    sessions.create_session(create("alpha")).await.unwrap();
    sessions.create_session(create("bravo")).await.unwrap();
    daemon.link("charlie").await;
    let mut daemon = daemon;
    daemon.sigterm();
    daemon.wait_exit(Duration::from_secs(15)).await;

    let db = rusqlite::Connection::open(tmp.path().join("sessions.db")).unwrap();
    db.execute("UPDATE sessions SET labels = 'not json' WHERE id = 'bravo'", [])
        .unwrap();
    drop(db);
    let device = tmp.path().join("sessions/charlie/emulator-device.json");
    std::fs::write(&device, b"\x00\x13 bad mac").unwrap();

    let daemon = Process::start(tmp.path(), &[]).await;
    let log = daemon.log().await;
    assert!(
        log.iter().any(|l| l.contains("bravo") && l.contains("cannot be read")),
        "the broken record is named: {log:#?}"
    );
    let mut sessions = daemon.sessions().await;
    assert!(exists(&mut sessions, "alpha").await);
    assert!(!exists(&mut sessions, "bravo").await);
    let charlie = sessions.get_session(peek("charlie")).await.unwrap().into_inner();
    assert_eq!(status(&charlie), SessionStatus::QrWaiting);
    assert!(charlie.last_error.contains("wiped"), "{}", charlie.last_error);
    let charlie = sessions.get_session(common::get("charlie")).await.unwrap().into_inner();
    assert!(charlie.qr.is_some(), "pairing starts clean");
    let scan = ScanQrRequest {
        session_id: "charlie".into(),
        ..Default::default()
    };
    daemon.phone().await.scan_qr(scan).await.unwrap();
    wait_status(&mut sessions, "charlie", SessionStatus::Connected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_session_restarts_alone_and_gives_up_past_its_budget() {
    use wa_sessiond::proto::{ConnectSessionRequest, CrashSessionRequest};
    let tmp = tempfile::tempdir().unwrap();
    let budget = ["--session-restart-budget", "3", "--session-restart-window", "60s"];
    let daemon = Process::start(tmp.path(), &budget).await;
    daemon.link("victim").await;
    let mut sessions = daemon.sessions().await;
    let others: Vec<String> = (0..99).map(|n| format!("other-{n:02}")).collect();
    for id in &others[..9] {
        daemon.link(id).await;
    }
    for id in &others[9..] {
        sessions.create_session(create(id)).await.unwrap();
    }
    let before = list_all(&mut sessions).await;

    // The other 99 keep answering throughout.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (mut sessions, others, stop) = (sessions.clone(), others.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut asked, mut failures) = (0u64, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && failures.len() < 10 {
                for id in &others {
                    asked += 1;
                    if let Err(e) = sessions.get_session(peek(id)).await {
                        failures.push(format!("{id}: {e}"));
                    }
                }
            }
            (asked, failures)
        })
    };

    let mut phone = daemon.phone().await;
    let linked_with = connections_started(&daemon, "victim").await;
    for (round, panic) in [(1u64, false), (2, true)] {
        let crash = CrashSessionRequest {
            session_id: "victim".into(),
            panic,
        };
        phone.crash_session(crash).await.unwrap();
        wait_for(
            Duration::from_secs(10),
            "the victim to reconnect after its crash",
            || async { (connections_started(&daemon, "victim").await == linked_with + round).then_some(()) },
        )
        .await;
        wait_status(&mut sessions, "victim", SessionStatus::Connected).await;
    }
    let crash = CrashSessionRequest {
        session_id: "victim".into(),
        panic: false,
    };
    phone.crash_session(crash).await.unwrap();
    let failed = wait_status(&mut sessions, "victim", SessionStatus::Failed).await;
    assert!(failed.last_error.contains("crashed 3 times"), "{}", failed.last_error);
    assert!(
        failed.last_error.contains("CrashSession"),
        "the cause: {}",
        failed.last_error
    );
    assert_eq!(
        connections_started(&daemon, "victim").await,
        linked_with + 2,
        "no restart past the budget"
    );

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (asked, failures) = watcher.await.unwrap();
    assert!(asked >= 99, "the others were asked ({asked})");
    assert!(failures.is_empty(), "the others answered throughout: {failures:?}");
    let after = list_all(&mut sessions).await;
    for id in &others {
        assert_eq!(status(&after[id]), status(&before[id]), "{id} untouched");
        assert_eq!(after[id].restart_count, before[id].restart_count, "{id} untouched");
    }

    // ConnectSession starts it afresh.
    let request = ConnectSessionRequest {
        session_id: "victim".into(),
        ..Default::default()
    };
    sessions.connect_session(request).await.unwrap();
    let back = wait_status(&mut sessions, "victim", SessionStatus::Connected).await;
    assert!(!back.jid.is_empty());
}
