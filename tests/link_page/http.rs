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
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}
