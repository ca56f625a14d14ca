//! The media scenario's measuring tools: the baseline (the same bytes copied over a
//! plain loopback TCP socket), the daemon's peak RSS over a piece of work, and the
//! files themselves (seeded noise, their sha256).

use std::{future::Future, time::Duration, time::Instant};

use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
};

/// Bytes per loopback write (the upload's chunk).
const CHUNK: usize = 64 * 1024;
const MIB: f64 = (1 << 20) as f64;
/// Loopback copies per size (the median counts).
const LOOPBACK_RUNS: usize = 5;

/// The same bytes written over a plain loopback TCP socket, in CHUNK writes, to a
/// reader in this process: MiB/s from the first write to the reader's last byte,
/// median of LOOPBACK_RUNS.
pub async fn loopback_mib_s(data: &[u8]) -> Result<f64, String> {
    let mut rates = Vec::new();
    for _ in 0..LOOPBACK_RUNS {
        let failed = |e: std::io::Error| format!("the loopback copy failed: {e}");
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(failed)?;
        let addr = listener.local_addr().map_err(failed)?;
        let reader = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await?;
            let (mut buf, mut read) = (vec![0u8; CHUNK], 0u64);
            loop {
                match socket.read(&mut buf).await? {
                    0 => return Ok::<_, std::io::Error>(read),
                    n => read += n as u64,
                }
            }
        });
        let mut socket = TcpStream::connect(addr).await.map_err(failed)?;
        socket.set_nodelay(true).map_err(failed)?;
        // The daemon's connection is open before its clock starts: so is this one.
        let start = Instant::now();
        for chunk in data.chunks(CHUNK) {
            socket.write_all(chunk).await.map_err(failed)?;
        }
        socket.shutdown().await.map_err(failed)?;
        let read = reader.await.map_err(|e| e.to_string())?.map_err(failed)?;
        let secs = start.elapsed().as_secs_f64();
        if read != data.len() as u64 {
            return Err(format!("the loopback reader got {read} of {} bytes", data.len()));
        }
        rates.push(data.len() as f64 / MIB / secs.max(1e-9));
    }
    rates.sort_by(f64::total_cmp);
    Ok(rates[rates.len() / 2])
}

/// The daemon's peak RSS over a piece of work.
pub struct Peak {
    pid: u32,
    /// The peak (VmHWM) can be reset through `/proc/<pid>/clear_refs`.
    hwm: bool,
}

impl Peak {
    pub fn new(pid: u32) -> Self {
        let hwm = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        Self { pid, hwm }
    }

    pub fn method(&self) -> &'static str {
        if self.hwm {
            "VmHWM after a reset (clear_refs 5), minus VmRSS before"
        } else {
            "VmRSS polled every 2 ms, highest minus VmRSS before"
        }
    }

    /// Runs `work`; returns its value and the peak RSS over it minus the RSS before, KiB.
    pub async fn over<T>(&self, work: impl Future<Output = Result<T, String>>) -> Result<(T, u64), String> {
        if self.hwm {
            std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5")
                .map_err(|e| format!("cannot reset the daemon's peak RSS: {e}"))?;
            let before = status_kib(self.pid, "VmRSS:")?;
            let value = work.await?;
            let peak = status_kib(self.pid, "VmHWM:")?;
            return Ok((value, peak.saturating_sub(before)));
        }
        let before = status_kib(self.pid, "VmRSS:")?;
        let (stop, mut stopped) = oneshot::channel::<()>();
        let pid = self.pid;
        let sampler = tokio::spawn(async move {
            let mut highest = before;
            while stopped.try_recv().is_err() {
                highest = highest.max(status_kib(pid, "VmRSS:").unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            highest
        });
        let value = work.await;
        let _ = stop.send(());
        let highest = sampler.await.map_err(|e| e.to_string())?;
        Ok((value?, highest.saturating_sub(before)))
    }
}

impl Peak {
    /// Runs `work` (which returns seconds) `times` times; returns the median seconds
    /// and the largest peak RSS growth over one run, KiB.
    pub async fn median_of<F, Fut>(&self, times: usize, mut work: F) -> Result<(f64, u64), String>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<f64, String>>,
    {
        let (mut secs, mut growth) = (Vec::new(), 0);
        for _ in 0..times.max(1) {
            let (s, g) = self.over(work()).await?;
            secs.push(s);
            growth = growth.max(g);
        }
        secs.sort_by(f64::total_cmp);
        Ok((secs[secs.len() / 2], growth))
    }
}

/// A `/proc/<pid>/status` line's value, KiB.
fn status_kib(pid: u32, field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read the daemon's memory: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} in the daemon's status"))
}

/// `len` bytes that compress to nothing (a seeded xorshift).
pub fn noise(len: u64, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len as usize + 8);
    while (out.len() as u64) < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len as usize);
    out
}

/// Hex sha256 of the parts, in order.
pub fn sha256(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
