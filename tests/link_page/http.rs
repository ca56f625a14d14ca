//! A plain HTTP/1.1 client for the link page's own URLs (loopback only): the
//! status, the headers and the body, so tests can check what a browser is told.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// An answer.
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (for a stream: what came before the connection was cut).
    pub body: String,
}

impl Answer {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split(url: &str) -> (&str, &str) {
    let rest = url.strip_prefix("http://").expect("an http url");
    let at = rest.find('/').unwrap_or(rest.len());
    (&rest[..at], &rest[at..])
}

/// GET `url`.
pub async fn get(url: &str) -> Answer {
    request("GET", url, &[], "").await
}

/// Sends one request and reads the answer until the server closes or 3 s pass
/// (enough for a page; a feed is cut there).
pub async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let (host, path) = split(url);
    let mut stream = TcpStream::connect(host).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut raw)).await;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an http response");
    let (status, headers) = parse_head(head);
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The status code and the header lines (names lowercased) of a response head.
fn parse_head(head: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers)
}

/// A feed kept open: its answer so far (the body grows as events come) and the
/// connection it comes on.
pub struct Feed {
    /// The head, and the body read so far.
    pub answer: Answer,
    stream: TcpStream,
}

/// GETs `url` with `headers` and reads the answer's head, within 10 s.
pub async fn open_feed(url: &str, headers: &[(&str, &str)]) -> Feed {
    let (host, path) = split(url);
    let mut stream = TcpStream::connect(host).await.unwrap();
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let read_head = async {
        while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the connection closed before the head: {raw:?}");
            raw.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_head)
        .await
        .expect("a response head within 10s");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let (status, headers) = parse_head(head);
    let answer = Answer {
        status,
        headers,
        body: body.to_owned(),
    };
    Feed { answer, stream }
}

impl Feed {
    /// Reads on until `done` holds for the body (panics past `bound`, or if the
    /// server closes first).
    pub async fn read_until(&mut self, bound: Duration, what: &str, done: impl Fn(&str) -> bool) {
        let read = async {
            while !done(&self.answer.body) {
                let mut chunk = [0u8; 4096];
                let n = self.stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the feed ended before {what}: {}", self.answer.body);
                self.answer.body.push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        };
        tokio::time::timeout(bound, read)
            .await
            .unwrap_or_else(|_| panic!("timed out after {bound:?} waiting for {what}: {}", self.answer.body));
    }

    /// Reads on until the server closes the connection (panics past `bound`).
    pub async fn read_to_close(&mut self, bound: Duration) {
        let read = async {
            loop {
                let mut chunk = [0u8; 4096];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => self.answer.body.push_str(&String::from_utf8_lossy(&chunk[..n])),
                }
            }
        };
        tokio::time::timeout(bound, read)
            .await
            .unwrap_or_else(|_| panic!("the server kept the feed open past {bound:?}: {}", self.answer.body));
    }
}
