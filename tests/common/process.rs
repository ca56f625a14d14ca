//! The real `wa-sessiond` binary as a child process (emulator backend with short
//! timings, or the real backend dialing a fake WhatsApp), for tests that kill it
//! with -9, send it SIGTERM and restart it on the same data dir.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{mpsc, Arc},
    time::Duration,
};

use tokio::time::Instant;
use tonic::transport::Channel;
use wa_sessiond::proto::{
    emulator_service_client::EmulatorServiceClient, session_service_client::SessionServiceClient,
};

/// A running daemon process.
pub struct Process {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Every line it logged so far (shared with the reader thread).
    log: Arc<tokio::sync::Mutex<Vec<String>>>,
    /// The data dir it runs on.
    pub data_dir: PathBuf,
}

/// The WhatsApp of test processes by default: the emulator, short timings.
pub const EMULATOR: [&str; 10] = [
    "--backend",
    "emulator",
    "--emulator-first-qr-ttl",
    "3s",
    "--emulator-next-qr-ttl",
    "1s",
    "--emulator-qr-count",
    "3",
    "--emulator-qr-delay",
    "20ms",
];

/// The flags every test process gets: any free port, short waits, `whatsapp` (the
/// backend's flags).
fn base_args(data_dir: &Path, whatsapp: &[&str]) -> Vec<String> {
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--link-listen",
        "127.0.0.1:0",
        "--reconnect-max-delay",
        "1s",
        "--shutdown-grace",
        "5s",
    ];
    let mut args: Vec<String> = whatsapp.iter().chain(&args).map(|a| a.to_string()).collect();
    args.extend(["--data-dir".into(), data_dir.display().to_string()]);
    args
}

