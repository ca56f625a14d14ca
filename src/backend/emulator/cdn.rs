//! The emulated WhatsApp's media CDN, in each session's folder of the data dir
//! (`sessions/<session>/emulated-cdn/`, so the files go with their session when it
//! is deleted, a crash midway included): what the account's device uploaded (`up-*.bin`, one file per upload, however
//! often it is sent), what phones sent it (`in-<message id>.bin`), and the phone's
//! own copy of a file whose CDN copy expired (`phone-<id>.bin`, with
//! `phone-<id>.online` while the phone answers re-upload requests). Files are kept
//! in the clear: the emulator proves the daemon's flow, not WhatsApp's crypto.

use std::{io::Read, path::PathBuf, sync::Arc, time::SystemTime};

use sha2::{Digest, Sha256};

use super::{keys, Emulator};
use crate::{
    backend::{
        media::{stream_file, ChunkSink, DownloadError, Received, Upload},
        BackendError, BoxFuture, MediaBlob, MediaTransfer,
    },
    domain::{id::is_phone_digits, SessionId},
    error::SessionError,
    events::{Body, InboundMessage},
    media::{kind::mime_of, MediaKind},
    proto::{self, Media, MessageKind},
    store::DataDir,
};

/// The CDN's folder under a session's folder.
const CDN_DIR: &str = "emulated-cdn";

/// Re-upload requests the phones answered, one line each, per account.
const REUPLOADS: &str = "reuploads";

/// Bytes per chunk a download hands over.
const CHUNK: usize = 64 * 1024;

/// One session's view of the CDN: what its connection lends as file transfers.
pub(super) struct Cdn {
    dir: PathBuf,
    session: SessionId,
    data: DataDir,
}

/// The CDN folder of `session`.
fn cdn_dir(data: &DataDir, session: &SessionId) -> PathBuf {
    data.session_dir(session).join(CDN_DIR)
}

/// The file a CDN path (`<session>/<name>`) names, refusing any path that would
/// leave the CDN.
fn cdn_path(data: &DataDir, direct_path: &str) -> Option<PathBuf> {
    let (session, name) = direct_path.split_once('/')?;
    let safe =
        !name.is_empty() && name != ".." && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
    let session = SessionId::parse(session).ok().filter(|_| safe)?;
    Some(cdn_dir(data, &session).join(name))
}

impl Emulator {
    fn cdn_dir(&self, session: &SessionId) -> PathBuf {
        cdn_dir(&self.inner.data, session)
    }

    /// The file transfers a connection of `session` lends.
    pub(super) fn cdn(&self, session: &SessionId) -> Arc<dyn MediaTransfer> {
        Arc::new(Cdn {
            dir: self.cdn_dir(session),
            session: session.clone(),
            data: self.inner.data.clone(),
        })
    }

    /// A phone (`from`, digits) sends the account a file. Returns its message id once
    /// the server holds it.
    pub async fn deliver_media(
        &self,
        session: &SessionId,
        body: proto::DeliverMediaRequest,
    ) -> Result<String, SessionError> {
        if !is_phone_digits(&body.from) {
            return Err(SessionError::InvalidArgument(format!(
                "from {:?} is not a phone number: use 7 to 15 digits with the country code",
                body.from
            )));
        }
        let kind = MediaKind::from_wire(body.kind)
            .ok_or_else(|| SessionError::InvalidArgument("kind is required: MEDIA_KIND_IMAGE, ...".into()))?;
        if body.data.is_empty() {
            return Err(SessionError::InvalidArgument(
                "data is empty: send the file's bytes".into(),
            ));
        }
        self.require_linked(session)?;
        let id = keys::message_id();
        let dir = self.cdn_dir(session);
        let stored = crate::store::create_private_dir(&dir)
            .and_then(|()| std::fs::write(dir.join(format!("in-{id}.bin")), &body.data));
        stored.map_err(|e| SessionError::Unavailable(format!("the emulated cdn failed: {e}; try again")))?;
        let jid = format!("{}@s.whatsapp.net", body.from);
        let message = InboundMessage {
            id: id.clone(),
            chat: jid.clone(),
            sender: jid,
            sent_at: Some(SystemTime::now().into()),
            push_name: format!("Phone {}", body.from),
            kind: MessageKind::Media as i32,
            media: Some(Media {
                kind: kind.name().into(),
                mime: mime_of(&body.mime, &body.data),
                size: body.data.len() as u64,
                caption: body.caption,
                sha256: hex::encode(Sha256::digest(&body.data)),
                downloadable: true,
                file_name: body.file_name,
            }),
            ..Default::default()
        };
        self.hold(session, Body::Message(message)).await?;
        Ok(id)
    }

    /// WhatsApp's copy of a delivered file expires; the phone keeps its own, and
    /// answers re-upload requests only while `phone_online`.
    pub async fn expire_media(
        &self,
        session: &SessionId,
        message_id: &str,
        phone_online: bool,
    ) -> Result<(), SessionError> {
        let dir = self.cdn_dir(session);
        let (cdn, phone) = (
            dir.join(format!("in-{message_id}.bin")),
            dir.join(format!("phone-{message_id}.bin")),
        );
        let failed = |e: std::io::Error| SessionError::Unavailable(format!("the emulated cdn failed: {e}; try again"));
        if cdn.exists() {
            std::fs::rename(&cdn, &phone).map_err(failed)?;
        } else if !phone.exists() {
            return Err(SessionError::Missing(format!(
                "no file of message {message_id:?} on the emulated cdn of session {session}"
            )));
        }
        let online = dir.join(format!("phone-{message_id}.online"));
        if phone_online {
            std::fs::write(online, b"").map_err(failed)?;
        } else {
            crate::store::remove_if_present(&online).map_err(failed)?;
        }
        Ok(())
    }

