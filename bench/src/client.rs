//! Client helpers: gRPC connections, requests, and the waits every scenario needs
//! (sessions CONNECTED, connections closed, every session listed); one metric read
//! from the daemon's admin port.

use std::{net::SocketAddr, time::Duration};

use tonic::transport::{Channel, Endpoint};
use wa_sessiond::proto::{
    emulator_service_client::EmulatorServiceClient, session_service_client::SessionServiceClient,
    CountConnectionsRequest, CreateSessionRequest, GetSessionRequest, ListSessionsRequest, ScanQrRequest, Session,
    SessionStatus,
};

/// The session service over one connection.
pub type Sessions = SessionServiceClient<Channel>;

/// One HTTP/2 connection to `addr`.
pub async fn channel(addr: SocketAddr) -> Result<Channel, String> {
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))
}

/// `count` separate HTTP/2 connections to `addr`.
pub async fn channels(addr: SocketAddr, count: u32) -> Result<Vec<Channel>, String> {
    let mut channels = Vec::with_capacity(count as usize);
    for _ in 0..count {
        channels.push(channel(addr).await?);
    }
    Ok(channels)
}

/// The session service on a new connection.
pub async fn sessions(addr: SocketAddr) -> Result<Sessions, String> {
    Ok(SessionServiceClient::new(channel(addr).await?))
}

/// A CreateSession request.
pub fn create(id: &str) -> tonic::Request<CreateSessionRequest> {
    let mut request = tonic::Request::new(CreateSessionRequest {
        session_id: id.into(),
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(60));
    request
}

/// A GetSession request (may regenerate an exhausted QR batch).
pub fn get(id: &str) -> GetSessionRequest {
    GetSessionRequest {
        session_id: id.into(),
        ..Default::default()
    }
}

/// A GetSession that never starts anything.
pub fn peek(id: &str) -> GetSessionRequest {
    GetSessionRequest {
        no_refresh: true,
        ..get(id)
    }
}

/// The session's status.
pub fn status(session: &Session) -> SessionStatus {
    SessionStatus::try_from(session.status).unwrap_or(SessionStatus::Unspecified)
}

/// Connections the emulator started and has open (`id` empty: all sessions).
pub async fn connections(phone: &mut EmulatorServiceClient<Channel>, id: &str) -> Result<(u64, u64), String> {
    let request = CountConnectionsRequest { session_id: id.into() };
    let count = phone
        .count_connections(request)
        .await
        .map_err(|e| format!("CountConnections failed: {}", e.message()))?
        .into_inner();
    Ok((count.started, count.open))
}

/// Creates the sessions `ids` and links each through the emulated phone; returns
/// once all are CONNECTED (bounded).
pub async fn connected_sessions(channel: &Channel, ids: &[String]) -> Result<(), String> {
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let id = id.clone();
        let mut sessions = SessionServiceClient::new(channel.clone());
        let mut phone = EmulatorServiceClient::new(channel.clone());
        tasks.spawn(async move {
            sessions
                .create_session(create(&id))
                .await
                .map_err(|e| format!("create {id}: {}", e.message()))?;
            let scan = ScanQrRequest {
                session_id: id.clone(),
                ..Default::default()
            };
            phone
                .scan_qr(scan)
                .await
                .map_err(|e| format!("scan {id}: {}", e.message()))?;
            let start = std::time::Instant::now();
            loop {
                let session = sessions
                    .get_session(peek(&id))
                    .await
                    .map_err(|e| e.message().to_owned())?;
                if status(session.get_ref()) == SessionStatus::Connected {
                    return Ok::<_, String>(());
                }
                if start.elapsed() > Duration::from_secs(60) {
                    return Err(format!("session {id} never became CONNECTED"));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Pages through ListSessions; returns how many sessions it listed.
pub async fn list_all(sessions: &mut Sessions) -> Result<u64, String> {
    list_with(sessions, SessionStatus::Unspecified).await
}

/// Pages through ListSessions of one status (UNSPECIFIED: all); returns how many
/// sessions it listed.
pub async fn list_with(sessions: &mut Sessions, status: SessionStatus) -> Result<u64, String> {
    let mut listed = 0;
    let mut page_token = String::new();
    loop {
        let request = ListSessionsRequest {
            page_size: 1000,
            page_token,
            status: status as i32,
        };
        let page = sessions
            .list_sessions(request)
            .await
            .map_err(|e| format!("ListSessions failed: {}", e.message()))?
            .into_inner();
        listed += page.sessions.len() as u64;
        if page.next_page_token.is_empty() {
            return Ok(listed);
        }
        page_token = page.next_page_token;
    }
}

/// The value of the sample `name` (no labels) on the admin port's `/metrics`.
pub async fn metric(admin: SocketAddr, name: &str) -> Result<f64, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(admin).await?;
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    let body = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| format!("{admin}/metrics did not answer in 10 s"))?
        .map_err(|e| format!("cannot read {admin}/metrics: {e}"))?;
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .ok_or_else(|| format!("no {name} in {admin}/metrics"))
}