/// The sw.js a fake WhatsApp serves beside its websocket `whatsapp_url`
/// (`ws://HOST:PORT/ws/chat` → `http://HOST:PORT/sw.js`): where a test daemon
/// resolves the WhatsApp Web version, never the network.
pub fn sw_js_of(whatsapp_url: &str) -> String {
    let rest = whatsapp_url.split_once("://").map_or(whatsapp_url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("http://{authority}/sw.js")
}

/// This test build's binary run through `prlimit`, under an open-files limit of
/// `soft` and `hard`.
fn under_nofile(soft: u64, hard: u64) -> Command {
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--nofile={soft}:{hard}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_wa-sessiond"));
    command
}

impl Process {
    /// Starts the binary on `data_dir` with `extra` flags; returns once it listens
    /// (it may still be restoring: see `wait_ready`).
    pub async fn spawn(data_dir: &Path, extra: &[&str]) -> Self {
        Self::spawn_on(data_dir, &EMULATOR, extra).await
    }

    /// Starts the binary with the real backend dialing `whatsapp_url` (a fake
    /// WhatsApp on loopback), and waits until it is ready.
    pub async fn start_real(data_dir: &Path, whatsapp_url: &str, extra: &[&str]) -> Self {
        let sw_js = sw_js_of(whatsapp_url);
        let real = [
            "--backend",
            "whatsapp",
            "--whatsapp-url",
            whatsapp_url,
            "--wa-version-url",
            &sw_js,
        ];
        let process = Self::spawn_on(data_dir, &real, extra).await;
        process.wait_ready().await;
        process
    }

    /// Starts the binary on `data_dir` with `whatsapp` (the backend's flags) and
    /// `extra` flags; returns once it listens.
    async fn spawn_on(data_dir: &Path, whatsapp: &[&str], extra: &[&str]) -> Self {
        Self::spawn_exe(Path::new(env!("CARGO_BIN_EXE_wa-sessiond")), data_dir, whatsapp, extra).await
    }

    /// Starts `exe`, a build of the daemon (this test build's, or another such as
    /// the release binary), on `data_dir` with `whatsapp` (the backend's flags) and
    /// `extra` flags; returns once it listens.
    pub async fn spawn_exe(exe: &Path, data_dir: &Path, whatsapp: &[&str], extra: &[&str]) -> Self {
        Self::launch(Command::new(exe), data_dir, whatsapp, extra).await
    }

    /// Starts this test build's binary on the real backend dialing `whatsapp_url`,
    /// under an open-files limit of `nofile` (soft and hard, as `ulimit -n` sets
    /// them), and waits until it is ready.
    pub async fn start_real_with_nofile(data_dir: &Path, whatsapp_url: &str, nofile: u64, extra: &[&str]) -> Self {
        let command = under_nofile(nofile, nofile);
        let sw_js = sw_js_of(whatsapp_url);
        let real = [
            "--backend",
            "whatsapp",
            "--whatsapp-url",
            whatsapp_url,
            "--wa-version-url",
            &sw_js,
        ];
        let process = Self::launch(command, data_dir, &real, extra).await;
        process.wait_ready().await;
        process
    }

    /// Starts this test build's binary on the emulator under an open-files limit of
    /// `soft` (what `ulimit -Sn` sets) and `hard`, and waits until it is ready.
    pub async fn start_with_nofile(data_dir: &Path, soft: u64, hard: u64, extra: &[&str]) -> Self {
        let process = Self::launch(under_nofile(soft, hard), data_dir, &EMULATOR, extra).await;
        process.wait_ready().await;
        process
    }

    /// Runs `command` (the binary, or a wrapper that execs it) with the test flags.
    async fn launch(mut command: Command, data_dir: &Path, whatsapp: &[&str], extra: &[&str]) -> Self {
        command
            .args(base_args(data_dir, whatsapp))
            .args(extra)
            // Its stderr is a pipe, as in a container: no colour without anything
            // asking for none.
            .env_remove("NO_COLOR")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the wa-sessiond binary starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(tokio::sync::Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("wa-sessiond listening") {
                    let _ = addr_tx.send(listen_addr(&line));
                }
                sink.blocking_lock().push(line);
            }
        });
        let addr = tokio::task::spawn_blocking(move || addr_rx.recv_timeout(Duration::from_secs(30)))
            .await
            .unwrap()
            .expect("the daemon logs its address within 30s")
            .expect("the listening line names the address");
        Self {
            child,
            addr,
            log,
            data_dir: data_dir.to_owned(),
        }
    }

    /// Starts it and waits until it is ready.
    pub async fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let process = Self::spawn(data_dir, extra).await;
        process.wait_ready().await;
        process
    }

    /// A channel to it.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .expect("the daemon accepts connections")
    }

    /// A SessionService client.
    pub async fn sessions(&self) -> SessionServiceClient<Channel> {
        SessionServiceClient::new(self.channel().await)
    }

    /// An EmulatorService client.
    pub async fn phone(&self) -> EmulatorServiceClient<Channel> {
        EmulatorServiceClient::new(self.channel().await)
    }

    /// Waits (30 s at most) until the emulated server holds nothing for `id`.
    pub async fn wait_nothing_pending(&self, id: &str) {
        super::wait_for(
            Duration::from_secs(30),
            "nothing pending at the server",
            || async move {
                let request = wa_sessiond::proto::CountPendingRequest { session_id: id.into() };
                let pending = self
                    .phone()
                    .await
                    .count_pending(request)
                    .await
                    .ok()?
                    .into_inner()
                    .pending;
                (pending == 0).then_some(())
            },
        )
        .await;
    }

    /// Creates `id` and links it through the emulated phone; waits until CONNECTED.
    pub async fn link(&self, id: &str) {
        let mut sessions = self.sessions().await;
        sessions.create_session(super::create(id)).await.unwrap();
        let scan = wa_sessiond::proto::ScanQrRequest {
            session_id: id.into(),
            ..Default::default()
        };
        self.phone().await.scan_qr(scan).await.unwrap();
        let connected =
            |s: &wa_sessiond::proto::Session| super::status(s) == wa_sessiond::proto::SessionStatus::Connected;
        super::wait_session(&mut sessions, id, &format!("{id} CONNECTED"), connected).await;
    }

    /// The overall health status: 1 SERVING, 2 NOT_SERVING, 0 no answer.
    pub async fn health(&self) -> i32 {
        super::overall_health(self.channel().await).await
    }

    /// Waits (bounded) until health says SERVING.
    pub async fn wait_ready(&self) {
        super::wait_for(Duration::from_secs(60), "the daemon to be ready", || async {
            (self.health().await == 1).then_some(())
        })
        .await;
    }

    /// The admin port's address (from its log line).
    pub async fn admin_addr(&self) -> SocketAddr {
        super::wait_for(Duration::from_secs(10), "the admin port's log line", || async {
            let log = self.log().await;
            let line = log.iter().find(|l| l.contains("admin port serving"))?;
            listen_addr(line)
        })
        .await
    }

    /// The log lines so far.
    pub async fn log(&self) -> Vec<String> {
        self.log.lock().await.clone()
    }

    /// Its resident memory (VmRSS), in KiB: the daemon's alone, not the test's.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// What its open files are (the targets of `/proc/<pid>/fd`: paths, or
    /// `socket:[...]`, `anon_inode:[...]`): the daemon's alone, not the test's.
    pub fn open_files(&self) -> Vec<PathBuf> {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).unwrap();
        fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok()).collect()
    }

    /// Its open-files limit now, as (soft, hard) from `/proc/<pid>/limits`.
    pub fn nofile(&self) -> (u64, u64) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id())).unwrap();
        let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
        let mut numbers = line.split_whitespace().filter_map(|word| word.parse().ok());
        (numbers.next().unwrap(), numbers.next().unwrap())
    }

    /// kill -9.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits (bounded) for it to exit; returns its status and how long it took.
    pub async fn wait_exit(&mut self, bound: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            assert!(start.elapsed() < bound, "the daemon did not exit within {bound:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `addr=` field of the listening line.
fn listen_addr(line: &str) -> Option<SocketAddr> {
    let start = line.find("addr=")? + "addr=".len();
    let rest = &line[start..];
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A channel to a daemon that may be down (killed, not up yet): None when it does
/// not answer.
pub async fn channel_to(addr: std::net::SocketAddr) -> Option<Channel> {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .ok()
}

/// Whether a call failed because the daemon died under it or is not up yet: its
/// answer is lost, and the caller may try again on the next daemon.
pub fn answer_lost(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}
