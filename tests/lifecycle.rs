//! Pause, resume, log out, delete; and the backoff of failed reconnects. (What the
//! phone and the server do to a linked device, a logout, a replaced stream, a
//! dropped socket, is in `tests/fake_whatsapp/alike.rs`, run on both backends.)

mod common;

use std::time::Duration;

use common::*;
use tonic::Code;
use wa_sessiond::{
    domain::SessionId,
    proto::{
        ConnectSessionRequest, DeleteSessionRequest, DisconnectReason, DisconnectSessionRequest, DropConnectionRequest,
        FailConnectsRequest, LogoutSessionRequest, ScanQrRequest, SessionStatus,
    },
};

fn disconnect(id: &str) -> DisconnectSessionRequest {
    DisconnectSessionRequest { session_id: id.into() }
}

#[tokio::test]
async fn disconnect_keeps_the_credentials_and_connect_resumes_without_a_qr() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    let linked = paired(&daemon, "alice").await;

    let stopped = client
        .disconnect_session(disconnect("alice"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&stopped), SessionStatus::Disconnected);
    assert_eq!(stopped.disconnect_reason, DisconnectReason::Requested as i32);
    let again = client
        .disconnect_session(disconnect("alice"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.revision, stopped.revision, "idempotent");

    let connect = ConnectSessionRequest {
        session_id: "alice".into(),
        ..Default::default()
    };
    let resumed = client.connect_session(connect).await.unwrap().into_inner();
    assert_eq!(status(&resumed), SessionStatus::Connected);
    assert!(resumed.qr.is_none());
    assert_eq!(resumed.jid, linked.jid);
    daemon.stop().await;
}

#[tokio::test]
async fn disconnecting_a_pairing_session_closes_it_and_clears_the_qr() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    client.create_session(create("bob")).await.unwrap();

    let stopped = client.disconnect_session(disconnect("bob")).await.unwrap().into_inner();

    assert_eq!(status(&stopped), SessionStatus::Disconnected);
    assert!(stopped.qr.is_none());
    let scan = ScanQrRequest {
        session_id: "bob".into(),
        ..Default::default()
    };
    let refused = daemon.phone().await.scan_qr(scan).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "no connection shows a code");
    daemon.stop().await;
}

#[tokio::test]
async fn failed_reconnects_back_off_with_growing_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let cap = Duration::from_secs(4);
    let daemon = Daemon::start(dir.path(), |c| c.reconnect_max_delay = cap).await;
    let mut client = daemon.sessions().await;
    paired(&daemon, "frank").await;
    let before = daemon.connections("frank").await as usize;
    let mut phone = daemon.phone().await;
    let fail = FailConnectsRequest {
        session_id: "frank".into(),
        count: 3,
    };
    phone.fail_connects(fail).await.unwrap();

    phone
        .drop_connection(DropConnectionRequest {
            session_id: "frank".into(),
        })
        .await
        .unwrap();
    // The drop is taken up asynchronously: wait for the attempts, then the state.
    common::wait_for(Duration::from_secs(20), "4 connection attempts", || {
        let daemon = &daemon;
        async move { (daemon.connections("frank").await as usize >= before + 4).then_some(()) }
    })
    .await;
    wait_session(&mut client, "frank", "CONNECTED after 3 failures", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;

    let times = daemon
        .emulator
        .connection_times(&SessionId::parse("frank").unwrap())
        .await;
    let attempts = &times[before..];
    assert_eq!(attempts.len(), 4, "3 refused, then one that worked");
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    // Each gap is at least its delay less the 20% jitter (0.5 s doubling: 0.4, 0.8,
    // 1.6 s); load only lengthens a gap, so these floors cannot flake, and they grow.
    // Next to each other two gaps differ by as little as 200 ms of jitter, which a
    // loaded machine eats; two apart they differ by a second at least.
    for (n, gap) in gaps.iter().enumerate() {
        let floor = Duration::from_millis(400) * 2u32.pow(n as u32);
        assert!(*gap >= floor, "gap {n} is at least {floor:?}: {gaps:?}");
    }
    assert!(gaps[0] < gaps[2], "gaps grow: {gaps:?}");
    assert!(
        gaps.iter().all(|g| *g <= cap + STEP * 2),
        "gaps stay under the cap: {gaps:?}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn logout_unlinks_and_wipes_the_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    paired(&daemon, "gina").await;
    let creds = dir.path().join("sessions/gina/emulator-device.json");
    assert!(creds.exists());

    let request = LogoutSessionRequest {
        session_id: "gina".into(),
    };
    let out = client.logout_session(request).await.unwrap().into_inner();

    assert_eq!(status(&out), SessionStatus::LoggedOut);
    assert!(!creds.exists(), "credentials wiped");
    let no_refresh = client.get_session(peek("gina")).await.unwrap().into_inner();
    assert_eq!(
        status(&no_refresh),
        SessionStatus::LoggedOut,
        "no_refresh starts nothing"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn delete_removes_every_file_and_the_id_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    paired(&daemon, "hank").await;
    let folder = dir.path().join("sessions/hank");
    assert!(folder.exists());

    let delete = DeleteSessionRequest {
        session_id: "hank".into(),
    };
    client.delete_session(delete.clone()).await.unwrap();

    assert_eq!(
        client.get_session(get("hank")).await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(!folder.exists(), "the session's files are gone");
    assert_eq!(client.delete_session(delete).await.unwrap_err().code(), Code::NotFound);
    let again = client.create_session(create("hank")).await.unwrap().into_inner();
    assert_eq!(status(&again), SessionStatus::QrWaiting, "a brand-new pairing");
    assert!(again.jid.is_empty());
    daemon.stop().await;
}

#[tokio::test]
async fn gets_racing_a_delete_never_bring_the_session_back() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    client.create_session(create("ivy")).await.unwrap();
    let racers: Vec<_> = (0..20)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { client.get_session(get("ivy")).await.map(|_| ()) })
        })
        .collect();
    client
        .delete_session(DeleteSessionRequest {
            session_id: "ivy".into(),
        })
        .await
        .unwrap();
    for racer in racers {
        if let Err(status) = racer.await.unwrap() {
            assert!(
                matches!(status.code(), Code::NotFound | Code::Unavailable),
                "{status:?}"
            );
        }
    }
    assert_eq!(client.get_session(get("ivy")).await.unwrap_err().code(), Code::NotFound);
    assert!(!dir.path().join("sessions/ivy").exists());
    daemon.stop().await;
}
