//! One message per idempotency key: concurrent retries, a restart, other content.

use super::*;

#[tokio::test]
async fn the_same_key_sent_50_times_at_once_and_again_after_a_restart_is_one_message_with_one_answer() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let client = daemon.sessions().await;
    paired(&daemon, "alice").await;

    let calls = (0..50).map(|_| {
        let mut client = client.clone();
        async move { send(&mut client, text("alice", "+15550001111", "invoice-77", "your invoice")).await }
    });
    let answers = futures_join_all(calls).await;
    let first = answers[0].clone();
    assert_eq!(first.status, MessageStatus::Sent as i32);
    assert!(answers.iter().all(|a| *a == first), "50 identical answers");
    let at = at_server(&daemon, "alice").await;
    assert_eq!(at.len(), 1, "one message at the server");
    assert_eq!(at[0].message_id, first.message_id);
    daemon.stop().await;

    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    wait_session(&mut client, "alice", "CONNECTED again", |s| {
        status(s) == wa_sessiond::proto::SessionStatus::Connected
    })
    .await;
    let again = send(&mut client, text("alice", "+15550001111", "invoice-77", "your invoice")).await;
    assert_eq!(again, first, "the 51st answer, after a restart, is the first");
    assert_eq!(at_server(&daemon, "alice").await.len(), 1, "still one message");

    let other = client
        .send_message(text("alice", "+15550001111", "invoice-77", "another text"))
        .await
        .unwrap_err();
    assert_eq!(other.code(), tonic::Code::AlreadyExists);
    assert!(
        other.message().contains("invoice-77") && other.message().contains(&first.message_id),
        "{}",
        other.message()
    );
    assert!(!other.message().contains("another text"), "no body in errors");
    daemon.stop().await;
}

#[tokio::test]
async fn keys_belong_to_their_session_and_calls_without_one_are_each_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    paired(&daemon, "alice").await;
    paired(&daemon, "bob").await;
    let a = send(&mut client, text("alice", "+15550001111", "k", "hi")).await;
    let b = send(&mut client, text("bob", "+15550001111", "k", "hi")).await;
    assert_ne!(a.message_id, b.message_id, "one key on two sessions is two messages");
    let c = send(&mut client, text("alice", "+15550001111", "", "hi")).await;
    let d = send(&mut client, text("alice", "+15550001111", "", "hi")).await;
    assert_ne!(c.message_id, d.message_id);
    assert_eq!(at_server(&daemon, "alice").await.len(), 3);
    daemon.stop().await;
}

/// Runs the futures concurrently, answers in order.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}
