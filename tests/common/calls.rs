//! Bounded waits, request builders, session reads and the admin port's scrapes that
//! the tests share.

use super::*;

/// Polls `check` every few milliseconds until it returns Some, at most `bound`.
pub async fn wait_for<T, F, Fut>(bound: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < bound, "timed out after {bound:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub fn create(id: &str) -> wa_sessiond::proto::CreateSessionRequest {
    wa_sessiond::proto::CreateSessionRequest {
        session_id: id.into(),
        ..Default::default()
    }
}

pub fn get(id: &str) -> wa_sessiond::proto::GetSessionRequest {
    wa_sessiond::proto::GetSessionRequest {
        session_id: id.into(),
        ..Default::default()
    }
}

pub fn peek(id: &str) -> wa_sessiond::proto::GetSessionRequest {
    wa_sessiond::proto::GetSessionRequest {
        session_id: id.into(),
        no_refresh: true,
        ..Default::default()
    }
}

/// Reads the session without starting anything until `pred` holds.
pub async fn wait_session(
    client: &mut SessionServiceClient<Channel>,
    id: &str,
    what: &str,
    pred: impl Fn(&Session) -> bool,
) -> Session {
    wait_for(Duration::from_secs(10), what, || {
        let mut client = client.clone();
        let pred = &pred;
        async move {
            // UNAVAILABLE (restarting after a crash) is safe to retry.
            match client.get_session(peek(id)).await {
                Ok(session) => Some(session.into_inner()).filter(|s| pred(s)),
                Err(e) if e.code() == tonic::Code::Unavailable => None,
                Err(e) => panic!("{id}: {e}"),
            }
        }
    })
    .await
}

pub fn status(session: &Session) -> SessionStatus {
    SessionStatus::try_from(session.status).unwrap()
}

pub fn qr_ttl(session: &Session) -> Duration {
    let qr = session.qr.as_ref().expect("a qr");
    let issued = std::time::SystemTime::try_from(qr.issued_at.unwrap()).unwrap();
    let expires = std::time::SystemTime::try_from(qr.expires_at.unwrap()).unwrap();
    expires.duration_since(issued).unwrap()
}

pub fn qr_is_valid_now(session: &Session) -> bool {
    let expires = std::time::SystemTime::try_from(session.qr.as_ref().unwrap().expires_at.unwrap()).unwrap();
    expires > std::time::SystemTime::now()
}

/// Creates `id` and links it through the emulator; returns it CONNECTED.
pub async fn paired(daemon: &Daemon, id: &str) -> Session {
    let mut client = daemon.sessions().await;
    client.create_session(create(id)).await.unwrap();
    let scan = wa_sessiond::proto::ScanQrRequest {
        session_id: id.into(),
        code: String::new(),
        phone_number: String::new(),
    };
    daemon.phone().await.scan_qr(scan).await.unwrap();
    wait_session(&mut client, id, "CONNECTED", |s| status(s) == SessionStatus::Connected).await
}

/// The next message of a stream, within 10 s.
pub async fn next<T>(stream: &mut tonic::Streaming<T>) -> Option<T> {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a stream message within 10s")
        .expect("a healthy stream")
}

/// Asserts `happens` stays false for `span` (checked every few ms): for "no
/// reconnect attempt" style promises.
pub async fn stays_false<F, Fut>(span: Duration, what: &str, mut happens: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < span {
        assert!(!happens().await, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain HTTP/1.1 GET: the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("the admin port answers within 10s");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an http response");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    (code, body.to_owned())
}

/// One sample of a scrape: its name, its labels and its value.
type Sample = (String, Vec<(String, String)>, f64);

/// One scrape of `/metrics`: every sample by name and labels.
pub struct Scrape {
    samples: Vec<Sample>,
}

impl Scrape {
    /// Parses the text exposition (comments skipped, labels without escapes).
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a sample");
                let (name, labels) = match series.split_once('{') {
                    Some((name, labels)) => (name, labels.trim_end_matches('}')),
                    None => (series, ""),
                };
                let labels = labels
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair.split_once('=').expect("a label");
                        (key.to_owned(), value.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels, value.parse().expect("a number"))
            })
            .collect();
        Self { samples }
    }

    /// The sum of `name`'s samples whose labels include `labels` (0 when none).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, have, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v))
            })
            .map(|(_, _, value)| value)
            .sum()
    }
}
