//! UploadMedia's and DownloadMedia's wire side: the request stream turned into a
//! declared file and its chunks, the handle and the chunks turned back into wire
//! messages. What they do is `crate::transfer`'s.

use tokio::sync::mpsc;
use tokio_stream::{wrappers::ReceiverStream, StreamExt};
use tonic::{Status, Streaming};

use super::{convert, streams::WireStream};
use crate::{
    domain::{input, SessionId},
    error::SessionError,
    events::EventLog,
    media::{Handle, MediaKind},
    proto::{self, media_chunk, upload_media_request::Part},
    registry::Sessions,
    transfer::{download, upload, MediaSettings},
};

/// Bytes per DownloadMedia chunk at most (the backend's chunks are split to this).
const CHUNK: usize = 64 * 1024;

/// Runs an UploadMedia call.
pub async fn upload(
    settings: &MediaSettings,
    sessions: &Sessions,
    log: &EventLog,
    mut stream: Streaming<proto::UploadMediaRequest>,
) -> Result<proto::MediaHandle, SessionError> {
    let first = stream.message().await.map_err(cut)?;
    let Some(proto::UploadMediaRequest {
        part: Some(Part::Info(info)),
    }) = first
    else {
        return Err(SessionError::InvalidArgument(
            "the first message must carry info (session_id, kind, size), the next ones chunk".into(),
        ));
    };
    let session = SessionId::parse(&info.session_id)?;
    let kind = MediaKind::from_wire(info.kind).ok_or_else(|| {
        SessionError::InvalidArgument(
            "info.kind is required: MEDIA_KIND_IMAGE, VIDEO, AUDIO, DOCUMENT or STICKER".into(),
        )
    })?;
    let request = upload::UploadRequest {
        session,
        kind,
        mime: info.mime,
        file_name: info.file_name,
        size: info.size,
    };
    let chunks = stream.map(|message| match message {
        Ok(proto::UploadMediaRequest {
            part: Some(Part::Chunk(bytes)),
        }) => Ok(bytes),
        Ok(_) => Err(SessionError::InvalidArgument(
            "only the first message carries info: the next ones carry chunk".into(),
        )),
        Err(status) => Err(cut(status)),
    });
    let handle = upload::upload(settings, sessions, log, request, Box::pin(chunks)).await?;
    Ok(media_handle(handle))
}

/// The caller's stream broke (cancelled, or a transport error).
fn cut(status: Status) -> SessionError {
    SessionError::InvalidArgument(format!(
        "the upload stream broke ({}): nothing was uploaded; send the file again",
        status.message()
    ))
}

fn media_handle(handle: Handle) -> proto::MediaHandle {
    proto::MediaHandle {
        media_id: handle.media_id,
        kind: MediaKind::parse(&handle.kind).map_or(0, |k| k.wire() as i32),
        mime: handle.mime,
        size: handle.size,
        sha256: handle.sha256,
        expires_at: Some(convert::timestamp(handle.expires_at)),
        file_name: handle.file_name,
    }
}

/// Runs a DownloadMedia call: its stream, once the file is found.
pub async fn download(
    settings: &MediaSettings,
    sessions: &Sessions,
    log: &EventLog,
    body: proto::DownloadMediaRequest,
) -> Result<WireStream<proto::MediaChunk>, SessionError> {
    let session = SessionId::parse(&body.session_id)?;
    let chat = input::chat(&body.chat)?;
    let message_id = input::message_id(&body.message_id, "message_id")?;
    let found = download::open(settings, sessions, log, session.clone(), &chat, &message_id).await?;
    let media = found.message.media.clone().unwrap_or_default();
    let info = proto::MediaInfo {
        session_id: session.to_string(),
        kind: MediaKind::parse(&media.kind).map_or(0, |k| k.wire() as i32),
        mime: media.mime,
        file_name: media.file_name,
        size: media.size,
        sha256: media.sha256,
    };
    let (tx, rx) = mpsc::channel::<Result<proto::MediaChunk, tonic::Status>>(4);
    tokio::spawn(async move {
        let part = |part| Ok(proto::MediaChunk { part: Some(part) });
        if tx.send(part(media_chunk::Part::Info(info))).await.is_err() {
            return;
        }
        let (bytes_tx, bytes_rx) = mpsc::channel::<Vec<u8>>(4);
        let forward = async {
            // Owned: when the caller goes, the download's sends fail and it stops.
            let mut bytes_rx = bytes_rx;
            while let Some(bytes) = bytes_rx.recv().await {
                // A chunk that fits goes as it is (no copy); a larger one is split.
                let pieces = match bytes.len() <= CHUNK {
                    true => vec![bytes],
                    false => bytes.chunks(CHUNK).map(<[u8]>::to_vec).collect(),
                };
                for piece in pieces {
                    if tx.send(part(media_chunk::Part::Chunk(piece))).await.is_err() {
                        return;
                    }
                }
            }
        };
        let (ran, ()) = tokio::join!(found.run(bytes_tx), forward);
        if let Err(error) = ran {
            let _ = tx.send(Err(error.into())).await;
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}
