//! The real backend's file transfers, on whatsapp-rust: an upload encrypted as it
//! arrives (`MediaEncryptor`, the daemon's staging writing only ciphertext to its
//! temp file) and streamed from that file to WhatsApp's CDN (`upload_stream`,
//! resumable above 5 MiB); a download decrypted into a scratch file
//! (`download_from_params_to_writer`, which verifies the hashes) and streamed out;
//! and a re-upload request to the phone (`media_reupload().request`).
//!
//! Whether the CDN refused the reference (401/403/404/410) is read from the
//! library's error text: 0.7.0's `Client` flattens its typed `MediaDownloadError`
//! into `anyhow`.

use std::{
    io::{BufReader, Read, Seek, Write},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use base64::{engine::general_purpose::STANDARD, Engine};
use tokio::time::{timeout, Instant};
use whatsapp_rust::{
    download::{DownloadParams, DownloadWriter, MediaType},
    wacore::upload::{EncryptedMediaInfo, MediaEncryptor, UploadSource},
    wacore_binary::JidExt,
    Client, Jid, MediaRetryResult, MediaReuploadRequest,
};

use crate::{
    backend::{
        media::{stream_file, ChunkSink, DownloadError, Received, Upload},
        BackendError, BoxFuture, MediaBlob, MediaTransfer,
    },
    media::{
        seal::{Seal, Sealed, Sealer},
        MediaKind,
    },
};

/// The most an upload or download may wait for the client to exist.
const CLIENT_WAIT: Duration = Duration::from_secs(20);

/// The download's write buffer: whatsapp-rust writes the plaintext a 16-byte
/// block at a time, a system call each without it (16 MiB/s on a 100 MiB file).
const DOWNLOAD_BUFFER: usize = 256 * 1024;

/// A download's scratch file behind a write buffer, as whatsapp-rust's sink.
struct Buffered(std::io::BufWriter<std::fs::File>);

impl Write for Buffered {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl Seek for Buffered {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        // BufWriter writes out what it holds before it seeks.
        self.0.seek(pos)
    }
}

impl DownloadWriter for Buffered {
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.0.flush()?;
        self.0.get_ref().set_len(len)
    }
}

/// How a transfer gets the connection's client, waiting for it until a deadline.
pub type ClientSource = Arc<dyn Fn(Instant) -> BoxFuture<'static, Result<Arc<Client>, BackendError>> + Send + Sync>;

/// One connection's file transfers.
pub struct RealMedia(pub ClientSource);

/// The library's media type of a kind.
pub fn media_type(kind: MediaKind) -> MediaType {
    match kind {
        MediaKind::Image => MediaType::Image,
        MediaKind::Video => MediaType::Video,
        MediaKind::Audio => MediaType::Audio,
        MediaKind::Document => MediaType::Document,
        MediaKind::Sticker => MediaType::Sticker,
    }
}

/// Whether the library's error says the CDN refused the reference itself.
pub fn is_expired(error: &str) -> bool {
    ["status: 401", "status: 403", "status: 404", "status: 410"]
        .iter()
        .any(|code| error.contains(code))
}

/// The encrypted file, read from any offset (a resumed upload starts midway).
struct EncryptedFile {
    path: PathBuf,
    len: u64,
}

impl UploadSource for EncryptedFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn reader_from(&self, offset: u64) -> std::io::Result<Box<dyn Read + Send>> {
        let mut file = std::fs::File::open(&self.path)?;
        file.seek(std::io::SeekFrom::Start(offset))?;
        Ok(Box::new(BufReader::with_capacity(READ_BUFFER, file)))
    }
}

/// Bytes read from the encrypted file at a time while uploading it.
const READ_BUFFER: usize = 256 * 1024;

/// Encrypts an upload as it arrives (AES-256-CBC and HMAC, as WhatsApp's CDN
/// takes it), so only ciphertext reaches the temp file.
struct Encrypting {
    encryptor: MediaEncryptor,
    /// One chunk's ciphertext, written to the file in one go.
    buf: Vec<u8>,
}

impl Sealer for Encrypting {
    fn write(&mut self, chunk: &[u8], out: &mut dyn Write) -> std::io::Result<()> {
        self.buf.clear();
        self.encryptor.update(chunk, &mut self.buf);
        out.write_all(&self.buf)
    }

    fn finish(self: Box<Self>, out: &mut dyn Write) -> std::io::Result<Sealed> {
        let Self { encryptor, mut buf } = *self;
        buf.clear();
        let info = encryptor.finalize(&mut buf).map_err(std::io::Error::other)?;
        out.write_all(&buf)?;
        Ok(Sealed {
            sha256: info.file_sha256,
            seal: Some(Seal(Box::new(info))),
        })
    }
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

impl MediaTransfer for RealMedia {
    fn sealer(&self, kind: MediaKind) -> BoxFuture<'static, Result<Box<dyn Sealer>, BackendError>> {
        Box::pin(async move {
            // Audio and video carry a streaming sidecar, as the library's own
            // `encrypt_media_streaming` gives them.
            let sidecar = matches!(kind, MediaKind::Audio | MediaKind::Video);
            let encryptor = MediaEncryptor::new_with_sidecar(media_type(kind), sidecar)
                .map_err(|e| BackendError::Storage(format!("the file could not be encrypted: {e}")))?;
            Ok(Box::new(Encrypting {
                encryptor,
                buf: Vec::new(),
            }) as Box<dyn Sealer>)
        })
    }

