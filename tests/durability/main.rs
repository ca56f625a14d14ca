//! Durability, with the real binary as a child process: kill -9 at any moment,
//! SIGTERM, restarts on the same data dir, readiness during the restore, corrupt
//! records and credentials.

#[path = "../common/mod.rs"]
mod common;
mod kill9;
mod restart;

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
