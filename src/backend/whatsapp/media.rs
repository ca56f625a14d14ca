//! The real backend's file transfers, on whatsapp-rust: an upload encrypted from
//! the daemon's temp file into a second temp file with constant memory
//! (`encrypt_media_streaming`) and streamed to WhatsApp's CDN (`upload_stream`,
//! resumable above 5 MiB); a download decrypted into a scratch file
//! (`download_from_params_to_writer`, which verifies the hashes) and streamed out;
//! and a re-upload request to the phone (`media_reupload().request`).
//!
//! Whether the CDN refused the reference (401/403/404/410) is read from the
//! library's error text: 0.7.0's `Client` flattens its typed `MediaDownloadError`
//! into `anyhow`.

use std::{
    io::{BufReader, BufWriter, Read, Seek, Write},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use base64::{engine::general_purpose::STANDARD, Engine};
use tokio::time::{timeout, Instant};
use whatsapp_rust::{
    download::{DownloadParams, MediaType},
    wacore::upload::{encrypt_media_streaming, UploadSource},
    wacore_binary::JidExt,
    Client, Jid, MediaRetryResult, MediaReuploadRequest,
};

use crate::{
    backend::{
        media::{stream_file, ChunkSink, DownloadError, Received, Upload},
        BackendError, BoxFuture, MediaBlob, MediaTransfer,
    },
    media::MediaKind,
};

/// The most an upload or download may wait for the client to exist.
const CLIENT_WAIT: Duration = Duration::from_secs(20);

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
        Ok(Box::new(BufReader::new(file)))
    }
}

/// Removes a file when dropped (a cancelled upload leaves no ciphertext).
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

impl MediaTransfer for RealMedia {
    fn upload(&self, file: Upload) -> BoxFuture<'static, Result<MediaBlob, BackendError>> {
        let shared = self.0.clone();
        Box::pin(async move {
            let client = shared(Instant::now() + CLIENT_WAIT).await?;
            let kind = media_type(file.kind);
            // Created here, under its guard: a cancelled upload removes it even while
            // the encryption still writes (to a file no longer named anywhere).
            let encrypted = Removed(file.path.with_extension("enc"));
            let out = std::fs::File::create(&encrypted.0)
                .map_err(|e| BackendError::Storage(format!("no temp file for the encrypted upload: {e}")))?;
            let (plain, cipher) = (file.path.clone(), encrypted.0.clone());
            let sealed = tokio::task::spawn_blocking(move || -> whatsapp_rust::anyhow::Result<_> {
                let reader = BufReader::new(std::fs::File::open(plain)?);
                let mut writer = BufWriter::new(out);
                let info = encrypt_media_streaming(reader, &mut writer, kind)?;
                writer.flush()?;
                Ok((info, std::fs::metadata(&cipher)?.len()))
            })
            .await
            .map_err(|e| BackendError::Storage(e.to_string()))?;
            let (info, len) =
                sealed.map_err(|e| BackendError::Storage(format!("the file could not be encrypted: {e}")))?;
            let source = EncryptedFile {
                path: encrypted.0.clone(),
                len,
            };
            let uploaded = client
                .upload_stream(source, info, kind)
                .await
                .map_err(|e| BackendError::Unreachable(format!("the upload failed: {e:#}")))?;
            Ok(MediaBlob {
                kind: file.kind,
                mime: file.mime,
                size: uploaded.file_length,
                sha256: uploaded.file_sha256.iter().map(|b| format!("{b:02x}")).collect(),
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
            let sha256 = (0..blob.sha256.len() / 2)
                .map(|i| u8::from_str_radix(&blob.sha256[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| unreadable("sha256"))?;
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
            let file = match client.download_from_params_to_writer(&params, file).await {
                Ok(file) => file,
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
