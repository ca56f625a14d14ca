//! Open files, on the real backend against the fake, in the binary under a low
//! `ulimit -n`: sessions are linked until a create is refused for want of room for
//! another session's files (RESOURCE_EXHAUSTED naming the limit and what to do),
//! and every session already linked stays CONNECTED: none stalls retrying with
//! "Too many open files".

use fake_whatsapp::proto::ScanQrRequest;
use tonic::Code;
use wa_sessiond::proto::SessionStatus;

use super::{common::process::Process, common::*, Fake, STEP_BOUND};

/// The limit the binary runs under (soft and hard).
const NOFILE: u64 = 256;

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
        let created = match client.create_session(create(&id)).await {
            Ok(created) => created.into_inner(),
            Err(refused) => break refused,
        };
        let scan = ScanQrRequest {
            code: created.qr.expect("a first qr code").code,
            phone_number: format!("1555000{:04}", linked.len()),
        };
        fake.control.clone().scan_qr(scan).await.unwrap();
        wait_for(STEP_BOUND, "the session CONNECTED", || {
            let mut client = client.clone();
            let id = id.clone();
            async move {
                let session = client.get_session(peek(&id)).await.ok()?.into_inner();
                (status(&session) == SessionStatus::Connected).then_some(())
            }
        })
        .await;
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
