//! media: files through the daemon, on the emulated WhatsApp (its CDN is a folder in
//! the data dir: no encryption, no network; `media_real` measures the real backend's
//! crypto and CDN path against the fake WhatsApp). One linked session; per size
//! (`--media-sizes`, MiB): UploadMedia in 64 KiB chunks (MiB/s, the handle's sha256
//! checked), then a phone sends a file of that size (EmulatorService.DeliverMedia,
//! not timed) and DownloadMedia streams it back (MiB/s, sha256 checked); each
//! transfer 3 times, the median time counts. DeliverMedia carries the file in one
//! request, which the daemon caps at 4 MiB (`--max-request-bytes`'s most), so larger
//! sizes are downloaded at that cap instead of their own size.
//!
//! Baseline, in the same run: the same bytes written over a plain loopback TCP
//! socket to a reader in this process (median of 5). Memory: the daemon's peak RSS
//! growth over each transfer, from VmHWM after resetting it (`clear_refs`), or from
//! VmRSS polled every 2 ms where the reset is not allowed.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tonic::{transport::Channel, Code};
use wa_sessiond::proto::{
    emulator_service_client::EmulatorServiceClient, media_chunk, session_service_client::SessionServiceClient,
    upload_media_request::Part, DeliverMediaRequest, DownloadMediaRequest, MediaInfo, MediaKind, UploadMediaRequest,
};

use crate::{
    child::BenchEnv,
    client,
    media_measure::{loopback_mib_s, noise, sha256, Peak},
    report::{self, r3, row, Target},
};

pub const MIB: u64 = 1 << 20;
/// Bytes per UploadMedia message and per loopback write.
const CHUNK: usize = 64 * 1024;
/// The daemon's largest request (`--max-request-bytes` allows no more).
pub const MAX_REQUEST: u64 = 4 * MIB;
/// The largest file one DeliverMedia request carries (room left for its other fields).
const DELIVER_CAP: u64 = MAX_REQUEST - CHUNK as u64;
/// The session and the phone that sends it files.
const SESSION: &str = "media";
const PHONE: &str = "15550001111";
/// The phone's chat, as DownloadMedia names it.
pub const PHONE_CHAT: &str = "15550001111@s.whatsapp.net";
/// The bound on peak RSS growth (for a 100 MiB file).
const RSS_BOUND_MIB: f64 = 16.0;
/// Each transfer is timed this many times (the median counts; RSS: the largest growth).
const REPEATS: usize = 3;
/// Bound on any one transfer.
const TRANSFER_BOUND: Duration = Duration::from_secs(600);

/// One transfer: seconds, and the daemon's peak RSS growth over it, KiB.
#[derive(Clone, Copy)]
pub struct Transfer {
    bytes: u64,
    secs: f64,
    rss_kib: u64,
}

impl Transfer {
    fn mib_s(&self) -> f64 {
        self.bytes as f64 / MIB as f64 / self.secs.max(1e-9)
    }
}

/// One size's figures.
pub struct Row {
    size: u64,
    loopback: f64,
    upload: Transfer,
    /// At `size`, or at DELIVER_CAP when `size` is over it (with its own loopback).
    download: Transfer,
    download_loopback: f64,
}

/// Where the files go: a linked session, and the chat its phone writes from.
pub struct Linked<'a> {
    pub channel: &'a Channel,
    pub session: &'a str,
    pub chat: &'a str,
}

/// Runs the scenario and prints its figures.
pub async fn run(env: &BenchEnv) -> Result<(), String> {
    let extra = [
        "--max-request-bytes",
        &MAX_REQUEST.to_string(),
        "--emulator-qr-delay",
        "1ms",
    ];
    let daemon = env.daemon("daemon-media", &env.data_dir("media"), &extra).await?;
    let channel = client::channel(daemon.addr).await?;
    client::connected_sessions(&channel, &[SESSION.to_owned()]).await?;
    let linked = Linked {
        channel: &channel,
        session: SESSION,
        chat: PHONE_CHAT,
    };
    let peak = Peak::new(daemon.pid());
    let rows = measure(env, &peak, &linked, Some(DELIVER_CAP), |data| deliver(&channel, data)).await?;
    let rss_after = daemon.rss_kib()?;
    drop(channel);
    daemon.stop(Duration::from_secs(30)).await?;
    print("media", "emulator", &rows, peak.method(), rss_after);
    Ok(())
}

