//! Durability, with the real binary as a child process: kill -9 at any moment,
//! SIGTERM, restarts on the same data dir, readiness during the restore, corrupt
//! records and credentials.

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::{create, peek, process::Process, status, wait_for};
use tonic::{transport::Channel, Code};
use wa_sessiond::proto::{
    session_service_client::SessionServiceClient, CountConnectionsRequest, DeleteSessionRequest,
    DisconnectSessionRequest, ListSessionsRequest, ScanQrRequest, Session, SessionStatus,
};

async fn wait_status(sessions: &mut SessionServiceClient<Channel>, id: &str, wanted: SessionStatus) -> Session {
    common::wait_session(sessions, id, &format!("{id} {wanted:?}"), |s| status(s) == wanted).await
}

/// Every session, by id, read without starting anything.
async fn list_all(sessions: &mut SessionServiceClient<Channel>) -> BTreeMap<String, Session> {
    let mut all = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let request = ListSessionsRequest {
            page_size: 1000,
            page_token,
            ..Default::default()
        };
        let page = sessions.list_sessions(request).await.unwrap().into_inner();
        all.extend(page.sessions.into_iter().map(|s| (s.id.clone(), s)));
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

async fn connections_started(daemon: &Process, id: &str) -> u64 {
    let request = CountConnectionsRequest { session_id: id.into() };
    daemon
        .phone()
        .await
        .count_connections(request)
        .await
        .unwrap()
        .into_inner()
        .started
}

async fn exists(sessions: &mut SessionServiceClient<Channel>, id: &str) -> bool {
    match sessions.get_session(peek(id)).await {
        Ok(_) => true,
        Err(e) if e.code() == Code::NotFound => false,
        Err(e) => panic!("{id}: {e}"),
    }
}

/// The states the mixed data dir was left in.
#[derive(Default)]
struct Mixed {
    linked: Vec<String>,
    pairing: Vec<String>,
    disconnected: Vec<String>,
    deleted: Vec<String>,
}

/// 200 sessions: 60 linked, 60 pairing, 40 disconnected (half of them linked), 40 deleted.
async fn make_mixed(daemon: &Process) -> Mixed {
    let mut mixed = Mixed::default();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..200 {
        let id = format!("mixed-{n:03}");
        let kind = n % 10;
        match kind {
            0..=2 => mixed.linked.push(id.clone()),
            3..=5 => mixed.pairing.push(id.clone()),
            6 | 7 => mixed.disconnected.push(id.clone()),
            _ => mixed.deleted.push(id.clone()),
        }
        let (mut sessions, mut phone) = (daemon.sessions().await, daemon.phone().await);
        tasks.spawn(async move {
            sessions.create_session(create(&id)).await.unwrap();
            if kind <= 2 || kind == 6 {
                let scan = ScanQrRequest {
                    session_id: id.clone(),
                    ..Default::default()
                };
                phone.scan_qr(scan).await.unwrap();
                wait_status(&mut sessions, &id, SessionStatus::Connected).await;
            }
            if kind == 6 || kind == 7 {
                let request = DisconnectSessionRequest { session_id: id.clone() };
                sessions.disconnect_session(request).await.unwrap();
            }
            if kind >= 8 {
                let request = DeleteSessionRequest { session_id: id.clone() };
                sessions.delete_session(request).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    mixed
}

/// After a restart: linked ones CONNECTED again without a QR, pairing ones
/// QR_WAITING with no connection opened, disconnected ones DISCONNECTED with none,
/// deleted ones gone.
async fn check_mixed(daemon: &Process, mixed: &Mixed) {
    let mut sessions = daemon.sessions().await;
    for id in &mixed.linked {
        let session = wait_status(&mut sessions, id, SessionStatus::Connected).await;
        assert!(session.qr.is_none(), "{id} reconnected without a qr code");
        assert!(!session.jid.is_empty(), "{id} kept its linked identity");
    }
    let all = list_all(&mut sessions).await;
    for id in &mixed.pairing {
        assert_eq!(status(&all[id]), SessionStatus::QrWaiting, "{id}");
        assert_eq!(
            connections_started(daemon, id).await,
            0,
            "{id}: no connection until asked"
        );
    }
    for id in &mixed.disconnected {
        assert_eq!(status(&all[id]), SessionStatus::Disconnected, "{id}");
        assert_eq!(connections_started(daemon, id).await, 0, "{id}: stays stopped");
    }
    for id in &mixed.deleted {
        assert!(!all.contains_key(id), "{id} stays deleted");
        assert!(!exists(&mut sessions, id).await, "{id} stays deleted");
    }
    assert_eq!(
        all.len(),
        mixed.linked.len() + mixed.pairing.len() + mixed.disconnected.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_session_comes_back_after_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let daemon = Process::start(&data_dir, &[]).await;
    let mixed = make_mixed(&daemon).await;
    daemon.kill9();

    let daemon = Process::start(&data_dir, &[]).await;
    check_mixed(&daemon, &mixed).await;

    // Asked, a pairing session opens exactly one connection and shows a code.
    let id = &mixed.pairing[0];
    let mut sessions = daemon.sessions().await;
    let session = sessions.get_session(common::get(id)).await.unwrap().into_inner();
    assert!(session.qr.is_some(), "a code once asked");
    assert_eq!(connections_started(&daemon, id).await, 1);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data_dir), 0o700);
        assert_eq!(mode(&data_dir.join("sessions.db")), 0o600);
        let folder = data_dir.join("sessions").join(&mixed.linked[0]);
        assert_eq!(mode(&folder), 0o700);
        assert_eq!(mode(&folder.join("emulator-device.json")), 0o600);
    }
}

/// What the test knows of each id: whether it exists, or unknown while a call
/// about it was cut off by the kill.
#[derive(Default)]
struct Ledger {
    known: BTreeMap<String, bool>,
    unsure: std::collections::BTreeSet<String>,
}

/// Creates and deletes sessions as fast as it can, noting what was acknowledged.
async fn burst(daemon: &Process, round: usize, ledger: std::sync::Arc<tokio::sync::Mutex<Ledger>>) {
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let mut sessions = daemon.sessions().await;
        let ledger = ledger.clone();
        workers.spawn(async move {
            for n in 0.. {
                let id = format!("burst-{round}-{worker}-{n}");
                ledger.lock().await.unsure.insert(id.clone());
                if sessions.create_session(create(&id)).await.is_err() {
                    return;
                }
                {
                    let mut ledger = ledger.lock().await;
                    ledger.unsure.remove(&id);
                    ledger.known.insert(id.clone(), true);
                }
                if n % 3 == 0 {
                    ledger.lock().await.unsure.insert(id.clone());
                    let request = DeleteSessionRequest { session_id: id.clone() };
                    if sessions.delete_session(request).await.is_err() {
                        return;
                    }
                    let mut ledger = ledger.lock().await;
                    ledger.unsure.remove(&id);
                    ledger.known.insert(id, false);
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

/// Checks every acknowledged create and delete; settles what was in flight.
async fn check_ledger(daemon: &Process, ledger: &tokio::sync::Mutex<Ledger>) {
    let mut sessions = daemon.sessions().await;
    let all = list_all(&mut sessions).await;
    let mut ledger = ledger.lock().await;
    for (id, should_exist) in &ledger.known {
        if ledger.unsure.contains(id) {
            continue;
        }
        assert_eq!(all.contains_key(id), *should_exist, "{id}: acknowledged state lost");
    }
    let unsure = std::mem::take(&mut ledger.unsure);
    for id in unsure {
        ledger.known.insert(id.clone(), all.contains_key(&id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_during_a_burst_loses_nothing_acknowledged() {
    use rand::Rng;
    let tmp = tempfile::tempdir().unwrap();
    let ledger = std::sync::Arc::new(tokio::sync::Mutex::new(Ledger::default()));
    let daemon = Process::start(tmp.path(), &[]).await;
    let mut linked = Vec::new();
    for n in 0..10 {
        let id = format!("steady-{n}");
        daemon.link(&id).await;
        linked.push(id);
    }
    let mut daemon = Some(daemon);
    for round in 0..4 {
        let current = daemon.take().unwrap();
        let moment = Duration::from_millis(rand::thread_rng().gen_range(50..600));
        eprintln!("round {round}: kill -9 after {moment:?} of the burst");
        let traffic = burst(&current, round, ledger.clone());
        tokio::select! {
            () = traffic => panic!("the burst never stops by itself"),
            () = tokio::time::sleep(moment) => {}
        }
        current.kill9();

        let restarted = Process::start(tmp.path(), &[]).await;
        check_ledger(&restarted, &ledger).await;
        let mut sessions = restarted.sessions().await;
        for id in &linked {
            wait_status(&mut sessions, id, SessionStatus::Connected).await;
        }
        daemon = Some(restarted);
    }
    let known = ledger.lock().await.known.len();
    assert!(known > 8, "the bursts acknowledged some work ({known} ids)");
}

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
