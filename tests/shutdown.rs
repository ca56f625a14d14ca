//! SIGTERM as callers see it, on the real binary: a call in flight when the signal
//! comes is answered by the daemon (not cut off with its connection), a call made
//! once the drain has begun is refused with UNAVAILABLE (safe to retry elsewhere),
//! and the process exits 0.

mod common;

use std::{path::Path, time::Duration};

use common::{create, peek, process::Process, wait_for};
use tonic::Code;
use wa_sessiond::proto::{CountConnectionsRequest, Session};

/// The emulator, with a first QR code that takes 3 s: a CreateSession stays in
/// flight that long.
const SLOW_EMULATOR: [&str; 6] = [
    "--backend",
    "emulator",
    "--emulator-qr-delay",
    "3s",
    "--qr-timeout",
    "30s",
];

/// How long the daemon may take to answer once draining.
const ANSWER_BOUND: Duration = Duration::from_secs(10);

/// Whether `answer` came from the daemon itself: a session, or a refusal in its own
/// words (a connection cut mid-call says neither).
fn answered_by_the_daemon(answer: &Result<tonic::Response<Session>, tonic::Status>) -> bool {
    match answer {
        Ok(_) => true,
        Err(status) => status.code() == Code::Unavailable && status.message().contains("retry"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_sigterm_a_call_in_flight_is_answered_and_a_new_call_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let exe = Path::new(env!("CARGO_BIN_EXE_wa-sessiond"));
    let mut daemon = Process::spawn_exe(exe, dir.path(), &SLOW_EMULATOR, &[]).await;
    daemon.wait_ready().await;
    let mut sessions = daemon.sessions().await;
    let phone = daemon.phone().await;

    let in_flight = {
        let mut sessions = sessions.clone();
        tokio::spawn(async move { sessions.create_session(create("in-flight")).await })
    };
    // In flight: its connection started at the emulated WhatsApp, its code not yet.
    wait_for(ANSWER_BOUND, "the create to be in flight", || {
        let mut phone = phone.clone();
        async move {
            let request = CountConnectionsRequest {
                session_id: "in-flight".into(),
            };
            let counted = phone.count_connections(request).await.ok()?.into_inner();
            (counted.started == 1).then_some(())
        }
    })
    .await;
    assert!(!in_flight.is_finished(), "the first code takes 3 s");

    daemon.sigterm();
    wait_for(ANSWER_BOUND, "the drain to begin", || async {
        let log = daemon.log().await;
        log.iter().any(|l| l.contains("shutting down")).then_some(())
    })
    .await;
    // A new call on the connection the client already has.
    let late = tokio::time::timeout(ANSWER_BOUND, sessions.get_session(peek("in-flight")))
        .await
        .expect("a call during the drain is answered, not left hanging");
    let refused = late.expect_err("no new calls once the drain has begun");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    // A new connection, too.
    let fresh = tokio::time::timeout(ANSWER_BOUND, async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", daemon.addr))
            .unwrap()
            .connect()
            .await;
        match channel {
            Ok(channel) => {
                let mut client = wa_sessiond::proto::session_service_client::SessionServiceClient::new(channel);
                client.get_session(peek("in-flight")).await.map(|_| ())
            }
            Err(e) => Err(tonic::Status::unavailable(e.to_string())),
        }
    })
    .await
    .expect("a new connection during the drain is answered, not left hanging");
    assert_eq!(fresh.unwrap_err().code(), Code::Unavailable);

    let answer = tokio::time::timeout(ANSWER_BOUND, in_flight)
        .await
        .expect("the call in flight is answered within the grace")
        .unwrap();
    assert!(answered_by_the_daemon(&answer), "answered by the daemon: {answer:?}");
    let (exit, _) = daemon.wait_exit(Duration::from_secs(15)).await;
    assert!(exit.success(), "exit status {exit:?}");
}
