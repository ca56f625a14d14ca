//! A download: the message found in the event log (NOT_FOUND otherwise, or when it
//! has no file), its descriptor kept server-side, the session's connection
//! borrowed (CONNECTED only), and the decrypted bytes streamed out with their
//! sha256 checked at the end. When WhatsApp's copy expired, the phone is asked once
//! to upload it again, and the download retried with the new descriptor; without an
//! answer, UNAVAILABLE with reason MEDIA_EXPIRED.

use std::{path::PathBuf, sync::Arc, time::Duration};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tracing::info;

use super::{upload::failed, MediaSettings};
use crate::{
    backend::{
        media::{DownloadError, Received},
        MediaBlob, MediaTransfer,
    },
    domain::SessionId,
    error::SessionError,
    events::{EventLog, InboundMessage},
    media::staging,
    registry::Sessions,
};

/// A download ready to run.
pub struct Download {
    /// The message as the log has it (its `media` describes the file).
    pub message: InboundMessage,
    /// The descriptor kept when it arrived.
    blob: MediaBlob,
    transfer: Arc<dyn MediaTransfer>,
    log: EventLog,
    session: SessionId,
    /// The data dir (the backend's scratch file goes under its `media-tmp/`).
    root: PathBuf,
    /// How long the phone may take to upload the file again.
    reupload_timeout: Duration,
}

/// Finds message `message_id` of `chat` and what its file needs.
pub async fn open(
    settings: &MediaSettings,
    sessions: &Sessions,
    log: &EventLog,
    session: SessionId,
    chat: &str,
    message_id: &str,
) -> Result<Download, SessionError> {
    let unreadable =
        |e: crate::store::DbError| SessionError::Unavailable(format!("could not read the event log ({e}): retry"));
    let message = log
        .received(session.as_str(), chat, message_id)
        .await
        .map_err(unreadable)?
        .ok_or_else(|| {
            SessionError::Missing(format!(
                "message {message_id:?} of chat {chat} is not in session {session}'s log: check the id and the chat"
            ))
        })?;
    if message.media.is_none() {
        return Err(SessionError::Missing(format!(
            "message {message_id:?} of chat {chat} has no file to download"
        )));
    }
    let kept = log
        .media()
        .inbound(session.as_str(), chat, message_id)
        .await
        .map_err(unreadable)?;
    let blob = kept
        .and_then(|json| serde_json::from_str::<MediaBlob>(&json).ok())
        .ok_or_else(|| {
            SessionError::Missing(format!(
                "the file of message {message_id:?} of chat {chat} cannot be downloaded: the daemon kept no descriptor for it (received before downloads were kept)"
            ))
        })?;
    let transfer = sessions.media(session.clone()).await?;
    Ok(Download {
        message,
        blob,
        transfer,
        log: log.clone(),
        session,
        root: settings.root.clone(),
        reupload_timeout: settings.reupload_timeout,
    })
}

impl Download {
    /// Streams the plaintext into `out`; ends early, without error, when `out`
    /// closes (the caller went away).
    pub async fn run(self, out: mpsc::Sender<Vec<u8>>) -> Result<(), SessionError> {
        let (chat, id) = (self.message.chat.clone(), self.message.id.clone());
        let mut blob = self.blob.clone();
        for attempt in 0..2 {
            let (tx, rx) = mpsc::channel(4);
            let scratch = staging::scratch(&self.root);
            let fetch = self.transfer.download(blob.clone(), scratch.path().to_owned(), tx);
            let (mut hash, mut size, mut gone) = (Sha256::new(), 0u64, false);
            let pump = async {
                let mut rx = rx;
                while let Some(chunk) = rx.recv().await {
                    hash.update(&chunk);
                    size += chunk.len() as u64;
                    if out.send(chunk).await.is_err() {
                        gone = true;
                        break;
                    }
                }
            };
            let (fetched, ()) = tokio::join!(fetch, pump);
            match fetched {
                Ok(()) if gone => return Ok(()),
                Ok(()) => {
                    let sha256 = hex::encode(hash.finalize());
                    if size != blob.size || (!blob.sha256.is_empty() && sha256 != blob.sha256) {
                        return Err(SessionError::Unavailable(format!(
                            "the file of message {id:?} did not match its hash ({size} bytes downloaded of {}): retry",
                            blob.size
                        )));
                    }
                    return Ok(());
                }
                Err(DownloadError::Expired) if attempt == 0 && size == 0 => {
                    info!(session_id = %self.session, message_id = %id, "whatsapp's copy expired: asking the phone to upload it again");
                    let message = Received {
                        chat: chat.clone(),
                        id: id.clone(),
                        from_me: self.message.from_me,
                        sender: self.message.sender.clone(),
                    };
                    let again = self
                        .transfer
                        .reupload(message, blob.clone(), self.reupload_timeout)
                        .await;
                    blob = again.map_err(|_| expired(&id))?;
                    if let Ok(json) = serde_json::to_string(&blob) {
                        let _ = self
                            .log
                            .media()
                            .put_inbound(self.session.as_str(), &chat, &id, json)
                            .await;
                    }
                }
                Err(DownloadError::Expired) => return Err(expired(&id)),
                Err(DownloadError::Failed(error)) => return Err(failed("the file was not downloaded", error)),
            }
        }
        Err(expired(&id))
    }
}

fn expired(id: &str) -> SessionError {
    SessionError::MediaExpired(format!(
        "whatsapp's copy of the file of message {id:?} expired and the phone did not upload it again: retry once the phone is online"
    ))
}
