//! The WhatsApp Web version the fake stands for: its current one, served as
//! WhatsApp serves it (`GET /sw.js` on the websocket's port, a `client_revision`
//! whatsapp-rust's `parse_sw_js` reads), and a minimum below which a connection is
//! refused as WhatsApp refuses an outdated client (`<failure reason="405"/>`, then
//! the socket closed). Raising the minimum drops the open connections below it so
//! they come back and meet the refusal. Every connection's announced version is
//! kept for tests.

use std::time::Duration;

use tokio::{
    net::TcpStream,
    sync::{watch, Mutex},
    time::{timeout, Instant},
};
use tracing::{debug, info};
use wacore_binary::{builder::NodeBuilder, Node};

/// The version the fake starts on (what wa-sessiond has built in).
pub const DEFAULT_VERSION: (u32, u32, u32) = (2, 3000, 1_042_742_319);

/// The first bytes of a request for sw.js.
const SW_JS_REQUEST: &[u8] = b"GET /sw.js";

/// The bound on reading an sw.js request and writing its answer.
const HTTP_BOUND: Duration = Duration::from_secs(5);

/// The current and the minimum version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    /// What sw.js names.
    pub current: (u32, u32, u32),
    /// Below it a connection gets a 405 (none at first).
    pub minimum: Option<(u32, u32, u32)>,
}

/// The fake's version state, shared by every connection.
pub struct Versions {
    /// Watched by open connections, so a raised minimum drops them.
    state: watch::Sender<State>,
    /// The version each connection announced, in order.
    seen: Mutex<Vec<(u32, u32, u32)>>,
}

impl Versions {
    /// Starting on `current`, with no minimum.
    pub fn new(current: (u32, u32, u32)) -> Self {
        Self {
            state: watch::Sender::new(State { current, minimum: None }),
            seen: Mutex::default(),
        }
    }

    /// Refuses versions below `minimum` from now on, open connections included;
    /// sw.js names at least it. The state after.
    pub fn set_minimum(&self, minimum: (u32, u32, u32)) -> State {
        self.state.send_modify(|state| {
            state.minimum = Some(minimum);
            state.current = state.current.max(minimum);
        });
        *self.state.borrow()
    }

    /// The state now.
    pub fn state(&self) -> State {
        *self.state.borrow()
    }

    /// Notes the version `payload` announces and admits it, unless it is below the
    /// minimum (then the caller sends `outdated`).
    pub async fn admit(&self, payload: &waproto::whatsapp::ClientPayload) -> Option<Admitted> {
        let version = announced(payload);
        self.seen.lock().await.push(version);
        if self.refuses(version) {
            info!(version = %dotted(version), "client outdated: refused (405)");
            return None;
        }
        Some(Admitted {
            version,
            state: self.state.subscribe(),
        })
    }

    /// Whether `version` is below the minimum.
    pub fn refuses(&self, version: (u32, u32, u32)) -> bool {
        self.state().minimum.is_some_and(|minimum| version < minimum)
    }

    /// The versions connections announced, in order, dotted.
    pub async fn seen_dotted(&self) -> Vec<String> {
        self.seen.lock().await.iter().copied().map(dotted).collect()
    }
}

/// A connection on an admitted version.
pub struct Admitted {
    /// The version it announced.
    version: (u32, u32, u32),
    /// Wakes when the minimum changes.
    state: watch::Receiver<State>,
}

impl Admitted {
    /// Resolves once the minimum is raised above the connection's version (never
    /// if the server goes away first).
    pub async fn revoked(&mut self) {
        let version = self.version;
        let below = |state: &State| state.minimum.is_some_and(|minimum| version < minimum);
        let revoked = self.state.wait_for(below).await.is_ok();
        if !revoked {
            std::future::pending::<()>().await;
        }
    }
}

/// `2.3000.1042742319`.
pub fn dotted(version: (u32, u32, u32)) -> String {
    format!("{}.{}.{}", version.0, version.1, version.2)
}

