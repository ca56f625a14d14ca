//! What kinds of media there are, how big each may be (`--media-max-bytes`), and
//! what a file's mime is when the caller names none (sniffed from its first bytes).

use serde::{Deserialize, Serialize};

use crate::proto;

/// A kind of media file, as WhatsApp tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MediaKind {
    /// A photo.
    Image,
    /// A video (or a GIF).
    Video,
    /// Audio, or a voice note.
    Audio,
    /// Any file.
    Document,
    /// A WebP sticker.
    Sticker,
}

impl MediaKind {
    /// Every kind, in the order of `--media-max-bytes`.
    pub const ALL: [MediaKind; 5] = [Self::Image, Self::Video, Self::Audio, Self::Document, Self::Sticker];

    /// Its name (`image`, ...), in flags, errors and `InboundMessage.media.kind`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Document => "document",
            Self::Sticker => "sticker",
        }
    }

    /// The kind a name names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The kind of a wire value; None for UNSPECIFIED or unknown.
    pub fn from_wire(value: i32) -> Option<Self> {
        Some(match proto::MediaKind::try_from(value).ok()? {
            proto::MediaKind::Image => Self::Image,
            proto::MediaKind::Video => Self::Video,
            proto::MediaKind::Audio => Self::Audio,
            proto::MediaKind::Document => Self::Document,
            proto::MediaKind::Sticker => Self::Sticker,
            proto::MediaKind::Unspecified => return None,
        })
    }

    /// Its wire value.
    pub fn wire(self) -> proto::MediaKind {
        match self {
            Self::Image => proto::MediaKind::Image,
            Self::Video => proto::MediaKind::Video,
            Self::Audio => proto::MediaKind::Audio,
            Self::Document => proto::MediaKind::Document,
            Self::Sticker => proto::MediaKind::Sticker,
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|k| *k == self).unwrap_or_default()
    }
}

/// The largest file of each kind (`--media-max-bytes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaCaps([u64; 5]);

/// The caps when none is given: WhatsApp's own limits, rounded.
pub const DEFAULT_CAPS: &str = "image=16MiB,video=64MiB,audio=16MiB,document=100MiB,sticker=1MiB";

impl Default for MediaCaps {
    fn default() -> Self {
        Self([16 << 20, 64 << 20, 16 << 20, 100 << 20, 1 << 20])
    }
}

impl MediaCaps {
    /// `kind=size` pairs, comma-separated; a kind not named keeps its default.
    pub fn parse(raw: &str, size: impl Fn(&str) -> Result<u64, String>) -> Result<Self, String> {
        let mut caps = Self::default();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not kind=size: use e.g. document=200MiB"))?;
            let kind = MediaKind::parse(name.trim())
                .ok_or_else(|| format!("{name:?} is not a media kind: use image, video, audio, document or sticker"))?;
            caps.0[kind.index()] = size(value.trim())?;
        }
        Ok(caps)
    }

    /// The largest file of `kind`, in bytes.
    pub fn cap(&self, kind: MediaKind) -> u64 {
        self.0[kind.index()]
    }
}

/// A size for people: `16MiB`, `1536KiB`, or bytes.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// What a voice note's mime must be (WhatsApp plays nothing else as one).
pub const VOICE_MIME: &str = "audio/ogg; codecs=opus";

/// The mime a file is kept under: the caller's, else sniffed from `head` (its
/// first bytes), else `application/octet-stream`; OGG becomes OGG/Opus audio, as
/// WhatsApp names it.
pub fn mime_of(declared: &str, head: &[u8]) -> String {
    let declared = declared.trim();
    let mime = if declared.is_empty() {
        infer::get(head).map_or("application/octet-stream", |t| t.mime_type())
    } else {
        declared
    };
    match mime {
        "application/ogg" | "audio/ogg" | "audio/opus" => VOICE_MIME.to_owned(),
        other => other.to_owned(),
    }
}

/// Whether a file of this mime plays as a voice note: OGG with Opus.
pub fn is_voice(mime: &str) -> bool {
    let mut parts = mime.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default().to_ascii_lowercase();
    let codecs: Vec<String> = parts
        .filter_map(|p| p.strip_prefix("codecs="))
        .map(|c| c.trim_matches('"').to_ascii_lowercase())
        .collect();
    essence == "audio/ogg" && codecs.iter().all(|c| c == "opus")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(raw: &str) -> Result<u64, String> {
        raw.strip_suffix("MiB")
            .and_then(|n| n.parse::<u64>().ok())
            .map(|n| n << 20)
            .ok_or_else(|| "bad".into())
    }

    #[test]
    fn one_kind_given_alone_keeps_the_others_defaults() {
        let caps = MediaCaps::parse("document=200MiB", size).unwrap();
        assert_eq!(caps.cap(MediaKind::Document), 200 << 20);
        assert_eq!(caps.cap(MediaKind::Image), 16 << 20);
        assert_eq!(caps.cap(MediaKind::Sticker), 1 << 20);
        assert_eq!(
            MediaCaps::parse(DEFAULT_CAPS, |r| if r.ends_with("MiB") { size(r) } else { Ok(0) })
                .unwrap()
                .cap(MediaKind::Video),
            64 << 20
        );
        assert!(MediaCaps::parse("movie=1MiB", size)
            .unwrap_err()
            .contains("not a media kind"));
        assert!(MediaCaps::parse("image", size).unwrap_err().contains("kind=size"));
    }

    #[test]
    fn a_missing_mime_is_sniffed_and_ogg_becomes_opus_audio() {
        assert_eq!(mime_of("", b"\x89PNG\r\n\x1a\n0000000000"), "image/png");
        assert_eq!(mime_of("", b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(mime_of("", b"OggS\0\x02000000000000000000000000000"), VOICE_MIME);
        assert_eq!(mime_of("application/ogg", b""), VOICE_MIME);
        assert_eq!(mime_of("", b"\0\0"), "application/octet-stream");
        assert_eq!(mime_of("text/csv", b"a,b"), "text/csv");
    }

    #[test]
    fn only_ogg_opus_is_a_voice_note() {
        assert!(is_voice(VOICE_MIME));
        assert!(is_voice("audio/ogg"));
        assert!(!is_voice("audio/mpeg"));
        assert!(!is_voice("audio/ogg; codecs=vorbis"));
        assert_eq!(human(16 << 20), "16MiB");
        assert_eq!(human(1000), "1000 bytes");
    }
}
