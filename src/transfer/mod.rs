//! UploadMedia and DownloadMedia, apart from the wire: a file streamed in, checked
//! (cap, size, hash, mime), uploaded once through the session's connection and kept
//! as a handle (`upload`); a received file streamed out from its kept descriptor,
//! hash-checked, with one re-upload request to the phone when WhatsApp's copy
//! expired (`download`). Both run off the session's mailbox, on the connection's
//! file transfers the session lends while CONNECTED.

pub mod download;
pub mod upload;

use std::{path::PathBuf, time::Duration};

use crate::media::MediaCaps;

/// What UploadMedia and DownloadMedia are configured with.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    /// The largest file of each kind (`--media-max-bytes`).
    pub caps: MediaCaps,
    /// How long a handle works (`--media-handle-ttl`).
    pub handle_ttl: Duration,
    /// How long a download waits for the phone's re-upload
    /// (`--media-reupload-timeout`).
    pub reupload_timeout: Duration,
    /// The data dir (temp files go under its `media-tmp/`).
    pub root: PathBuf,
}
