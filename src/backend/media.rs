//! Media at a backend: a file uploaded once to WhatsApp's CDN (its descriptor, a
//! [`MediaBlob`], is what a handle keeps and what a media message carries), and a
//! received file downloaded again from its descriptor. A connection that can move
//! files offers a [`MediaTransfer`]; the daemon's core (sizes, hashes, temp files,
//! the one re-upload request on an expired copy) stays out of the backends.

use std::{fmt, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{BackendError, BoxFuture};
use crate::media::{
    seal::{Plain, Seal, Sealer},
    MediaKind,
};

/// Where a file is on WhatsApp's CDN and how to read it: the upload descriptor of a
/// sent file, or the download descriptor of a received one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaBlob {
    /// What it is sent as.
    pub kind: MediaKind,
    /// Its mime.
    pub mime: String,
    /// Its plaintext length.
    pub size: u64,
    /// Hex sha256 of the plaintext.
    pub sha256: String,
    /// The CDN's path of the encrypted file.
    pub direct_path: String,
    /// Its full URL, when the CDN gave one.
    pub url: String,
    /// Base64 of the 32-byte media key (a secret: it decrypts the file).
    pub media_key: String,
    /// Base64 sha256 of the encrypted file.
    pub enc_sha256: String,
    /// When the key was made (seconds since the epoch).
    pub key_timestamp: i64,
    /// Base64 of the streaming sidecar (audio, video), or empty.
    #[serde(default)]
    pub sidecar: String,
}

/// Never the media key.
impl fmt::Debug for MediaBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MediaBlob {{ kind: {}, mime: {:?}, size: {}, direct_path: {:?} }}",
            self.kind.name(),
            self.mime,
            self.size,
            self.direct_path
        )
    }
}

/// A file received whole, ready to upload.
#[derive(Debug)]
pub struct Upload {
    /// The file as the connection's [`Sealer`] wrote it, in a temp file (the
    /// caller removes it).
    pub path: PathBuf,
    /// What it is sent as.
    pub kind: MediaKind,
    /// Its mime.
    pub mime: String,
    /// Its length.
    pub size: u64,
    /// Hex sha256 of it.
    pub sha256: String,
    /// What the sealer kept of how it sealed the file (`None` when it kept the
    /// plaintext).
    pub seal: Option<Seal>,
}

/// Why a download failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownloadError {
    /// WhatsApp's copy is gone (401, 403, 404, 410): the phone may re-upload it.
    #[error("whatsapp's copy of the file expired")]
    Expired,
    /// Anything else.
    #[error("{0}")]
    Failed(#[from] BackendError),
}

/// Where a download's plaintext goes, chunk by chunk; a closed receiver stops it.
pub type ChunkSink = mpsc::Sender<Vec<u8>>;

/// A connection's file transfers. Each future owns what it needs.
pub trait MediaTransfer: Send + Sync {
    /// How an upload's bytes are written as they arrive, before [`Self::upload`]
    /// takes the file: as they are, unless the backend seals them on the way.
    fn sealer(&self, _kind: MediaKind) -> BoxFuture<'static, Result<Box<dyn Sealer>, BackendError>> {
        Box::pin(async { Ok(Box::new(Plain::default()) as Box<dyn Sealer>) })
    }

    /// Uploads `file`, as its sealer wrote it, once; its descriptor comes back.
    fn upload(&self, file: Upload) -> BoxFuture<'static, Result<MediaBlob, BackendError>>;

    /// Streams the decrypted file `blob` describes into `sink`; `scratch` is a
    /// temp file path the backend may use (the caller removes it).
    fn download(
        &self,
        blob: MediaBlob,
        scratch: PathBuf,
        sink: ChunkSink,
    ) -> BoxFuture<'static, Result<(), DownloadError>>;

    /// Asks the phone to upload the file of `message` again; the new descriptor
    /// comes back, or an error when the phone does not answer within `bound`.
    fn reupload(
        &self,
        message: Received,
        blob: MediaBlob,
        bound: Duration,
    ) -> BoxFuture<'static, Result<MediaBlob, BackendError>>;
}

/// A received message whose file a re-upload request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Its chat's JID.
    pub chat: String,
    /// WhatsApp's id of it.
    pub id: String,
    /// Sent by the account itself (from another device).
    pub from_me: bool,
    /// Its sender's JID (in a group, the member).
    pub sender: String,
}

/// A file sent as a message: its descriptor and how it shows.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaMessage {
    /// What the CDN holds (from the handle).
    pub blob: MediaBlob,
    /// Shown under it; never logged.
    pub caption: String,
    /// A document's name.
    pub file_name: String,
    /// Audio played as a voice note.
    pub voice_note: bool,
    /// An audio's or video's length.
    pub duration_seconds: u32,
    /// A voice note's waveform.
    pub waveform: Vec<u8>,
    /// A small JPEG preview.
    pub jpeg_thumbnail: Vec<u8>,
}

/// Bytes per chunk a backend hands over from a file.
pub const FILE_CHUNK: usize = 64 * 1024;

/// Streams `file` (from where it stands) into `sink`, reading on the blocking
/// pool; stops early when `sink` closes.
pub async fn stream_file(file: std::fs::File, sink: ChunkSink) -> Result<(), BackendError> {
    use std::io::Read;
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(2);
    let reader = tokio::task::spawn_blocking(move || {
        let mut file = file;
        loop {
            let mut buf = vec![0u8; FILE_CHUNK];
            match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(buf)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let mut outcome = Ok(());
    while let Some(chunk) = rx.recv().await {
        match chunk {
            Ok(chunk) => {
                if sink.send(chunk).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                outcome = Err(BackendError::Storage(format!(
                    "the downloaded file could not be read: {e}"
                )));
                break;
            }
        }
    }
    drop(rx);
    let _ = reader.await;
    outcome
}
