//! Headless Chromium (Debian's `chromium` and `chromium-driver`) driven over
//! WebDriver with fantoccini: start one per test, look at the page as a person
//! would (text, visibility, classes, screenshots), and decode the QR from a
//! screenshot. Missing Chromium skips a browser test with a line on the terminal
//! saying so (`scripts/test` installs it), and fails it under `CI=true`.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::time::Instant;

/// Chromium's flags: headless, no sandbox (containers), and nothing that reaches
/// the network by itself (the tests only ever talk to loopback).
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
];

/// Where screenshots are kept for reviewers (README, "The link page").
pub fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/link-screenshots")
}

/// One headless Chromium and its chromedriver.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    /// chromedriver, leading its own process group (Chromium included).
    driver: Child,
    /// Chromium's fresh profile.
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium it started.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.driver.wait();
    }
}

fn find_program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(env) {
        return Some(PathBuf::from(path)).filter(|path| path.is_file());
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// How to get what the browser tests need.
const INSTALL: &str = "the link page's browser tests need Debian's Chromium: run `scripts/test` (it installs them), or `apt-get install -y chromium chromium-driver`, or point CHROMIUM and CHROMEDRIVER at the binaries";

/// Whether the browser test `test` must be skipped: Chromium or chromedriver is
/// missing. Says so on the terminal (never silently); under `CI=true` a missing
/// browser fails the test instead.
pub fn skipped_without_chromium(test: &str) -> bool {
    let chromium = find_program("CHROMIUM", &["chromium", "chromium-browser"]);
    let chromedriver = find_program("CHROMEDRIVER", &["chromedriver"]);
    if chromium.is_some() && chromedriver.is_some() {
        return false;
    }
    let missing = if chromium.is_none() { "chromium" } else { "chromedriver" };
    let line = format!("link_page::{test}: SKIPPED: {missing} not found; {INSTALL}");
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "{line} (CI requires the browser tests)"
    );
    // Straight to the terminal: libtest would swallow a print of a passing test.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{line}\n").as_bytes());
    true
}

impl Browser {
    /// Starts Chromium with a `width` x `height` window.
    pub async fn start(width: u32, height: u32) -> Self {
        let install = INSTALL;
        let chromium = find_program("CHROMIUM", &["chromium", "chromium-browser"])
            .unwrap_or_else(|| panic!("chromium not found: {install}"));
        let chromedriver = find_program("CHROMEDRIVER", &["chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver not found: {install}"));
        let profile = tempfile::tempdir().unwrap();
        let mut command = Command::new(&chromedriver);
        command.arg("--port=0").stdout(Stdio::piped()).stderr(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut driver = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}: {install}", chromedriver.display()));
        let stdout = driver.stdout.take().unwrap();
        let port = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let port = lines.by_ref().map_while(Result::ok).find_map(|line| {
                let rest = line.split("started successfully on port ").nth(1)?;
                rest.trim_end_matches('.').trim().parse::<u16>().ok()
            });
            // Keep reading so chromedriver never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            port
        });
        let port = tokio::time::timeout(Duration::from_secs(20), port)
            .await
            .expect("chromedriver says its port within 20s")
            .unwrap()
            .expect("chromedriver started");
        let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--window-size={width},{height}"));
        let options = serde_json::json!({ "binary": chromium, "args": args });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let client = tokio::time::timeout(
            Duration::from_secs(30),
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}")),
        )
        .await
        .expect("chromium starts within 30s")
        .unwrap_or_else(|e| panic!("chromium did not start: {e}: {install}"));
        let browser = Self {
            client,
            driver,
            _profile: profile,
        };
        // The flag alone leaves narrow windows at Chromium's minimum width.
        browser.resize(width, height).await;
        browser
    }

    /// Opens `url`.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Whether the element `css` exists and is shown.
    pub async fn shown(&self, css: &str) -> bool {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.is_displayed().await.unwrap_or(false),
            Err(_) => false,
        }
    }

    /// The visible text of `css` (empty when absent).
    pub async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The classes of `css`.
    pub async fn classes(&self, css: &str) -> String {
        let element = self.client.find(Locator::Css(css)).await.unwrap();
        element.attr("class").await.unwrap().unwrap_or_default()
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.map_or(0, |all| all.len())
    }

    /// Clicks `css`.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Types `text` into `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap();
        element.send_keys(text).await.unwrap();
    }

    /// The path of the page shown.
    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// A screenshot of the window (PNG).
    pub async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.unwrap()
    }

    /// Takes a screenshot and keeps it as `<name>.png` for reviewers.
    pub async fn keep_screenshot(&self, name: &str) -> Vec<u8> {
        let png = self.screenshot().await;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
        png
    }

    /// Resizes the window.
    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    /// From now on keeps every text the status line (`#status`) shows, in order:
    /// states that pass faster than a test could look are still seen.
    pub async fn record_statuses(&self) {
        const RECORD: &str = "const line = document.getElementById('status'); \
            window.statusesShown = [line.textContent]; \
            new MutationObserver(() => window.statusesShown.push(line.textContent)) \
            .observe(line, { childList: true, characterData: true, subtree: true });";
        self.client.execute(RECORD, vec![]).await.unwrap();
    }

    /// What the status line showed since `record_statuses`, in order, each text
    /// once per stretch it was shown.
    pub async fn statuses_shown(&self) -> Vec<String> {
        let shown = self
            .client
            .execute("return window.statusesShown || []", vec![])
            .await
            .unwrap();
        let mut texts: Vec<String> = serde_json::from_value(shown).unwrap();
        texts.dedup();
        texts
    }

    /// Polls `check` until it returns Some, at most `bound`.
    pub async fn until<T, F, Fut>(&self, bound: Duration, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(value) = check().await {
                return value;
            }
            assert!(start.elapsed() < bound, "timed out after {bound:?} waiting for {what}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The QR codes a screenshot of the window shows, decoded.
    pub async fn qr_codes_shown(&self) -> Vec<String> {
        decode_qr(&self.screenshot().await)
    }

    /// Closes the browser.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Every QR code in a PNG, decoded.
pub fn decode_qr(png: &[u8]) -> Vec<String> {
    let picture = image::load_from_memory(png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(picture);
    prepared
        .detect_grids()
        .into_iter()
        .filter_map(|grid| grid.decode().ok().map(|(_, text)| text))
        .collect()
}
