//! A session's backend connections: opening one to pair (a new QR generation, its
//! first code due within a bound) or to resume with stored credentials, and closing
//! the live one. Events from a connection come back tagged with its `ConnId`.

use std::{sync::Arc, time::Duration, time::SystemTime};

use tracing::info;

use super::{SessionMsg, SessionRun};
use crate::{backend::EventSink, domain::Status, events::Inbox, session::state::ConnId};

impl SessionRun {
    /// Starts a pairing connection (closing any other first): a new generation.
    pub(super) async fn open_pairing(&mut self, timeout: Duration) {
        self.close_conn().await;
        let (now, sys) = Self::now();
        let conn = self.state.open_pairing(now, sys, timeout);
        self.timers.first_qr(timeout, conn);
        let generation = self.state.generation();
        self.ctx.metrics.pairing_connection_started(generation);
        info!(session_id = %self.state.view().id, conn, generation, "pairing connection started");
        self.connect(conn);
    }

    /// Starts a connection with stored credentials.
    pub(super) fn open_resume(&mut self, status: Status) {
        let conn = self.state.open_resume(status, SystemTime::now());
        info!(session_id = %self.state.view().id, conn, "connecting with stored credentials");
        self.connect(conn);
    }

    fn connect(&mut self, conn: ConnId) {
        let myself = self.myself.clone();
        let sink: EventSink = Arc::new(move |event| {
            let _ = myself.cast(SessionMsg::Backend { conn, event });
        });
        let id = &self.state.view().id;
        let inbox = Inbox::new(self.ctx.log.clone(), id.as_str());
        self.conn = Some(self.ctx.backend.connect(id, sink, inbox));
    }

    /// Closes the live connection (without logging out) and waits for it.
    pub(super) async fn close_conn(&mut self) {
        self.state.detach_conn();
        if let Some(conn) = self.conn.take() {
            conn.close().await;
        }
    }
}
