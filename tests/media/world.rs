//! What a test body needs of a backend's world (a daemon with one CONNECTED
//! session, and a phone and server to steer), and the helpers every body uses.

use std::{path::Path, time::Duration};

use sha2::{Digest, Sha256};
use tonic::{transport::Channel, Code, Status};
use tonic_types::StatusExt;
use wa_sessiond::proto::{
    media_chunk, session_service_client::SessionServiceClient, upload_media_request::Part, DownloadMediaRequest,
    EmulatedMedia, MediaHandle, MediaInfo, MediaKind, UploadMediaRequest,
};

/// A media message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The chat it went to.
    pub to: String,
    /// The file as the server decrypted it.
    pub media: EmulatedMedia,
}

/// A backend's world.
#[tonic::async_trait]
pub trait World: Send + Sync {
    /// The daemon (its data dir is `data_dir`).
    fn daemon(&self) -> &super::common::Daemon;
    /// The daemon's data dir.
    fn data_dir(&self) -> &Path;
    /// A client of the daemon's SessionService.
    async fn sessions(&self) -> SessionServiceClient<Channel> {
        self.daemon().sessions().await
    }
    /// The CONNECTED session's id.
    fn session(&self) -> &str {
        "alice"
    }
    /// A session that exists and is not CONNECTED.
    async fn offline_session(&self) -> String {
        let mut client = self.daemon().sessions().await;
        client.create_session(super::common::create("bob")).await.unwrap();
        "bob".into()
    }
    /// Media messages the server received from the session, and how many files it
    /// uploaded and the phones re-uploaded.
    async fn at_server(&self) -> (Vec<Received>, u64, u64);
    /// A phone (`from`, digits) sends the session a file; its message id.
    async fn deliver_media(&self, from: &str, kind: MediaKind, data: Vec<u8>, caption: &str) -> String;
    /// WhatsApp's copy of a delivered file expires; the phone answers re-upload
    /// requests only when `online`.
    async fn expire_media(&self, message_id: &str, online: bool);
}

/// Hex sha256.
pub fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes that look like nothing in particular (a seeded xorshift), `len` long.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The first message of an upload.
pub fn info(session: &str, kind: MediaKind, mime: &str, size: u64) -> UploadMediaRequest {
    UploadMediaRequest {
        part: Some(Part::Info(MediaInfo {
            session_id: session.into(),
            kind: kind as i32,
            mime: mime.into(),
            file_name: "file.bin".into(),
            size,
            sha256: String::new(),
        })),
    }
}

/// Uploads `data` declared as `size` bytes, in `chunk`-byte messages.
pub async fn upload_as(
    world: &dyn World,
    kind: MediaKind,
    mime: &str,
    data: &[u8],
    size: u64,
    chunk: usize,
) -> Result<MediaHandle, Status> {
    let mut messages = vec![info(world.session(), kind, mime, size)];
    messages.extend(data.chunks(chunk).map(|c| UploadMediaRequest {
        part: Some(Part::Chunk(c.to_vec())),
    }));
    let mut client = world.sessions().await;
    client
        .upload_media(tokio_stream::iter(messages))
        .await
        .map(|r| r.into_inner())
}

/// Uploads `data` whole, in 64 KiB messages.
pub async fn upload(world: &dyn World, kind: MediaKind, mime: &str, data: &[u8]) -> MediaHandle {
    upload_as(world, kind, mime, data, data.len() as u64, 64 * 1024)
        .await
        .expect("uploaded")
}

/// Downloads a received file: its info and bytes, or the status the stream ended
/// with.
pub async fn download(world: &dyn World, chat: &str, message_id: &str) -> Result<(MediaInfo, Vec<u8>), Status> {
    let request = DownloadMediaRequest {
        session_id: world.session().into(),
        message_id: message_id.into(),
        chat: chat.into(),
    };
    let mut client = world.sessions().await;
    let mut stream = client.download_media(request).await?.into_inner();
    let (mut info, mut bytes) = (None, Vec::new());
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("the download goes on")?
    {
        match chunk.part {
            Some(media_chunk::Part::Info(i)) => info = Some(i),
            Some(media_chunk::Part::Chunk(c)) => bytes.extend_from_slice(&c),
            None => {}
        }
    }
    Ok((info.expect("the first message is info"), bytes))
}

/// The ErrorInfo reason of a status ("" without one).
pub fn reason(status: &Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

/// Asserts `result` failed with `code`, its message containing `says`.
pub fn refused<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, says: &str) -> Status {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(says),
        "{:?} should say {says:?}",
        status.message()
    );
    status
}

/// Files left in the upload temp folder.
pub fn temp_files(world: &dyn World) -> usize {
    std::fs::read_dir(world.data_dir().join("media-tmp")).map_or(0, |d| d.count())
}

/// Handles the daemon keeps on disk.
pub fn handles(world: &dyn World) -> i64 {
    let db = rusqlite::Connection::open_with_flags(
        world.data_dir().join("media.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    db.query_row("SELECT COUNT(*) FROM media_handles", [], |row| row.get(0))
        .unwrap()
}
