//! No one takes the page down without a token, nor holds it with slow or stalled
//! connections: the token is checked before any body is read, a head or body sent
//! byte by byte is cut after `--link-read-timeout`, connections per client address
//! and feeds per link are capped (429), a feed whose client stopped reading ends
//! and frees its connection, and an open feed ends at its link's expiry.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::{
    common,
    http::{self, Answer},
    link_daemon::{LinkDaemon, SHOWN},
};

/// A bound comfortably above the short read timeout these tests configure.
const CUT_WITHIN: Duration = Duration::from_secs(4);
/// The read timeout these tests configure.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// `http://host:port/path` → (`host:port`, `/path`).
fn split(url: &str) -> (&str, &str) {
    let rest = url.strip_prefix("http://").expect("an http url");
    let at = rest.find('/').unwrap_or(rest.len());
    (&rest[..at], &rest[at..])
}

/// A POST's head as the page sends it, announcing `length` body bytes.
fn post_head(url: &str, length: usize) -> String {
    let (host, path) = split(url);
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nOrigin: http://{host}\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// Reads what the server sends until it closes, at most `bound`; None if it did not
/// close within it.
async fn read_to_close(stream: &mut TcpStream, bound: Duration) -> Option<String> {
    let mut raw = Vec::new();
    let read = tokio::time::timeout(bound, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&chunk[..n]),
            }
        }
    });
    read.await.ok()?;
    Some(String::from_utf8_lossy(&raw).into_owned())
}

/// Sends `head` at once, then `slowly` a byte every 100 ms, and reads what the server
/// answers until it closes the connection (panics if it does not within CUT_WITHIN).
async fn trickled(url: &str, head: String, slowly: Vec<u8>) -> String {
    let stream = TcpStream::connect(split(url).0).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await.unwrap();
        for byte in slowly {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Kept open, so only the server can end the connection.
        std::future::pending::<()>().await;
    });
    let mut raw = Vec::new();
    let read = tokio::time::timeout(CUT_WITHIN, reader.read_to_end(&mut raw)).await;
    writing.abort();
    assert!(
        read.is_ok(),
        "the server did not cut the connection within {CUT_WITHIN:?}"
    );
    String::from_utf8_lossy(&raw).into_owned()
}

/// The status of a raw response.
fn status(raw: &str) -> u16 {
    raw.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn a_post_with_a_bad_token_is_refused_before_its_body_arrives() {
    let daemon = LinkDaemon::start(|_| {}).await;
    let url = daemon.session_with_link("ada", "").await;
    let (prefix, _) = url.rsplit_once('/').unwrap();
    for action in ["refresh", "pairing-code"] {
        let forged = format!("{prefix}/not-a-token/{action}");
        let mut stream = TcpStream::connect(split(&forged).0).await.unwrap();
        // The head promises a body that never comes.
        stream.write_all(post_head(&forged, 100).as_bytes()).await.unwrap();
        let answer = read_to_close(&mut stream, CUT_WITHIN)
            .await
            .unwrap_or_else(|| panic!("{action}: no answer without the body"));
        assert_eq!(status(&answer), 403, "{action}: {answer}");
    }
    let refused = daemon.daemon.scrape().await;
    assert_eq!(
        refused.value("wa_sessiond_link_refusals_total", &[("reason", "forged")]),
        2.0
    );
    daemon.daemon.stop().await;
}

#[tokio::test]
async fn a_body_or_a_head_sent_byte_by_byte_is_cut_after_the_read_timeout() {
    let daemon = LinkDaemon::start(|c| c.link.link_read_timeout = READ_TIMEOUT).await;
    let url = daemon.session_with_link("bea", "").await;
    let refresh = format!("{url}/refresh");
    let body = "{}".repeat(40);

    // The body, a byte every 100 ms (8 s in all): answered 408 after 1 s.
    let started = tokio::time::Instant::now();
    let answer = trickled(&refresh, post_head(&refresh, body.len()), body.into_bytes()).await;
    assert_eq!(status(&answer), 408, "{answer}");
    assert!(started.elapsed() < CUT_WITHIN, "cut after {:?}", started.elapsed());

    // A head, a byte every 100 ms (never finished): the connection is closed after 1 s.
    let (host, path) = split(&url);
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Slow: {}\r\n\r\n",
        "a".repeat(200)
    );
    let started = tokio::time::Instant::now();
    trickled(&url, String::new(), head.into_bytes()).await;
    assert!(started.elapsed() < CUT_WITHIN, "cut after {:?}", started.elapsed());

    let refused = daemon.daemon.scrape().await;
    assert_eq!(
        refused.value("wa_sessiond_link_refusals_total", &[("reason", "slow_body")]),
        1.0
    );
    daemon.daemon.stop().await;
}

/// A feed kept open on its own connection.
async fn feed(url: &str) -> http::Feed {
    http::open_feed(&format!("{url}/events"), &[]).await
}

