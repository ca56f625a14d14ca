//! Media for a session: a SendMessage's handle turned into the file it sends (a
//! handle of this session, not expired, and a voice note only of OGG/Opus audio),
//! and the connection's file transfers lent to UploadMedia and DownloadMedia, which
//! run them off the mailbox (a 100 MB upload must not hold the session up).

use std::{sync::Arc, time::SystemTime};

use ractor::RpcReplyPort;

use super::SessionRun;
use crate::{
    backend::{MediaBlob, MediaMessage, MediaTransfer},
    domain::{MediaInput, SessionId},
    error::SessionError,
    events::EventLog,
    media::{kind::is_voice, MediaKind},
};

/// The file `input`'s handle names, as `session` sends it.
pub(super) async fn message(
    log: &EventLog,
    session: &SessionId,
    input: &MediaInput,
) -> Result<MediaMessage, SessionError> {
    let id = &input.media_id;
    let handle = log
        .media()
        .handle(id)
        .await
        .map_err(|e| SessionError::Unavailable(format!("could not read media handle {id:?} ({e}): retry")))?;
    let unknown = || {
        SessionError::Missing(format!(
            "media_id {id:?} is unknown or expired for session {session}: upload the file again with UploadMedia"
        ))
    };
    let handle = handle
        .filter(|h| h.session_id == session.as_str() && h.expires_at > SystemTime::now())
        .ok_or_else(unknown)?;
    let blob: MediaBlob = serde_json::from_str(&handle.blob).map_err(|_| unknown())?;
    if input.voice_note && (blob.kind != MediaKind::Audio || !is_voice(&blob.mime)) {
        return Err(SessionError::InvalidArgument(format!(
            "a voice note must be OGG/Opus audio (audio/ogg; codecs=opus), media_id {id:?} is a {} of {}: convert it (e.g. ffmpeg -c:a libopus) and upload it again",
            blob.kind.name(),
            blob.mime
        )));
    }
    let file_name = match input.file_name.as_str() {
        "" => handle.file_name,
        name => name.to_owned(),
    };
    Ok(MediaMessage {
        blob,
        caption: input.caption.clone(),
        file_name,
        voice_note: input.voice_note,
        duration_seconds: input.duration_seconds,
        waveform: input.waveform.clone(),
        jpeg_thumbnail: input.jpeg_thumbnail.clone(),
    })
}

impl SessionRun {
    /// Lends the connection's file transfers when CONNECTED.
    pub(super) fn media_transfer(&mut self, reply: RpcReplyPort<Result<Arc<dyn MediaTransfer>, SessionError>>) {
        let lent = match (self.state.require_connected(), self.conn.as_ref()) {
            (Err(refused), _) => Err(refused),
            (Ok(()), None) => Err(SessionError::Unavailable(
                "the connection closed a moment ago: retry".into(),
            )),
            (Ok(()), Some(conn)) => conn.media().ok_or_else(|| SessionError::FailedPrecondition {
                message: "this backend does not transfer media files".into(),
                status: None,
                reason: "MEDIA_UNSUPPORTED",
            }),
        };
        self.answer(reply, lent);
    }
}
