//! The real WhatsApp backend, on whatsapp-rust: one SQLite credential store per
//! session (`<data-dir>/sessions/<id>/whatsapp.db`), one client per connection with
//! auto-reconnect off (the session actor decides every reconnect, including the 515
//! after pairing), and the library's events translated into `BackendEvent`s.

mod client;
mod connection;
pub mod events;
mod pairing;
mod reach;
mod runtime;
mod store;

use tracing::info_span;

use self::{connection::WhatsappConnection, store::CredentialFiles};
use super::{Backend, BackendError, BoxFuture, Connection, EventSink};
use crate::{session::SessionId, store::DataDir};

/// The WhatsApp Web version announced when none is configured. Pinned, so starting a
/// connection never depends on fetching `web.whatsapp.com/sw.js`.
pub const DEFAULT_WA_VERSION: (u32, u32, u32) = (2, 3000, 1_042_742_319);

/// The real WhatsApp; cheap to clone.
#[derive(Debug, Clone)]
pub struct WhatsappBackend {
    /// Where each session's store lives.
    data: DataDir,
    /// The WhatsApp Web version the clients announce.
    version: (u32, u32, u32),
}

impl WhatsappBackend {
    /// A backend keeping stores under `data`, announcing `version`.
    pub fn new(data: DataDir, version: (u32, u32, u32)) -> Self {
        Self { data, version }
    }

    fn files(&self, session: &SessionId) -> CredentialFiles {
        CredentialFiles::new(&self.data, session)
    }
}

impl Backend for WhatsappBackend {
    fn name(&self) -> &'static str {
        "whatsapp"
    }

    fn has_credentials(&self, session: &SessionId) -> bool {
        self.files(session).is_linked()
    }

    fn connect(&self, session: &SessionId, sink: EventSink) -> Box<dyn Connection> {
        let span = info_span!("whatsapp", session_id = %session);
        Box::new(WhatsappConnection::start(self.files(session), self.version, span, sink))
    }

    fn wipe(&self, session: &SessionId) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(pairing::wipe(self.files(session)))
    }

    fn logout_stored(&self, session: &SessionId) -> BoxFuture<'static, Result<(), BackendError>> {
        use tracing::Instrument;
        let span = info_span!("whatsapp", session_id = %session);
        Box::pin(pairing::logout_stored(self.files(session), self.version).instrument(span))
    }
}