fn too_many(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 429, "{what}: {}", answer.body);
    let retry: u64 = answer
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: a Retry-After in seconds"));
    assert!(retry >= 1, "{what}: {retry}");
}

#[tokio::test]
async fn connections_per_client_address_and_feeds_per_link_are_capped_with_429() {
    let daemon = LinkDaemon::start(|c| {
        c.link.link_max_feeds_per_link = 2;
        c.link.link_max_connections_per_client = 3;
    })
    .await;
    let url = daemon.session_with_link("cleo", "").await;
    let (first, second) = (feed(&url).await, feed(&url).await);
    assert_eq!((first.answer.status, second.answer.status), (200, 200));
    too_many(&feed(&url).await.answer, "a third feed of one link");

    // Two feeds and one idle connection: the client's three. A fourth is refused.
    let idle = TcpStream::connect(split(&url).0).await.unwrap();
    too_many(&http::get(&url).await, "a fourth connection from one address");
    drop((first, idle));
    common::wait_for(SHOWN, "a place freed by a closed feed", || async {
        (http::get(&url).await.status == 200).then_some(())
    })
    .await;
    let scrape = daemon.daemon.scrape().await;
    assert_eq!(
        scrape.value("wa_sessiond_link_refusals_total", &[("reason", "link_feeds")]),
        1.0
    );
    assert!(scrape.value("wa_sessiond_link_refusals_total", &[("reason", "client_connections")]) >= 1.0);
    drop(second);
    daemon.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_client_stopped_reading_ends_and_frees_its_connection() {
    // Codes rotate every second (each state a few KB of SVG); the client reads
    // nothing, through a tiny receive window, so the server's writes soon block.
    let daemon = LinkDaemon::start(|c| {
        c.emulator_first_qr_ttl = Duration::from_secs(1);
        c.emulator_next_qr_ttl = Duration::from_secs(1);
        c.emulator_qr_count = 32;
        c.link.link_idle_timeout = Duration::from_secs(3);
        c.link.link_write_timeout = Duration::from_secs(1);
    })
    .await;
    let url = daemon.session_with_link("dora", "").await;
    let (host, path) = split(&url);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    let addr: std::net::SocketAddr = host.parse().unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut stalled = TcpStream::from_std(socket.into()).unwrap();
    let request = format!("GET {path}/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n");
    stalled.write_all(request.as_bytes()).await.unwrap();

    let feeds_open = || async { daemon.daemon.scrape().await.value("wa_sessiond_link_feeds_open", &[]) };
    common::wait_for(SHOWN, "the stalled client's feed to open", || async {
        (feeds_open().await == 1.0).then_some(())
    })
    .await;
    // Idle timeout (3 s) plus the write timeout's grace (1 s), with room to spare.
    common::wait_for(Duration::from_secs(10), "the stalled feed to end", || async {
        (feeds_open().await == 0.0).then_some(())
    })
    .await;
    drop(stalled);
    daemon.daemon.stop().await;
}

#[tokio::test]
async fn an_open_feed_ends_at_its_links_expiry() {
    // Idle timeout and codes far longer than the link: only the expiry can end it.
    let daemon = LinkDaemon::start(|c| {
        c.emulator_first_qr_ttl = Duration::from_secs(60);
        c.emulator_next_qr_ttl = Duration::from_secs(60);
        c.link.link_idle_timeout = Duration::from_secs(120);
    })
    .await;
    daemon
        .daemon
        .sessions()
        .await
        .create_session(common::create("eli"))
        .await
        .unwrap();
    let ttl = Duration::from_secs(3);
    let issued = Instant::now();
    let url = daemon.link("eli", Some(ttl), "").await;
    let mut open = feed(&url).await;
    open.read_until(SHOWN, "the code", |body| body.contains("SESSION_STATUS_QR_WAITING"))
        .await;
    assert!(!open.answer.body.contains("event: gone"), "{}", open.answer.body);

    open.read_until(ttl + SHOWN, "the feed to say the link is gone", |body| {
        body.contains("event: gone")
    })
    .await;
    // The link was issued after `issued`, so it cannot have expired before `ttl` from
    // then (a second's slack for the token's millisecond rounding).
    let ended_after = issued.elapsed();
    assert!(
        ended_after + Duration::from_secs(1) >= ttl,
        "ended {ended_after:?} after the link was issued, before its {ttl:?}"
    );
    open.read_to_close(SHOWN).await;
    let feeds_open = || async { daemon.daemon.scrape().await.value("wa_sessiond_link_feeds_open", &[]) };
    common::wait_for(SHOWN, "the expired feed's place to be freed", || async {
        (feeds_open().await == 0.0).then_some(())
    })
    .await;

    let expired = http::get(&url).await;
    assert_eq!(expired.status, 410, "{}", expired.body);
    assert!(expired.body.contains("It has expired"), "{}", expired.body);
    daemon.daemon.stop().await;
}
