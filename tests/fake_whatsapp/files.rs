//! Open files, on the real backend against the fake, in the binary: a connected
//! session holds what the budget says, two (its socket and its credential store's
//! database; the store keeps a rollback journal, so no -wal and -shm stay open); under
//! a low `ulimit -n`, sessions are linked until a create is refused for want of
//! room for another session's files (RESOURCE_EXHAUSTED naming the limit and what
//! to do), and every session already linked stays CONNECTED: none stalls retrying
//! with "Too many open files".

use std::path::Path;

use fake_whatsapp::proto::ScanQrRequest;
use tonic::{transport::Channel, Code, Status};
use wa_sessiond::proto::{session_service_client::SessionServiceClient, ListSessionsRequest, SessionStatus};

use super::{common::process::Process, common::*, Fake, STEP_BOUND};

/// The limit the binary runs under (soft and hard).
const NOFILE: u64 = 256;

/// What a connected session may hold open: its socket and its store's database
/// (the daemon's budget per session).
const PER_SESSION: usize = 2;

/// Creates `id`, scans its first code with the phone `phone` and waits for
/// CONNECTED; a refused create comes back.
async fn link(client: &mut SessionServiceClient<Channel>, fake: &Fake, id: &str, phone: String) -> Result<(), Status> {
    let created = client.create_session(create(id)).await?.into_inner();
    let scan = ScanQrRequest {
        code: created.qr.expect("a first qr code").code,
        phone_number: phone,
    };
    fake.control.clone().scan_qr(scan).await.unwrap();
    wait_for(STEP_BOUND, "the session CONNECTED", || {
        let mut client = client.clone();
        async move {
            let session = client.get_session(peek(id)).await.ok()?.into_inner();
            (status(&session) == SessionStatus::Connected).then_some(())
        }
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn a_connected_session_holds_the_two_open_files_its_budget_counts() {
    const SESSIONS: usize = 6;
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Process::start_real(dir.path(), &fake.running.url(), &[]).await;
    let mut client = daemon.sessions().await;
    client.list_sessions(ListSessionsRequest::default()).await.unwrap();
    let before = daemon.open_files().len();
    let ids: Vec<String> = (0..SESSIONS).map(|n| format!("s{n}")).collect();
    for (n, id) in ids.iter().enumerate() {
        link(&mut client, &fake, id, format!("1555100{n:04}")).await.unwrap();
    }

    // The probes and pairing connections close; what stays is the sessions' own,
    // give or take the daemon's own churn (half a file per session at most). A
    // store in the middle of a write holds its journal until the commit: the count
    // is taken once no store is writing.
    let budget = before + SESSIONS * PER_SESSION + SESSIONS / 2;
    let sessions = dir.path().join("sessions");
    let settled = tokio::time::Instant::now() + STEP_BOUND;
    let open = loop {
        let open = daemon.open_files();
        let writing = open
            .iter()
            .any(|file| file.starts_with(&sessions) && file.to_string_lossy().ends_with("-journal"));
        if (open.len() <= budget && !writing) || tokio::time::Instant::now() > settled {
            break open;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let per_session = open.len().saturating_sub(before) as f64 / SESSIONS as f64;
    eprintln!(
        "{} open files with {SESSIONS} connected sessions, {before} before: {per_session:.2} per session",
        open.len()
    );
    assert!(open.len() <= budget, "{per_session:.2} per session: {open:?}");
    for id in &ids {
        let folder = sessions.join(id);
        let mut held: Vec<String> = open
            .iter()
            .filter(|file| file.starts_with(&folder))
            .map(|file| file.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        held.sort();
        assert_eq!(held, ["whatsapp.db"], "{id}");
    }

    daemon.sigterm();
    daemon.wait_exit(STEP_BOUND).await;
    for id in &ids {
        let mode = read_journal_mode(&sessions.join(id).join("whatsapp.db"));
        assert_eq!(mode.as_deref(), Ok("delete"), "{id}");
    }
}

/// The store's journal mode, read-only.
fn read_journal_mode(store: &Path) -> Result<String, String> {
    let conn = rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| e.to_string())?;
    conn.busy_timeout(std::time::Duration::ZERO)
        .map_err(|e| e.to_string())?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get::<_, i64>(0))
        .and_then(|_| conn.query_row("PRAGMA journal_mode", [], |row| row.get(0)))
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn creates_beyond_the_open_files_budget_are_refused_and_the_linked_sessions_stay_connected() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Process::start_real_with_nofile(dir.path(), &fake.running.url(), NOFILE, &[]).await;
    let mut client = daemon.sessions().await;
    let mut linked = Vec::new();
    let refused = loop {
        assert!(
            linked.len() < 64,
            "{NOFILE} open files cannot hold {} sessions",
            linked.len()
        );
        let id = format!("s{:02}", linked.len());
        let phone = format!("1555000{:04}", linked.len());
        if let Err(refused) = link(&mut client, &fake, &id, phone).await {
            break refused;
        }
        linked.push(id);
    };
    eprintln!(
        "{} sessions linked under {NOFILE} open files before a create was refused",
        linked.len()
    );
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let said = refused.message();
    assert!(
        said.contains(&format!("limit of {NOFILE}")) && said.contains("ulimit -n"),
        "{said}"
    );
    assert!(linked.len() >= 5, "a few sessions fit under {NOFILE}: {}", linked.len());

    for id in &linked {
        let session = client.get_session(peek(id)).await.unwrap().into_inner();
        assert_eq!(
            status(&session),
            SessionStatus::Connected,
            "{id}: {}",
            session.last_error
        );
    }
    let log = daemon.log().await;
    assert!(
        !log.iter().any(|line| line.contains("Too many open files")),
        "no session ran out"
    );
    assert!(log
        .iter()
        .any(|line| line.contains("open files limit") && line.contains(&format!("soft={NOFILE}"))));
}
