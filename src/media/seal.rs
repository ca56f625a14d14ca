//! How a streamed-in file's bytes reach its temp file as they arrive: as they are
//! ([`Plain`], the default, hashing them on the way), or sealed by a backend (the
//! real one encrypts them for WhatsApp's CDN, so no plaintext reaches the disk). A
//! [`Sealer`] runs on a blocking thread, one chunk at a time: memory stays flat.

use std::{any::Any, fmt, io::Write};

use sha2::{Digest, Sha256};

/// Writes a file's bytes as they arrive, in the form its backend uploads.
pub trait Sealer: Send + 'static {
    /// Writes the next bytes of the file to `out`.
    fn write(&mut self, chunk: &[u8], out: &mut dyn Write) -> std::io::Result<()>;

    /// Writes what ends the file to `out`; answers the plaintext's sha256 and what
    /// the backend needs to upload what was written.
    fn finish(self: Box<Self>, out: &mut dyn Write) -> std::io::Result<Sealed>;
}

/// A file written whole.
#[derive(Debug)]
pub struct Sealed {
    /// The plaintext's sha256.
    pub sha256: [u8; 32],
    /// What the backend keeps of the sealing (its keys and hashes), if it sealed.
    pub seal: Option<Seal>,
}

/// A backend's own record of how it sealed a file, opaque to the daemon's core.
pub struct Seal(pub Box<dyn Any + Send>);

/// Never the keys inside.
impl fmt::Debug for Seal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seal(..)")
    }
}

/// Keeps the bytes as they are.
#[derive(Default)]
pub struct Plain(Sha256);

impl Sealer for Plain {
    fn write(&mut self, chunk: &[u8], out: &mut dyn Write) -> std::io::Result<()> {
        self.0.update(chunk);
        out.write_all(chunk)
    }

    fn finish(self: Box<Self>, _out: &mut dyn Write) -> std::io::Result<Sealed> {
        Ok(Sealed {
            sha256: self.0.finalize().into(),
            seal: None,
        })
    }
}
