//! What the browser tests share: a daemon serving the link page on 127.0.0.1:0
//! (with the emulator as the phone), the window sizes, and waits on what the page
//! draws.

use std::{net::SocketAddr, time::Duration};

use wa_sessiond::{
    app,
    config::Config,
    proto::{CreateLinkUrlRequest, Qr, ScanQrRequest, Session, SessionStatus},
};

use super::{
    browser::Browser,
    common::{self, create, peek, status, wait_session, Daemon},
};

/// A desktop window.
pub const DESKTOP: (u32, u32) = (1280, 860);
/// A phone held upright, 360 px wide.
pub const PHONE: (u32, u32) = (360, 780);
/// How long a page may take to show something the daemon already knows.
pub const SHOWN: Duration = Duration::from_secs(10);

/// How long each code lives in tests that scan one.
pub const LONG_TTL: Duration = Duration::from_secs(60);

/// A daemon serving the link page on 127.0.0.1:0.
pub struct LinkDaemon {
    /// The daemon, with its gRPC clients and emulator.
    pub daemon: Daemon,
    /// Where the link page listens.
    pub link_addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl LinkDaemon {
    /// Starts a daemon with the test config changed by `tweak`, and waits until it
    /// is ready.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let link_addr = listener.local_addr().unwrap();
        let listeners = app::Listeners {
            link: Some(listener),
            ..common::local_listeners().await
        };
        let daemon = Daemon::start_on(listeners, dir.path(), tweak, app::Wiring::default()).await;
        Self {
            daemon,
            link_addr,
            _dir: dir,
        }
    }

    /// Starts a daemon whose codes live longer than a test needs to scan them (a
    /// batch of the test config's codes lasts 2.5 s, less than a loaded machine may
    /// take between drawing a code and scanning it).
    pub async fn long_lived_codes(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start(|c| {
            c.emulator_first_qr_ttl = LONG_TTL;
            c.emulator_next_qr_ttl = LONG_TTL;
            tweak(c);
        })
        .await
    }

    /// Creates `id` (first QR ready) and returns a link to it.
    pub async fn session_with_link(&self, id: &str, redirect_url: &str) -> String {
        self.daemon.sessions().await.create_session(create(id)).await.unwrap();
        self.link(id, None, redirect_url).await
    }

    /// A link to `id`, valid `ttl` (the default when None), going to `redirect_url`
    /// once linked.
    pub async fn link(&self, id: &str, ttl: Option<Duration>, redirect_url: &str) -> String {
        let request = CreateLinkUrlRequest {
            session_id: id.into(),
            ttl: ttl.map(|ttl| ttl.try_into().unwrap()),
            redirect_url: redirect_url.into(),
        };
        let link = self
            .daemon
            .sessions()
            .await
            .create_link_url(request)
            .await
            .unwrap()
            .into_inner();
        assert!(
            link.url.starts_with(&format!("http://{}/link/", self.link_addr)),
            "{}",
            link.url
        );
        link.url
    }

    /// The session's current QR, read without starting anything.
    pub async fn qr(&self, id: &str) -> Qr {
        self.current_qr(id).await.expect("a qr code")
    }

    /// The session's current QR if it has one (not while connecting).
    pub async fn current_qr(&self, id: &str) -> Option<Qr> {
        let session = self
            .daemon
            .sessions()
            .await
            .get_session(peek(id))
            .await
            .unwrap()
            .into_inner();
        session.qr
    }

    /// The phone scans the code `id` shows now.
    pub async fn scan(&self, id: &str) {
        let scan = ScanQrRequest {
            session_id: id.into(),
            ..Default::default()
        };
        self.daemon.phone().await.scan_qr(scan).await.unwrap();
    }

    /// Waits (bounded) until `id` is `wanted`, read without starting anything.
    pub async fn wait_status(&self, id: &str, wanted: SessionStatus) -> Session {
        let mut client = self.daemon.sessions().await;
        let what = format!("{id} to be {}", wanted.as_str_name());
        wait_session(&mut client, id, &what, |s| status(s) == wanted).await
    }
}

/// Waits until the page's QR, read from a screenshot, is the session's current code
/// and `accept` holds for it; returns that code.
pub async fn wait_drawn(page: &Browser, daemon: &LinkDaemon, id: &str, what: &str, accept: impl Fn(&Qr) -> bool) -> Qr {
    page.until(SHOWN, what, || async {
        let qr = daemon.current_qr(id).await.filter(&accept)?;
        let shown = page.qr_codes_shown().await;
        (shown == [qr.code.clone()]).then_some(qr)
    })
    .await
}

/// `MM:SS` in seconds.
pub fn seconds(mmss: &str) -> u64 {
    let (m, s) = mmss.split_once(':').unwrap_or_else(|| panic!("MM:SS, got {mmss:?}"));
    m.parse::<u64>().unwrap() * 60 + s.parse::<u64>().unwrap()
}