    /// Files the account uploaded, and re-upload requests its phones answered.
    pub async fn media_counts(&self, session: &SessionId) -> (u64, u64) {
        let dir = self.cdn_dir(session);
        let uploads = std::fs::read_dir(&dir).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("up-"))
                .count() as u64
        });
        let reuploads = std::fs::read(dir.join(REUPLOADS)).map_or(0, |b| b.len() as u64);
        (uploads, reuploads)
    }

    /// The descriptor a delivered file is downloaded with (kept by the daemon).
    pub(super) fn inbound_blob(&self, session: &SessionId, message: &InboundMessage) -> Option<MediaBlob> {
        let media = message.media.as_ref().filter(|m| m.downloadable)?;
        Some(MediaBlob {
            kind: MediaKind::parse(&media.kind)?,
            mime: media.mime.clone(),
            size: media.size,
            sha256: media.sha256.clone(),
            direct_path: format!("{session}/in-{}.bin", message.id),
            url: String::new(),
            media_key: String::new(),
            enc_sha256: String::new(),
            key_timestamp: 0,
            sidecar: String::new(),
        })
    }

    /// What the server reads from its CDN for a sent file: (size, sha256).
    pub(super) async fn read_back(&self, blob: &MediaBlob) -> Option<(u64, String)> {
        let path = cdn_path(&self.inner.data, &blob.direct_path)?;
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(path).ok()?;
            let (mut hash, mut size, mut buf) = (Sha256::new(), 0u64, vec![0u8; CHUNK]);
            loop {
                let n = file.read(&mut buf).ok()?;
                if n == 0 {
                    return Some((size, hex::encode(hash.finalize())));
                }
                hash.update(&buf[..n]);
                size += n as u64;
            }
        })
        .await
        .ok()
        .flatten()
    }
}

impl MediaTransfer for Cdn {
    fn upload(&self, file: Upload) -> BoxFuture<'static, Result<MediaBlob, BackendError>> {
        let (dir, session) = (self.dir.clone(), self.session.clone());
        Box::pin(async move {
            let name = format!("up-{}.bin", keys::message_id());
            let failed = |e: std::io::Error| BackendError::Unreachable(format!("the emulated cdn failed: {e}"));
            crate::store::create_private_dir(&dir).map_err(failed)?;
            // The staged file is the upload: moved, not copied (a copy only where
            // the rename cannot go).
            if tokio::fs::rename(&file.path, dir.join(&name)).await.is_err() {
                tokio::fs::copy(&file.path, dir.join(&name)).await.map_err(failed)?;
            }
            Ok(MediaBlob {
                kind: file.kind,
                mime: file.mime,
                size: file.size,
                sha256: file.sha256,
                direct_path: format!("{session}/{name}"),
                url: String::new(),
                media_key: String::new(),
                enc_sha256: String::new(),
                key_timestamp: crate::store::unix_ms(SystemTime::now()) as i64 / 1000,
                sidecar: String::new(),
            })
        })
    }

    fn download(
        &self,
        blob: MediaBlob,
        _scratch: PathBuf,
        sink: ChunkSink,
    ) -> BoxFuture<'static, Result<(), DownloadError>> {
        let data = self.data.clone();
        Box::pin(async move {
            let path = cdn_path(&data, &blob.direct_path).ok_or(DownloadError::Expired)?;
            // Gone from the CDN: WhatsApp answers 404/410.
            let Ok(file) = std::fs::File::open(&path) else {
                return Err(DownloadError::Expired);
            };
            stream_file(file, sink).await.map_err(DownloadError::Failed)
        })
    }

    fn reupload(
        &self,
        message: Received,
        blob: MediaBlob,
        _bound: std::time::Duration,
    ) -> BoxFuture<'static, Result<MediaBlob, BackendError>> {
        let (dir, message_id) = (self.dir.clone(), message.id);
        let session = self.session.clone();
        Box::pin(async move {
            let phone = dir.join(format!("phone-{message_id}.bin"));
            if !dir.join(format!("phone-{message_id}.online")).exists() || !phone.exists() {
                return Err(BackendError::Unreachable(
                    "the phone did not answer the re-upload request".into(),
                ));
            }
            let name = format!("in-{message_id}.bin");
            let failed = |e: std::io::Error| BackendError::Unreachable(format!("the emulated cdn failed: {e}"));
            std::fs::rename(&phone, dir.join(&name)).map_err(failed)?;
            let _ = crate::store::remove_if_present(&dir.join(format!("phone-{message_id}.online")));
            let mut count = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(REUPLOADS))
                .map_err(failed)?;
            std::io::Write::write_all(&mut count, b"r").map_err(failed)?;
            Ok(MediaBlob {
                direct_path: format!("{session}/{name}"),
                ..blob
            })
        })
    }
}
