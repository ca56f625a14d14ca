//! Media settings: how big a file of each kind may be, and how long an upload
//! handle works.

use std::time::Duration;

use clap::Args;

use crate::media::{kind::DEFAULT_CAPS, MediaCaps};

/// UploadMedia's limits.
#[derive(Debug, Clone, Args)]
pub struct MediaConfig {
    /// The largest file of each kind, as kind=size pairs (image, video, audio,
    /// document, sticker); a kind not named keeps its default, e.g.
    /// `document=200MiB`. Bigger uploads are OUT_OF_RANGE before anything is sent.
    #[arg(long, env = "WA_SESSIOND_MEDIA_MAX_BYTES", default_value = DEFAULT_CAPS, value_parser = caps)]
    pub media_max_bytes: MediaCaps,

    /// How long an UploadMedia handle can be sent; then it is NOT_FOUND.
    #[arg(long, env = "WA_SESSIOND_MEDIA_HANDLE_TTL", default_value = "7d", value_parser = super::positive_duration)]
    pub media_handle_ttl: Duration,

    /// How long DownloadMedia waits for the phone to upload a file again once
    /// WhatsApp's copy expired; then UNAVAILABLE, reason MEDIA_EXPIRED.
    #[arg(long, env = "WA_SESSIOND_MEDIA_REUPLOAD_TIMEOUT", default_value = "30s", value_parser = super::positive_duration)]
    pub media_reupload_timeout: Duration,
}

fn caps(raw: &str) -> Result<MediaCaps, String> {
    MediaCaps::parse(raw, super::events::bytes)
}

#[cfg(test)]
mod tests {
    use super::caps;
    use crate::media::MediaKind;

    #[test]
    fn one_kind_alone_keeps_the_others_defaults() {
        let parsed = caps("document=200MiB").unwrap();
        assert_eq!(parsed.cap(MediaKind::Document), 200 << 20);
        assert_eq!(parsed.cap(MediaKind::Video), 64 << 20);
        assert!(caps("document=lots").is_err());
    }
}
