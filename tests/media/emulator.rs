//! The bodies on the emulator: a daemon with the emulator backend and one paired
//! session, steered through `EmulatorService`.

use std::path::Path;

use wa_sessiond::proto::{
    DeliverMediaRequest, EmulatedKind, ExpireMediaRequest, ListSentMessagesRequest, MediaKind, SessionStatus,
};

use super::{
    bodies::run_on,
    common::*,
    world::{Received, World},
};

/// A daemon on the emulator, its data dir, and session `alice` CONNECTED.
pub struct Emulated {
    daemon: Daemon,
    dir: tempfile::TempDir,
    /// The config change, again for a restart.
    tweak: Tweak,
}

impl Emulated {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// With the test config changed by `tweak` (again at each restart).
    pub async fn start_with(tweak: Tweak) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let daemon = Daemon::start(dir.path(), tweak).await;
        paired(&daemon, "alice").await;
        Self { daemon, dir, tweak }
    }

    /// The daemon stopped and started again on the same data dir, `alice`
    /// CONNECTED again from her stored credentials.
    pub async fn restart(self) -> Self {
        let Self { daemon, dir, tweak } = self;
        daemon.stop().await;
        let daemon = Daemon::start(dir.path(), tweak).await;
        let mut client = daemon.sessions().await;
        wait_session(&mut client, "alice", "CONNECTED", |s| {
            status(s) == SessionStatus::Connected
        })
        .await;
        Self { daemon, dir, tweak }
    }
}

/// How the daemon's config is changed.
type Tweak = fn(&mut wa_sessiond::config::Config);

#[tonic::async_trait]
impl World for Emulated {
    fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    async fn at_server(&self) -> (Vec<Received>, u64, u64) {
        let request = ListSentMessagesRequest {
            session_id: "alice".into(),
        };
        let sent = self
            .daemon
            .phone()
            .await
            .list_sent_messages(request)
            .await
            .unwrap()
            .into_inner();
        let media = sent
            .messages
            .into_iter()
            .filter(|m| m.kind == EmulatedKind::Media as i32)
            .map(|m| Received {
                to: m.to,
                media: m.media.expect("a media message's file"),
            })
            .collect();
        (media, sent.media_uploads, sent.media_reuploads)
    }

    async fn deliver_media(&self, from: &str, kind: MediaKind, data: Vec<u8>, caption: &str) -> String {
        let request = DeliverMediaRequest {
            session_id: "alice".into(),
            from: from.into(),
            kind: kind as i32,
            mime: String::new(),
            data,
            caption: caption.into(),
            file_name: String::new(),
        };
        self.daemon
            .phone()
            .await
            .deliver_media(request)
            .await
            .unwrap()
            .into_inner()
            .message_id
    }

    async fn expire_media(&self, message_id: &str, online: bool) {
        let request = ExpireMediaRequest {
            session_id: "alice".into(),
            message_id: message_id.into(),
            phone_online: online,
        };
        self.daemon.phone().await.expire_media(request).await.unwrap();
    }
}

run_on!(Emulated::start());
