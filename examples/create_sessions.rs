//! Creates N sessions on a running daemon over gRPC and waits until each answered
//! (with a QR code, or with why not), for measuring what sessions cost.
//!
//! `cargo run --release --example create_sessions -- http://127.0.0.1:50051 100 [prefix]`

use std::time::Duration;

use wa_sessiond::proto::{session_service_client::SessionServiceClient, CreateSessionRequest};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoint = args.next().unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let count: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(100);
    let prefix = args.next().unwrap_or_else(|| "rss".into());
    let mut client = SessionServiceClient::connect(endpoint).await?;
    // One call first, so the server's HTTP/2 settings (its stream limit) are known
    // before the burst; h2 refuses streams opened past the limit.
    let warmup = wa_sessiond::proto::ListSessionsRequest {
        page_size: 1,
        ..Default::default()
    };
    client.list_sessions(warmup).await?;

    let mut calls = tokio::task::JoinSet::new();
    for n in 0..count {
        let mut client = client.clone();
        let session_id = format!("{prefix}-{n}");
        calls.spawn(async move {
            let mut request = tonic::Request::new(CreateSessionRequest {
                session_id,
                ..Default::default()
            });
            request.set_timeout(Duration::from_secs(60));
            client
                .create_session(request)
                .await
                .map(|_| ())
                .map_err(|e| (e.code(), e.message().to_owned()))
        });
    }
    let mut with_qr = 0;
    let mut failures = std::collections::BTreeMap::new();
    while let Some(answer) = calls.join_next().await {
        match answer? {
            Ok(()) => with_qr += 1,
            Err((code, message)) => {
                let seen = failures.entry(format!("{code:?}")).or_insert((0, message));
                seen.0 += 1;
            }
        }
    }
    println!("created {count} sessions: {with_qr} with a qr code, failures {failures:?}");
    Ok(())
}
