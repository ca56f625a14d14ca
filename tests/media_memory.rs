//! Memory stays flat whatever the file's size: a 100 MiB document streamed into
//! the daemon (in-process, emulator backend) in 64 KiB chunks, generated as they
//! go, grows the process's peak RSS by less than 16 MiB. Alone in its binary, so
//! no other test's allocations blur the peak.

#[path = "common/mod.rs"]
mod common;

use common::*;
use wa_sessiond::proto::{upload_media_request::Part, MediaInfo, MediaKind, UploadMediaRequest};

/// A line of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).expect("the field");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_upload_grows_peak_rss_by_less_than_16_mib() {
    const SIZE: u64 = 100 << 20;
    const CHUNK: usize = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    paired(&daemon, "alice").await;
    let mut client = daemon.sessions().await;
    // Warm the paths once with a small file, then measure from here.
    let small = vec![
        UploadMediaRequest {
            part: Some(Part::Info(MediaInfo {
                session_id: "alice".into(),
                kind: MediaKind::Document as i32,
                size: CHUNK as u64,
                ..Default::default()
            })),
        },
        UploadMediaRequest {
            part: Some(Part::Chunk(vec![1; CHUNK])),
        },
    ];
    client.upload_media(tokio_stream::iter(small)).await.unwrap();
    // Resets the peak (VmHWM) to the current RSS.
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs");
    let before = status_kib("VmRSS:");
    let info = std::iter::once(UploadMediaRequest {
        part: Some(Part::Info(MediaInfo {
            session_id: "alice".into(),
            kind: MediaKind::Document as i32,
            size: SIZE,
            ..Default::default()
        })),
    });
    let chunks = (0..SIZE as usize / CHUNK).map(|i| UploadMediaRequest {
        part: Some(Part::Chunk(vec![i as u8; CHUNK])),
    });
    let started = std::time::Instant::now();
    let handle = client
        .upload_media(tokio_stream::iter(info.chain(chunks)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(handle.size, SIZE);
    let rate = SIZE as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:");
    let growth_mib = peak.saturating_sub(before) as f64 / 1024.0;
    eprintln!("100 MiB upload: {rate:.0} MiB/s, peak rss growth {growth_mib:.1} MiB (from {before} KiB)");
    assert!(growth_mib < 16.0, "peak rss grew {growth_mib:.1} MiB");
}
