//! An upload: the declared file checked against its kind's cap before anything
//! else, the session's connection borrowed (CONNECTED only), the bytes received
//! into a temp file (sealed on the way as the backend asks), uploaded once, and the handle kept on disk; the temp file goes
//! however the call ends.

use std::time::SystemTime;

use tokio_stream::Stream;
use tracing::info;

use super::MediaSettings;
use crate::{
    backend::{self, BackendError},
    domain::SessionId,
    error::SessionError,
    events::EventLog,
    media::{
        staging::{self, Declared},
        Handle, MediaKind,
    },
    registry::Sessions,
};

/// What the caller declared in its first message.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    /// Whose upload it is.
    pub session: SessionId,
    /// What it is sent as.
    pub kind: MediaKind,
    /// Its mime ("" to sniff).
    pub mime: String,
    /// Its name (documents).
    pub file_name: String,
    /// Its length.
    pub size: u64,
}

/// Receives `chunks` and uploads them once; answers the handle kept on disk.
pub async fn upload<S>(
    settings: &MediaSettings,
    sessions: &Sessions,
    log: &EventLog,
    request: UploadRequest,
    chunks: S,
) -> Result<Handle, SessionError>
where
    S: Stream<Item = Result<Vec<u8>, SessionError>> + Unpin,
{
    let declared = Declared {
        kind: request.kind,
        mime: request.mime.clone(),
        size: request.size,
        cap: settings.caps.cap(request.kind),
    };
    staging::check_declared(&declared)?;
    let transfer = sessions.media(request.session.clone()).await?;
    let sealer = transfer
        .sealer(request.kind)
        .await
        .map_err(|e| failed("the file was not received", e))?;
    let mut staged = staging::receive(&settings.root, &declared, sealer, chunks).await?;
    let file = backend::media::Upload {
        path: staged.file.path().to_owned(),
        kind: request.kind,
        mime: staged.mime.clone(),
        size: staged.size,
        sha256: staged.sha256.clone(),
        seal: staged.seal.take(),
    };
    let blob = transfer
        .upload(file)
        .await
        .map_err(|e| failed("the file was not uploaded", e))?;
    let handle = Handle {
        media_id: Handle::new_id(),
        session_id: request.session.to_string(),
        kind: request.kind.name().to_owned(),
        mime: staged.mime.clone(),
        size: staged.size,
        sha256: staged.sha256.clone(),
        file_name: request.file_name,
        blob: serde_json::to_string(&blob).map_err(|e| SessionError::Internal(e.to_string()))?,
        expires_at: SystemTime::now() + settings.handle_ttl,
    };
    log.media().put_handle(handle.clone()).await.map_err(|e| {
        SessionError::Unavailable(format!(
            "the uploaded file's handle could not be stored ({e}): upload it again"
        ))
    })?;
    drop(staged);
    info!(session_id = %request.session, media_id = %handle.media_id, kind = request.kind.name(), size = handle.size, "media uploaded");
    Ok(handle)
}

/// A backend's failure to move a file, as the caller hears it.
pub fn failed(what: &str, error: BackendError) -> SessionError {
    match error {
        BackendError::Refused(why) => SessionError::Unavailable(format!("{what}: {why}; retry")),
        BackendError::Unreachable(why) => {
            SessionError::Unavailable(format!("{what}: whatsapp unreachable ({why}); retry"))
        }
        BackendError::Storage(why) => SessionError::Unavailable(format!("{what}: {why}; retry")),
    }
}