/// Each size of `--media-sizes` up and down through the linked session: a phone
/// sends files with `deliver` (the message's id; over `cap` bytes, a file of `cap`
/// bytes instead); each transfer's median time and largest RSS growth.
pub async fn measure<D, F>(
    env: &BenchEnv,
    peak: &Peak,
    linked: &Linked<'_>,
    cap: Option<u64>,
    mut deliver: D,
) -> Result<Vec<Row>, String>
where
    D: FnMut(Vec<u8>) -> F,
    F: std::future::Future<Output = Result<String, String>>,
{
    // Warm the paths once with a small file; measure from here.
    let warm = noise(CHUNK as u64, 1);
    upload(linked, &warm).await?;
    let warm_id = deliver(warm.clone()).await?;
    download(linked, &warm_id, &warm).await?;

    let mut rows = Vec::new();
    for (n, &mib) in env.args.media_sizes.iter().enumerate() {
        let size = u64::from(mib) * MIB;
        println!("media: {mib} MiB: loopback copy, upload, download");
        let data = noise(size, 7 + n as u64);
        let loopback = loopback_mib_s(&data).await?;
        let (secs, rss_kib) = peak.median_of(REPEATS, || upload(linked, &data)).await?;
        let upload = Transfer {
            bytes: size,
            secs,
            rss_kib,
        };
        // Over the cap: a file of the cap's size, with its own loopback copy.
        let (file, download_loopback) = match cap {
            Some(cap) if size > cap => {
                drop(data);
                let smaller = noise(cap, 100 + n as u64);
                let loopback = loopback_mib_s(&smaller).await?;
                (smaller, loopback)
            }
            _ => (data, loopback),
        };
        let id = deliver(file.clone()).await?;
        let (secs, rss_kib) = peak.median_of(REPEATS, || download(linked, &id, &file)).await?;
        let download = Transfer {
            bytes: file.len() as u64,
            secs,
            rss_kib,
        };
        rows.push(Row {
            size,
            loopback,
            upload,
            download,
            download_loopback,
        });
    }
    Ok(rows)
}

/// Uploads `data` as a document in CHUNK messages; returns the seconds from the call
/// to the handle, after checking its size and sha256.
async fn upload(linked: &Linked<'_>, data: &[u8]) -> Result<f64, String> {
    let info = MediaInfo {
        session_id: linked.session.into(),
        kind: MediaKind::Document as i32,
        mime: "application/octet-stream".into(),
        file_name: "bench.bin".into(),
        size: data.len() as u64,
        sha256: String::new(),
    };
    let mut messages = vec![UploadMediaRequest {
        part: Some(Part::Info(info)),
    }];
    messages.extend(data.chunks(CHUNK).map(|c| UploadMediaRequest {
        part: Some(Part::Chunk(c.to_vec())),
    }));
    let mut request = tonic::Request::new(tokio_stream::iter(messages));
    request.set_timeout(TRANSFER_BOUND);
    let start = Instant::now();
    let handle = SessionServiceClient::new(linked.channel.clone())
        .upload_media(request)
        .await
        .map_err(|e| {
            format!(
                "UploadMedia of {} bytes failed: {:?}: {}",
                data.len(),
                e.code(),
                e.message()
            )
        })?
        .into_inner();
    let secs = start.elapsed().as_secs_f64();
    let want = sha256(&[data]);
    if handle.size != data.len() as u64 || handle.sha256 != want {
        return Err(format!(
            "UploadMedia answered size {} sha256 {}, not {} and {want}",
            handle.size,
            handle.sha256,
            data.len()
        ));
    }
    Ok(secs)
}

/// A phone sends the session `data`; returns the message's id.
async fn deliver(channel: &Channel, data: Vec<u8>) -> Result<String, String> {
    let len = data.len();
    let deliver = DeliverMediaRequest {
        session_id: SESSION.into(),
        from: PHONE.into(),
        kind: MediaKind::Document as i32,
        mime: "application/octet-stream".into(),
        data,
        caption: String::new(),
        file_name: "bench.bin".into(),
    };
    Ok(EmulatorServiceClient::new(channel.clone())
        .deliver_media(deliver)
        .await
        .map_err(|e| format!("DeliverMedia of {len} bytes failed: {:?}: {}", e.code(), e.message()))?
        .into_inner()
        .message_id)
}

