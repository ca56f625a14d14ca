//! Every long-lived part of the daemon is watched the same way as the registry and
//! the gRPC server: when the admin port or the link page stops for good (its
//! listener can never accept again), the daemon ends with the reason and `/livez`
//! answers 503 naming it; a shutdown ending them is no death.

mod common;

use std::{net::Shutdown, sync::Arc};

use common::{http_get, Daemon};
use socket2::SockRef;
use tokio::net::TcpListener;
use wa_sessiond::{admin::Admin, app, readiness::Readiness};

/// A listener on 127.0.0.1:0 for the daemon, and a second handle on the same
/// socket the test keeps to shut it down under the daemon.
fn listener_with_handle() -> (TcpListener, std::net::TcpListener) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let handle = listener.try_clone().unwrap();
    listener.set_nonblocking(true).unwrap();
    (TcpListener::from_std(listener).unwrap(), handle)
}

/// An admin port of the test's own on `wiring`'s readiness: it outlives the daemon.
async fn probe(wiring: &app::Wiring) -> (std::net::SocketAddr, tokio::task::JoinHandle<std::io::Error>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let admin = Admin {
        metrics: wiring.metrics.clone(),
        readiness: Arc::clone(&wiring.readiness),
    };
    (addr, tokio::spawn(admin.serve(listener)))
}

#[tokio::test]
async fn an_admin_port_that_dies_ends_the_daemon_with_the_reason_and_livez_fails() {
    let dir = tempfile::tempdir().unwrap();
    let wiring = app::Wiring::default();
    let (probe_addr, probe_task) = probe(&wiring).await;
    let (admin, handle) = listener_with_handle();
    let listeners = app::Listeners {
        admin,
        ..common::local_listeners().await
    };
    let daemon = Daemon::start_on(listeners, dir.path(), |_| {}, wiring).await;
    assert_eq!(daemon.admin_get("/livez").await.0, 200);

    SockRef::from(&handle).shutdown(Shutdown::Both).unwrap();
    let ended = daemon
        .exited()
        .await
        .expect_err("a dead admin port ends the daemon with an error");
    let line = ended.to_string();
    assert!(
        line.contains("the admin port ended unexpectedly (its listener failed"),
        "{line}"
    );
    assert_eq!(
        http_get(probe_addr, "/livez").await,
        (503, "not live: the admin port ended\n".to_owned())
    );
    assert_eq!(http_get(probe_addr, "/readyz").await.0, 503);
    probe_task.abort();
}

#[tokio::test]
async fn a_link_page_that_dies_ends_the_daemon_with_the_reason_and_livez_fails() {
    let dir = tempfile::tempdir().unwrap();
    let wiring = app::Wiring::default();
    let (probe_addr, probe_task) = probe(&wiring).await;
    let (link, handle) = listener_with_handle();
    let listeners = app::Listeners {
        link: Some(link),
        ..common::local_listeners().await
    };
    let daemon = Daemon::start_on(listeners, dir.path(), |_| {}, wiring).await;
    assert_eq!(http_get(probe_addr, "/livez").await.0, 200);

    SockRef::from(&handle).shutdown(Shutdown::Both).unwrap();
    let ended = daemon
        .exited()
        .await
        .expect_err("a dead link page ends the daemon with an error");
    let line = ended.to_string();
    assert!(
        line.contains("the link page ended unexpectedly (its listener failed"),
        "{line}"
    );
    assert_eq!(
        http_get(probe_addr, "/livez").await,
        (503, "not live: the link page ended\n".to_owned())
    );
    probe_task.abort();
}

#[tokio::test]
async fn a_shutdown_ending_the_watched_tasks_is_no_death() {
    let dir = tempfile::tempdir().unwrap();
    let wiring = app::Wiring::default();
    let readiness: Arc<Readiness> = Arc::clone(&wiring.readiness);
    let (link, _handle) = listener_with_handle();
    let listeners = app::Listeners {
        link: Some(link),
        ..common::local_listeners().await
    };
    let daemon = Daemon::start_on(listeners, dir.path(), |_| {}, wiring).await;
    daemon.stop().await;
    assert_eq!(readiness.not_live_reason(), None, "a shutdown kills nothing");
}
