//! A file streamed in over gRPC, kept in a temp file under the data dir
//! (`media-tmp/`), written as it arrives by the backend's [`Sealer`] (which takes
//! its sha256 on the way, and on the real backend encrypts it): memory stays flat
//! whatever the size. The temp file goes when its [`Staged`] goes (the call ended,
//! failed or was cancelled), and at startup whatever a crash left.

use std::path::{Path, PathBuf};

use std::io::{BufWriter, Write};

use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};

use super::{
    kind::{human, mime_of, MediaKind},
    seal::{Seal, Sealed, Sealer},
};
use crate::error::SessionError;

/// The temp files' folder under the data dir.
pub const STAGING_DIR: &str = "media-tmp";

/// What the caller declared in its first message.
#[derive(Debug, Clone)]
pub struct Declared {
    /// The kind it is sent as.
    pub kind: MediaKind,
    /// Its mime ("" to sniff).
    pub mime: String,
    /// Its length in bytes.
    pub size: u64,
    /// The kind's cap.
    pub cap: u64,
}

/// A file received whole.
#[derive(Debug)]
pub struct Staged {
    /// The temp file (removed on drop).
    pub file: TempFile,
    /// Bytes received (the declared size).
    pub size: u64,
    /// Hex sha256 of the bytes.
    pub sha256: String,
    /// The caller's mime, or the sniffed one.
    pub mime: String,
    /// How the backend's sealer sealed it (`None`: the file holds the plaintext).
    pub seal: Option<Seal>,
}

/// A temp file, removed when dropped.
#[derive(Debug)]
pub struct TempFile(PathBuf);

impl TempFile {
    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// OUT_OF_RANGE when a declared size is over the kind's cap.
pub fn check_declared(declared: &Declared) -> Result<(), SessionError> {
    let Declared { kind, size, cap, .. } = declared;
    if *size == 0 {
        return Err(SessionError::InvalidArgument(
            "info.size is required: the file's length in bytes".into(),
        ));
    }
    if size > cap {
        return Err(SessionError::OutOfRange(format!(
            "a {} may be at most {} (--media-max-bytes {}={}), this one is {size} bytes: send a smaller file or raise the cap",
            kind.name(),
            human(*cap),
            kind.name(),
            human(*cap)
        )));
    }
    Ok(())
}

/// Empties the temp files' folder (what a crash left) and makes sure it exists.
/// Blocking: startup only.
pub fn reset(root: &Path) -> std::io::Result<()> {
    let dir = root.join(STAGING_DIR);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    crate::store::create_private_dir(&dir)
}

/// A new temp file path under `root`'s temp folder (nothing is created).
pub fn scratch(root: &Path) -> TempFile {
    let name = hex::encode(rand::random::<[u8; 12]>());
    TempFile(root.join(STAGING_DIR).join(format!("{name}.part")))
}

/// Chunks on their way to the writing thread: with gRPC's 4 MiB message cap, at
/// most this many times that is held in memory.
const WRITE_AHEAD: usize = 2;

/// What the writing thread hears.
enum Piece {
    Bytes(Vec<u8>),
    /// Every byte came: end the file. A channel closed without it ends nothing.
    End,
}

/// Receives `chunks` into a temp file under `root`, written by `sealer` on a
/// blocking thread as they arrive: exactly the declared size, or INVALID_ARGUMENT
/// (more bytes are refused as soon as they come). An error of the stream ends it;
/// whatever ends it early, a cancel included, leaves no file.
pub async fn receive<S>(
    root: &Path,
    declared: &Declared,
    sealer: Box<dyn Sealer>,
    mut chunks: S,
) -> Result<Staged, SessionError>
where
    S: Stream<Item = Result<Vec<u8>, SessionError>> + Unpin,
{
    check_declared(declared)?;
    let dir = root.join(STAGING_DIR);
    let file = scratch(root);
    let _ = crate::store::create_private_dir(&dir);
    let out = tokio::fs::File::create(file.path()).await.map_err(unstored)?;
    let out = out.into_std().await;
    let (tx, rx) = mpsc::channel(WRITE_AHEAD);
    let writer = tokio::task::spawn_blocking(move || write_out(out, sealer, rx));
    let (mut size, mut head, mut stopped) = (0u64, Vec::new(), false);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        if size > declared.size {
            return Err(SessionError::InvalidArgument(format!(
                "the stream carries more than the declared info.size of {} bytes: declare the file's exact length",
                declared.size
            )));
        }
        if head.len() < 512 {
            head.extend_from_slice(&chunk[..chunk.len().min(512 - head.len())]);
        }
        if tx.send(Piece::Bytes(chunk)).await.is_err() {
            // The writer stopped on an error: its answer below says which.
            stopped = true;
            break;
        }
    }
    if !stopped && size != declared.size {
        return Err(SessionError::InvalidArgument(format!(
            "the stream ended after {size} of the declared {} bytes: nothing was uploaded; send the whole file",
            declared.size
        )));
    }
    let _ = tx.send(Piece::End).await;
    drop(tx);
    let sealed = writer
        .await
        .map_err(|e| unstored(std::io::Error::other(e)))?
        .map_err(unstored)?;
    Ok(Staged {
        file,
        size,
        sha256: hex::encode(sealed.sha256),
        mime: mime_of(&declared.mime, &head),
        seal: sealed.seal,
    })
}

