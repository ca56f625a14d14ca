//! kill -9 with sessions in every state, and at random moments during a burst of
//! creates: every session and every acknowledged change comes back.

use super::*;

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