/// Three dotted numbers, or why not.
pub fn parse(raw: &str) -> Result<(u32, u32, u32), String> {
    let mut parts = raw.split('.').map(str::parse::<u32>);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c)), None) => Ok((a, b, c)),
        _ => Err(format!("{raw:?} is not a version like 2.3000.1042742319")),
    }
}

/// The version a client announces in its ClientPayload's user agent (zeros for
/// what it left out).
pub fn announced(payload: &waproto::whatsapp::ClientPayload) -> (u32, u32, u32) {
    let version = payload
        .user_agent
        .as_option()
        .and_then(|agent| agent.app_version.as_option());
    version.map_or((0, 0, 0), |v| {
        (
            v.primary.unwrap_or(0),
            v.secondary.unwrap_or(0),
            v.tertiary.unwrap_or(0),
        )
    })
}

/// `<failure reason="405" location="rva"/>`, what WhatsApp sends an outdated
/// client instead of `<success>`.
pub fn outdated() -> Node {
    NodeBuilder::new("failure")
        .attr("reason", "405")
        .attr("location", "rva")
        .build()
}

/// sw.js as WhatsApp Web serves it, cut down to what names the version.
pub fn sw_js(current: (u32, u32, u32)) -> String {
    let revision = current.2;
    format!(
        "__DEV__=0;/*FB_PKG_DELIM*/\nself.__swData=JSON.parse(/*BTDS*/\"{{\\\"dynamic_data\\\":{{\\\"SiteData\\\":{{\\\"server_revision\\\":{revision},\\\"client_revision\\\":{revision},\\\"push_phase\\\":\\\"C3\\\"}}}}}}\");\nimportScripts(\"https:\\/\\/static.whatsapp.net\\/rsrc.php\\/v4\\/yq\\/r\\/odrxy-7zVX8.js\");\n"
    )
}

/// Whether `stream` starts with a request for sw.js (looked at, not read).
pub async fn is_sw_js(stream: &TcpStream) -> bool {
    let deadline = Instant::now() + HTTP_BOUND;
    let mut head = [0u8; SW_JS_REQUEST.len()];
    loop {
        let Ok(Ok(n)) = timeout(HTTP_BOUND, stream.peek(&mut head)).await else {
            return false;
        };
        if n == 0 || !SW_JS_REQUEST.starts_with(&head[..n]) {
            return false;
        }
        if n == SW_JS_REQUEST.len() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads the sw.js request's head and answers it with `current`'s sw.js.
pub async fn serve_sw_js(stream: TcpStream, current: (u32, u32, u32)) {
    if timeout(HTTP_BOUND, answer(&stream, current)).await.is_err() {
        debug!("an sw.js request timed out");
    }
}

async fn answer(stream: &TcpStream, current: (u32, u32, u32)) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        if stream.readable().await.is_err() {
            return;
        }
        match stream.try_read(&mut buf) {
            Ok(0) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
    let body = sw_js(current);
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/javascript; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut rest = response.as_bytes();
    while !rest.is_empty() {
        if stream.writable().await.is_err() {
            return;
        }
        match stream.try_write(rest) {
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
    debug!(version = %dotted(current), "sw.js served");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_minimum_refuses_older_versions_and_raises_the_current_one() {
        let versions = Versions::new((2, 3000, 10));
        assert!(!versions.refuses((2, 3000, 1)));
        let state = versions.set_minimum((2, 3000, 20));
        assert_eq!(state.current, (2, 3000, 20));
        assert!(versions.refuses((2, 3000, 19)));
        assert!(!versions.refuses((2, 3000, 20)));
    }

    #[test]
    fn whatsapp_rusts_parser_reads_the_served_version() {
        assert_eq!(wacore::version::parse_sw_js(&sw_js((2, 3000, 77))), Some((2, 3000, 77)));
    }

    #[test]
    fn versions_parse_as_three_dotted_numbers() {
        assert_eq!(parse("2.3000.5"), Ok((2, 3000, 5)));
        assert!(parse("2.3000").is_err() && parse("2.3000.5.1").is_err() && parse("x").is_err());
    }
}