fn unstored(e: std::io::Error) -> SessionError {
    SessionError::Unavailable(format!("the file could not be stored for upload ({e}): retry"))
}

/// The writing thread: each chunk through `sealer` into `out`, buffered; the file
/// ends only on [`Piece::End`].
fn write_out(
    out: std::fs::File,
    mut sealer: Box<dyn Sealer>,
    mut rx: mpsc::Receiver<Piece>,
) -> std::io::Result<Sealed> {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, out);
    while let Some(piece) = rx.blocking_recv() {
        match piece {
            Piece::Bytes(chunk) => sealer.write(&chunk, &mut out)?,
            Piece::End => {
                let sealed = sealer.finish(&mut out)?;
                out.flush()?;
                return Ok(sealed);
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::Interrupted,
        "the upload ended before its last byte",
    ))
}

/// Bytes the writing thread gathers before each write to the file.
const WRITE_BUFFER: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::seal::Plain;

    fn plain() -> Box<dyn Sealer> {
        Box::new(Plain::default())
    }

    fn declared(size: u64) -> Declared {
        Declared {
            kind: MediaKind::Document,
            mime: String::new(),
            size,
            cap: 1 << 20,
        }
    }

    fn chunks(parts: Vec<Result<Vec<u8>, SessionError>>) -> impl Stream<Item = Result<Vec<u8>, SessionError>> + Unpin {
        tokio_stream::iter(parts)
    }

    fn left(root: &Path) -> usize {
        std::fs::read_dir(root.join(STAGING_DIR))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn a_whole_file_is_hashed_and_sniffed_and_its_temp_file_goes_with_it() {
        let root = tempfile_root("whole");
        let staged = receive(
            &root,
            &declared(12),
            plain(),
            chunks(vec![Ok(b"%PDF-1".to_vec()), Ok(b".7\nabc".to_vec())]),
        )
        .await
        .unwrap();
        assert_eq!(staged.size, 12);
        assert_eq!(staged.mime, "application/pdf");
        assert_eq!(std::fs::read(staged.file.path()).unwrap(), b"%PDF-1.7\nabc");
        assert_eq!(staged.sha256.len(), 64);
        drop(staged);
        assert_eq!(left(&root), 0);
    }

    #[tokio::test]
    async fn too_many_too_few_or_a_broken_stream_leave_nothing() {
        let root = tempfile_root("broken");
        let more = receive(&root, &declared(3), plain(), chunks(vec![Ok(b"abcd".to_vec())])).await;
        assert!(matches!(more, Err(SessionError::InvalidArgument(m)) if m.contains("more than")));
        let fewer = receive(&root, &declared(9), plain(), chunks(vec![Ok(b"abcd".to_vec())])).await;
        assert!(matches!(fewer, Err(SessionError::InvalidArgument(m)) if m.contains("ended after 4")));
        let cut = receive(
            &root,
            &declared(9),
            plain(),
            chunks(vec![Ok(b"ab".to_vec()), Err(SessionError::Unavailable("gone".into()))]),
        )
        .await;
        assert!(cut.is_err());
        let big = receive(&root, &declared(2 << 20), plain(), chunks(vec![])).await;
        assert!(matches!(big, Err(SessionError::OutOfRange(m)) if m.contains("document=1MiB")));
        assert_eq!(left(&root), 0);
    }

    fn tempfile_root(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("wa-staging-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        root
    }
}