/// DownloadMedia streams the file of message `id` (sent as `data`) back. Returns the
/// seconds from the call that opened the stream to its last chunk, after checking
/// the bytes' sha256 against the data's and the stream's info.
async fn download(linked: &Linked<'_>, id: &str, data: &[u8]) -> Result<f64, String> {
    let request = DownloadMediaRequest {
        session_id: linked.session.into(),
        message_id: id.into(),
        chat: linked.chat.into(),
    };
    let mut sessions = SessionServiceClient::new(linked.channel.clone());
    let waited = Instant::now();
    // The message reaches the log a moment after DeliverMedia answers: NOT_FOUND until then.
    let (start, mut stream) = loop {
        let start = Instant::now();
        match sessions.download_media(request.clone()).await {
            Ok(stream) => break (start, stream.into_inner()),
            Err(e) if e.code() == Code::NotFound && waited.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(e) => return Err(format!("DownloadMedia failed: {:?}: {}", e.code(), e.message())),
        }
    };
    let (mut info, mut chunks) = (None, Vec::new());
    loop {
        let next = tokio::time::timeout(TRANSFER_BOUND, stream.message())
            .await
            .map_err(|_| format!("DownloadMedia stalled for {TRANSFER_BOUND:?}"))?
            .map_err(|e| format!("DownloadMedia broke off: {:?}: {}", e.code(), e.message()))?;
        match next.and_then(|c| c.part) {
            Some(media_chunk::Part::Info(i)) => info = Some(i),
            Some(media_chunk::Part::Chunk(c)) => chunks.push(c),
            None => break,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // Hashed after the clock stopped: this process's sha256 is not the daemon's speed.
    let parts: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
    let (got, want) = (sha256(&parts), sha256(&[data]));
    let size: usize = parts.iter().map(|p| p.len()).sum();
    let said = info.map(|i| i.sha256).unwrap_or_default();
    if got != want || said != want || size != data.len() {
        return Err(format!(
            "DownloadMedia returned {size} bytes with sha256 {got} (its info said {said}), not {} and {want}",
            data.len()
        ));
    }
    Ok(secs)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Prints scenario `name`'s table, targets and JSON line (`backend`: what the
/// daemon ran on).
pub fn print(name: &str, backend: &str, rows: &[Row], rss_method: &str, rss_after_kib: u64) {
    let mut table = vec![row(&[
        &"size",
        &"loopback MiB/s",
        &"upload MiB/s",
        &"upload / loopback",
        &"download MiB/s",
        &"download / loopback",
        &"RSS growth up / down MiB",
    ])];
    let mut sizes = Vec::new();
    let (mut worst_ratio, mut worst_rss) = (f64::INFINITY, 0.0f64);
    for r in rows {
        let up = r.upload.mib_s() / r.loopback;
        let down = r.download.mib_s() / r.download_loopback;
        worst_ratio = worst_ratio.min(up).min(down);
        worst_rss = worst_rss.max(mib(r.upload.rss_kib)).max(mib(r.download.rss_kib));
        let at = if r.download.bytes == r.size {
            String::new()
        } else {
            format!(
                " (at {:.2} MiB; loopback {:.0})",
                r.download.bytes as f64 / MIB as f64,
                r.download_loopback
            )
        };
        table.push(row(&[
            &format!("{} MiB", r.size / MIB),
            &format!("{:.0}", r.loopback),
            &format!("{:.1}", r.upload.mib_s()),
            &format!("{up:.3}"),
            &format!("{:.1}{at}", r.download.mib_s()),
            &format!("{down:.3}"),
            &format!("{:.1} / {:.1}", mib(r.upload.rss_kib), mib(r.download.rss_kib)),
        ]));
        sizes.push(json!({
            "size_bytes": r.size,
            "loopback_mib_s": r3(r.loopback),
            "upload": { "secs": r3(r.upload.secs), "mib_s": r3(r.upload.mib_s()), "ratio_to_loopback": r3(up), "rss_growth_kib": r.upload.rss_kib },
            "download": {
                "bytes": r.download.bytes, "secs": r3(r.download.secs), "mib_s": r3(r.download.mib_s()),
                "loopback_mib_s": r3(r.download_loopback), "ratio_to_loopback": r3(down), "rss_growth_kib": r.download.rss_kib,
            },
        }));
    }
    let largest = rows.iter().map(|r| r.size).max().unwrap_or(0);
    let targets = [
        Target {
            key: "throughput_at_least_0.5x_loopback",
            text: format!("upload and download at least 0.5 x the loopback copy at every size (worst now {worst_ratio:.3} x)"),
            met: (!rows.is_empty()).then_some(worst_ratio >= 0.5),
        },
        Target {
            key: "rss_growth_flat_under_16_mib",
            text: format!(
                "peak RSS growth flat in the file size: under {RSS_BOUND_MIB} MiB at every size up to {} MiB (worst now {worst_rss:.1} MiB)",
                largest / MIB
            ),
            met: (!rows.is_empty()).then_some(worst_rss < RSS_BOUND_MIB),
        },
    ];
    let mut figures = Map::new();
    figures.insert("backend".into(), json!(backend));
    figures.insert("chunk_bytes".into(), json!(CHUNK));
    let cap = rows
        .iter()
        .filter(|r| r.download.bytes != r.size)
        .map(|r| r.download.bytes)
        .max();
    figures.insert("download_cap_bytes".into(), json!(cap));
    figures.insert("rss_method".into(), json!(rss_method));
    figures.insert("rss_after_kib".into(), json!(rss_after_kib));
    figures.insert("sizes".into(), Value::Array(sizes));
    report::scenario(name, &table, &targets, figures);
    println!("{name}: RSS growth is {rss_method}; sha256 checked on every upload and download");
    if let Some(cap) = cap {
        println!(
            "{name}: DeliverMedia carries a file in one request (the daemon's --max-request-bytes is at most 4 MiB): sizes over {cap} bytes are downloaded at that size"
        );
    }
}
