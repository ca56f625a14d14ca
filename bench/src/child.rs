//! The processes a run starts: the daemon (the real `wa-sessiond` binary, emulator
//! or real backend, a temp data dir, free ports), the baseline server (this
//! executable re-run) and the fake WhatsApp (`fake-whatsapp`), each killed when its
//! handle drops; their memory and CPU read from `/proc`.

use std::{
    future::Future,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};

use crate::{client, Args};

/// `/proc` counts CPU time in these (USER_HZ, 100 on Linux).
const CLOCK_TICKS_PER_SECOND: u64 = 100;

/// The service the daemon reports SERVING once it takes requests.
const SESSION_SERVICE: &str = "wasessiond.v1.SessionService";

/// What every scenario shares: the options, the binaries, the run's temp dir.
pub struct BenchEnv {
    /// The command line.
    pub args: Args,
    /// The daemon binary.
    pub daemon_bin: PathBuf,
    /// This executable (re-run as the baseline server).
    pub self_exe: PathBuf,
    /// Data dirs and logs of this run; removed at the end.
    pub run_dir: PathBuf,
}

impl BenchEnv {
    /// Finds the binaries and makes the run's temp dir.
    pub fn new(args: &Args) -> Result<Self, String> {
        let self_exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
        let daemon_bin = match &args.daemon_bin {
            Some(path) => path.clone(),
            None => self_exe.with_file_name("wa-sessiond"),
        };
        if !daemon_bin.is_file() {
            return Err(format!(
                "no daemon binary at {}: build it first with `cargo build --release --bins`",
                daemon_bin.display()
            ));
        }
        let stamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let run_dir = std::env::temp_dir().join(format!("wa-sessiond-bench-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&run_dir).map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
        Ok(Self {
            args: args.clone(),
            daemon_bin,
            self_exe,
            run_dir,
        })
    }

    /// A fresh data dir named `name` in the run dir.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.run_dir.join(name)
    }

    /// Starts the daemon with the emulator on `data_dir` plus `extra` flags, and waits
    /// until it reports SERVING.
    pub async fn daemon(&self, label: &str, data_dir: &Path, extra: &[&str]) -> Result<Proc, String> {
        self.daemon_on(label, data_dir, &["--backend", "emulator"], extra).await
    }

    /// Starts the daemon with `backend` (its flags) on `data_dir` plus `extra` flags,
    /// its admin port on a free port, and waits until it reports SERVING.
    pub async fn daemon_on(
        &self,
        label: &str,
        data_dir: &Path,
        backend: &[&str],
        extra: &[&str],
    ) -> Result<Proc, String> {
        let (addr, admin) = (free_addr()?, free_addr()?);
        let mut command = Command::new(&self.daemon_bin);
        command
            .args(backend)
            .args([
                "--admin-listen",
                &admin.to_string(),
                "--link-listen",
                "",
                "--listen",
                &addr.to_string(),
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", &self.args.daemon_log);
        let mut proc = self.spawn(label, addr, command)?;
        proc.admin = Some(admin);
        proc.wait_serving(Duration::from_secs(60)).await?;
        Ok(proc)
    }

    /// Starts the fake WhatsApp (`fake-whatsapp`, next to this executable) with its
    /// websocket on `addr` and its control API on `control`, and waits until the
    /// control API answers.
    pub async fn fake_whatsapp(&self, addr: SocketAddr, control: SocketAddr) -> Result<Proc, String> {
        let bin = self.self_exe.with_file_name("fake-whatsapp");
        if !bin.is_file() {
            return Err(format!(
                "no fake-whatsapp binary at {}: build it with `cargo build --release --features fake-whatsapp --bins`",
                bin.display()
            ));
        }
        let mut command = Command::new(bin);
        command
            .args(["--listen", &addr.to_string(), "--control", &control.to_string()])
            .env("RUST_LOG", "warn");
        let proc = self.spawn("fake-whatsapp", control, command)?;
        proc.wait_for(
            Duration::from_secs(30),
            "the fake's control api to answer",
            || async move { crate::fake::Fake::connect(control).await.ok().map(|_| ()) },
        )
        .await?;
        Ok(proc)
    }

    /// Starts the baseline server answering GetSession with the Session encoded in
    /// `prototype`, and waits until it answers.
    pub async fn baseline(&self, prototype: &Path) -> Result<Proc, String> {
        let addr = free_addr()?;
        let mut command = Command::new(&self.self_exe);
        command
            .arg("--baseline-server")
            .arg(addr.to_string())
            .arg("--prototype")
            .arg(prototype);
        let proc = self.spawn("baseline", addr, command)?;
        proc.wait_for(Duration::from_secs(30), "the baseline to answer", || async move {
            let mut sessions = client::sessions(addr).await.ok()?;
            sessions.get_session(client::get("any")).await.ok().map(|_| ())
        })
        .await?;
        Ok(proc)
    }

    fn spawn(&self, label: &str, addr: SocketAddr, mut command: Command) -> Result<Proc, String> {
        let log_path = self.run_dir.join(format!("{label}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("WA_SESSIOND_") {
                command.env_remove(key);
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {label}: {e}"))?;
        Ok(Proc {
            child,
            addr,
            admin: None,
            label: label.to_owned(),
            log_path,
            started: Instant::now(),
        })
    }

    /// Removes the run dir.
    pub fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// A free port on 127.0.0.1 (the OS's pick, released for the child to bind).
pub fn free_addr() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener.local_addr().map_err(|e| format!("no free port: {e}"))
}

/// A child process; killed when dropped.
pub struct Proc {
    child: Child,
    /// Where it serves gRPC (the fake: its control API).
    pub addr: SocketAddr,
    /// The daemon's admin port (`/metrics`).
    pub admin: Option<SocketAddr>,
    /// For messages and its log file's name.
    label: String,
    /// Its stderr.
    log_path: PathBuf,
    /// When it was spawned.
    pub started: Instant,
}

impl Proc {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory (VmRSS), KiB.
    pub fn rss_kib(&self) -> Result<u64, String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .map_err(|e| format!("cannot read the memory of {}: {e}", self.label))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("no VmRSS for {}", self.label))
    }

    /// The CPU time it used so far (user + system, all threads; 10 ms resolution).
    pub fn cpu_time(&self) -> Duration {
        stat_cpu(&format!("/proc/{}/stat", self.pid()))
    }

    /// The CPU time its threads named `name` used so far (the event log's writer
    /// is `event-log`); zero without such a thread.
    pub fn thread_cpu_time(&self, name: &str) -> Duration {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else {
            return Duration::ZERO;
        };
        tasks
            .flatten()
            .filter(|task| std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name))
            .map(|task| stat_cpu(&task.path().join("stat").to_string_lossy()))
            .sum()
    }

    /// Its open files (the entries of `/proc/<pid>/fd`).
    pub fn open_files(&self) -> u64 {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| d.count() as u64)
    }

    /// Its thread count.
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid())).map_or(0, |d| d.count())
    }

    /// Polls `check` until it yields, bounded; fails early if the process exited.
    pub async fn wait_for<T, F, Fut>(&self, bound: Duration, what: &str, mut check: F) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(value) = check().await {
                return Ok(value);
            }
            if !self.is_running() {
                return Err(format!(
                    "{} exited while waiting for {what}; {}",
                    self.label,
                    self.log_tail()
                ));
            }
            if start.elapsed() > bound {
                return Err(format!("timed out after {bound:?} waiting for {what}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until the health service reports the session service SERVING.
    pub async fn wait_serving(&self, bound: Duration) -> Result<(), String> {
        let addr = self.addr;
        self.wait_for(bound, "the daemon to report SERVING", || async move {
            let channel = client::channel(addr).await.ok()?;
            let request = HealthCheckRequest {
                service: SESSION_SERVICE.into(),
            };
            let status = HealthClient::new(channel)
                .check(request)
                .await
                .ok()?
                .into_inner()
                .status;
            (status == ServingStatus::Serving as i32).then_some(())
        })
        .await
    }

    fn is_running(&self) -> bool {
        std::fs::metadata(format!("/proc/{}", self.pid())).is_ok()
            && !std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).is_ok_and(|s| s.contains(") Z "))
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let tail: Vec<_> = log.lines().rev().take(5).collect();
        format!(
            "last log lines: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns how long it took.
    pub async fn stop(mut self, bound: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .map_err(|e| format!("cannot signal {}: {e}", self.label))?;
        if !sent.success() {
            return Err(format!("kill -TERM {} failed", self.pid()));
        }
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(start.elapsed()),
                Ok(Some(status)) => return Err(format!("{} exited with {status}; {}", self.label, self.log_tail())),
                Ok(None) if start.elapsed() > bound => {
                    return Err(format!("{} did not exit within {bound:?} of SIGTERM", self.label));
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(e) => return Err(format!("cannot wait for {}: {e}", self.label)),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The user and system CPU time in a `/proc` stat file.
fn stat_cpu(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name: state is the first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat.rsplit(") ").next().unwrap_or("").split(' ').collect();
    let ticks = |n: usize| fields.get(n).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / CLOCK_TICKS_PER_SECOND)
}
