//! The last resolved WhatsApp Web version, kept in `<data-dir>/whatsapp-version.json`
//! (`{"version", "resolved_at", "source"}`) so a restart starts on it without
//! waiting for sw.js. Written atomically (temp file, fsync, rename); a file that
//! cannot be read or parsed is ignored with a warning, never fatal.

use std::{path::Path, time::SystemTime};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::store::fs::write_atomic;

/// The file's name in the data dir.
pub const FILE_NAME: &str = "whatsapp-version.json";

/// A resolution, as kept on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The version (`2.3000.1042742319`).
    pub version: (u32, u32, u32),
    /// When it was read from sw.js.
    pub resolved_at: SystemTime,
    /// The URL it was read from.
    pub source: String,
}

/// The file's JSON.
#[derive(Debug, Serialize, Deserialize)]
struct OnDisk {
    /// Dotted, e.g. `2.3000.1042742319`.
    version: String,
    /// RFC 3339, UTC.
    resolved_at: String,
    /// The sw.js URL.
    source: String,
}

/// `2.3000.1042742319` as three numbers.
pub fn dotted(version: (u32, u32, u32)) -> String {
    format!("{}.{}.{}", version.0, version.1, version.2)
}

fn parse_dotted(raw: &str) -> Option<(u32, u32, u32)> {
    let mut parts = raw.split('.').map(str::parse::<u32>);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c)), None) => Some((a, b, c)),
        _ => None,
    }
}

/// The stored resolution in `dir`, if there is a readable one. A missing file is
/// silent; an unreadable or corrupt one is logged and ignored.
pub fn read(dir: &Path) -> Option<Stored> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "could not read the stored whatsapp web version; ignoring it");
            return None;
        }
    };
    let parsed = serde_json::from_slice::<OnDisk>(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|disk| {
            let version = parse_dotted(&disk.version).ok_or_else(|| format!("bad version {:?}", disk.version))?;
            let resolved_at =
                humantime::parse_rfc3339(&disk.resolved_at).map_err(|e| format!("bad resolved_at: {e}"))?;
            Ok(Stored {
                version,
                resolved_at,
                source: disk.source,
            })
        });
    match parsed {
        Ok(stored) => Some(stored),
        Err(cause) => {
            warn!(path = %path.display(), %cause, "the stored whatsapp web version is corrupt; ignoring it");
            None
        }
    }
}

/// Writes `stored` to `dir` atomically.
pub fn write(dir: &Path, stored: &Stored) -> std::io::Result<()> {
    let disk = OnDisk {
        version: dotted(stored.version),
        resolved_at: humantime::format_rfc3339_seconds(stored.resolved_at).to_string(),
        source: stored.source.clone(),
    };
    let json = serde_json::to_vec_pretty(&disk).map_err(std::io::Error::other)?;
    write_atomic(dir, FILE_NAME, &json)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn sample() -> Stored {
        Stored {
            version: (2, 3000, 1_050_000_000),
            resolved_at: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            source: "https://web.whatsapp.com/sw.js".into(),
        }
    }

    #[test]
    fn a_written_resolution_reads_back_and_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), &sample()).unwrap();
        assert_eq!(read(tmp.path()), Some(sample()));
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [FILE_NAME]);
        let text = std::fs::read_to_string(tmp.path().join(FILE_NAME)).unwrap();
        assert!(
            text.contains("\"2.3000.1050000000\"") && text.contains("2027-01-15T08:00:00Z"),
            "{text}"
        );
    }

    #[test]
    fn no_file_and_a_corrupt_file_both_read_as_none() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(read(tmp.path()), None);
        for corrupt in [
            "{not json",
            r#"{"version":"2.3000","resolved_at":"2027-01-15T08:00:00Z","source":"x"}"#,
            r#"{"version":"2.3000.1","resolved_at":"yesterday","source":"x"}"#,
            "",
        ] {
            std::fs::write(tmp.path().join(FILE_NAME), corrupt).unwrap();
            assert_eq!(read(tmp.path()), None, "{corrupt:?}");
        }
    }
}