    fn upload(&self, file: Upload) -> BoxFuture<'static, Result<MediaBlob, BackendError>> {
        let shared = self.0.clone();
        Box::pin(async move {
            let info = file
                .seal
                .and_then(|seal| seal.0.downcast::<EncryptedMediaInfo>().ok())
                .ok_or_else(|| BackendError::Storage("the file was not encrypted as it arrived".into()))?;
            let client = shared(Instant::now() + CLIENT_WAIT).await?;
            let kind = media_type(file.kind);
            let len = tokio::fs::metadata(&file.path)
                .await
                .map_err(|e| BackendError::Storage(format!("the encrypted file is unreadable: {e}")))?
                .len();
            let source = EncryptedFile { path: file.path, len };
            let uploaded = client
                .upload_stream(source, *info, kind)
                .await
                .map_err(|e| BackendError::Unreachable(format!("the upload failed: {e:#}")))?;
            Ok(MediaBlob {
                kind: file.kind,
                mime: file.mime,
                size: uploaded.file_length,
                sha256: hex::encode(uploaded.file_sha256),
                direct_path: uploaded.direct_path,
                url: uploaded.url,
                media_key: b64(&uploaded.media_key),
                enc_sha256: b64(&uploaded.file_enc_sha256),
                key_timestamp: uploaded.media_key_timestamp,
                sidecar: uploaded.streaming_sidecar.as_deref().map(b64).unwrap_or_default(),
            })
        })
    }

    fn download(
        &self,
        blob: MediaBlob,
        scratch: PathBuf,
        sink: ChunkSink,
    ) -> BoxFuture<'static, Result<(), DownloadError>> {
        let shared = self.0.clone();
        Box::pin(async move {
            let client = shared(Instant::now() + CLIENT_WAIT).await?;
            let unreadable = |what: &str| BackendError::Refused(format!("the file's {what} is unreadable"));
            let key = STANDARD.decode(&blob.media_key).map_err(|_| unreadable("media key"))?;
            let enc_sha256 = STANDARD.decode(&blob.enc_sha256).map_err(|_| unreadable("hash"))?;
            let sha256 = hex::decode(&blob.sha256).map_err(|_| unreadable("sha256"))?;
            let params = DownloadParams::encrypted(
                blob.direct_path.clone(),
                &key,
                &sha256,
                &enc_sha256,
                blob.size,
                media_type(blob.kind),
            );
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&scratch)
                .map_err(|e| BackendError::Storage(format!("no scratch file for the download: {e}")))?;
            // Buffered: the library writes each 16-byte block as it decrypts it.
            let file = Buffered(std::io::BufWriter::with_capacity(DOWNLOAD_BUFFER, file));
            let file = match client.download_from_params_to_writer(&params, file).await {
                Ok(Buffered(file)) => file
                    .into_inner()
                    .map_err(|e| BackendError::Storage(format!("the download's scratch file: {}", e.error())))?,
                Err(error) if is_expired(&format!("{error:#}")) => return Err(DownloadError::Expired),
                Err(error) => {
                    return Err(DownloadError::Failed(BackendError::Unreachable(format!(
                        "the download failed: {error:#}"
                    ))))
                }
            };
            stream_file(file, sink).await.map_err(DownloadError::Failed)
        })
    }

    fn reupload(
        &self,
        message: Received,
        blob: MediaBlob,
        bound: Duration,
    ) -> BoxFuture<'static, Result<MediaBlob, BackendError>> {
        let shared = self.0.clone();
        Box::pin(async move {
            let client = shared(Instant::now() + CLIENT_WAIT).await?;
            let parse = |text: &str| {
                text.parse::<Jid>()
                    .map_err(|_| BackendError::Refused(format!("{text:?} is not a whatsapp jid")))
            };
            let chat = parse(&message.chat)?;
            let participant = if chat.is_group() {
                Some(parse(&message.sender)?)
            } else {
                None
            };
            let key = STANDARD
                .decode(&blob.media_key)
                .map_err(|_| BackendError::Refused("the file's media key is unreadable".into()))?;
            let request = MediaReuploadRequest {
                msg_id: &message.id,
                chat_jid: &chat,
                media_key: &key,
                is_from_me: message.from_me,
                participant: participant.as_ref(),
            };
            let answer = timeout(bound, client.media_reupload().request(&request)).await;
            match answer {
                Ok(Ok(MediaRetryResult::Success { direct_path })) => Ok(MediaBlob {
                    direct_path,
                    url: String::new(),
                    ..blob
                }),
                Ok(Ok(other)) => Err(BackendError::Unreachable(format!(
                    "the phone could not re-upload the file: {other:?}"
                ))),
                Ok(Err(error)) => Err(BackendError::Unreachable(format!(
                    "the re-upload request failed: {error}"
                ))),
                Err(_) => Err(BackendError::Unreachable(
                    "the phone did not answer the re-upload request".into(),
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_expired;

    #[test]
    fn only_a_refused_reference_counts_as_expired() {
        assert!(is_expired("Download media not found/expired with status: 410"));
        assert!(is_expired("Download failed with status: 403"));
        assert!(!is_expired("Download failed with status: 500"));
        assert!(!is_expired("connection reset"));
    }
}
