//! Media on the real backend against the fake WhatsApp's CDN: the bodies of
//! `tests/media` (run there on the emulator) run here as `media::real::NAME`, the
//! unmodified whatsapp-rust client encrypting, uploading, downloading and asking
//! the fake's phone for re-uploads.

#[path = "../media/bodies.rs"]
mod bodies;
#[path = "../media/world.rs"]
mod world;

use super::common;

mod real {
    use std::{path::Path, time::Duration};

    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;

    use fake_whatsapp::proto::{
        self as fake, CountMediaRequestsRequest, ExpireMediaRequest, ListReceivedMessagesRequest, SendMediaRequest,
    };
    use tempfile::TempDir;
    use wa_sessiond::proto::{upload_media_request::Part, EmulatedMedia, MediaKind, UploadMediaRequest};

    use super::{
        bodies::run_on,
        common::{
            fake::{pair, Fake},
            wait_for, Daemon,
        },
        world::{self, Received, World},
    };

    /// The account the session links.
    const OWNER: &str = "15550007777";

    /// A daemon on the real backend wired to a fake, session `alice` CONNECTED.
    pub struct Real {
        daemon: Daemon,
        fake: Fake,
        dir: TempDir,
    }

    impl Real {
        pub async fn start() -> Self {
            let fake = Fake::start().await;
            let dir = tempfile::tempdir().unwrap();
            let wire = fake.wire();
            let daemon = Daemon::start(dir.path(), |config| {
                wire(config);
                // The offline phone's silence, heard sooner than the default 30 s.
                config.media.media_reupload_timeout = Duration::from_secs(3);
            })
            .await;
            pair(&daemon, &fake, "alice", OWNER).await;
            Self { daemon, fake, dir }
        }
    }

    fn mime_of(kind: MediaKind) -> &'static str {
        match kind {
            MediaKind::Image => "image/jpeg",
            MediaKind::Video => "video/mp4",
            MediaKind::Audio => "audio/ogg; codecs=opus",
            MediaKind::Sticker => "image/webp",
            MediaKind::Document | MediaKind::Unspecified => "application/octet-stream",
        }
    }

    #[tonic::async_trait]
    impl World for Real {
        fn daemon(&self) -> &Daemon {
            &self.daemon
        }

        fn data_dir(&self) -> &Path {
            self.dir.path()
        }

        async fn at_server(&self) -> (Vec<Received>, u64, u64) {
            let mut control = self.fake.control.clone();
            let listed = control
                .list_received_messages(ListReceivedMessagesRequest {})
                .await
                .unwrap()
                .into_inner();
            let media = listed
                .messages
                .into_iter()
                .filter(|m| m.kind == fake::MessageKind::Media as i32 && m.from_jid.starts_with(OWNER))
                .filter_map(|m| {
                    let file = m.media?;
                    Some(Received {
                        to: m.to,
                        media: EmulatedMedia {
                            kind: file.kind,
                            mime: file.mime,
                            size: file.size,
                            sha256: file.sha256,
                            caption: file.caption,
                            file_name: file.file_name,
                            voice_note: file.voice_note,
                            duration_seconds: file.duration_seconds,
                        },
                    })
                })
                .collect();
            let counts = control
                .count_media_requests(CountMediaRequestsRequest {})
                .await
                .unwrap()
                .into_inner();
            (media, counts.uploads, counts.reupload_requests)
        }

        async fn deliver_media(&self, from: &str, kind: MediaKind, data: Vec<u8>, caption: &str) -> String {
            let request = SendMediaRequest {
                to_phone_number: OWNER.into(),
                from_phone_number: from.into(),
                kind: kind as i32,
                mime: mime_of(kind).into(),
                data,
                caption: caption.into(),
                ..Default::default()
            };
            let mut control = self.fake.control.clone();
            control.send_media(request).await.unwrap().into_inner().message_id
        }

        async fn expire_media(&self, message_id: &str, online: bool) {
            let request = ExpireMediaRequest {
                message_id: message_id.into(),
                direct_path: String::new(),
                phone_online: online,
            };
            self.fake.control.clone().expire_media(request).await.unwrap();
        }
    }

    run_on!(Real::start());

    /// The files under `media-tmp/`, with their bytes.
    fn temp_contents(dir: &Path) -> Vec<Vec<u8>> {
        std::fs::read_dir(dir.join("media-tmp")).map_or_else(
            |_| Vec::new(),
            |entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .collect()
            },
        )
    }

    /// The real backend encrypts an upload as it arrives: held open midway, the
    /// stream's temp file holds ciphertext only (no trace of the plaintext's
    /// marker), and the finished upload still names the plaintext's sha256.
    #[tokio::test]
    async fn only_ciphertext_reaches_the_temp_file_while_an_upload_streams_in() {
        let world = Real::start().await;
        let marker = b"PLAINTEXT-MARKER-0123456789";
        let chunk: Vec<u8> = marker.iter().copied().cycle().take(64 * 1024).collect();
        let (chunks, total) = (32usize, 32u64 * 64 * 1024);
        let (tx, rx) = mpsc::channel(4);
        tx.send(world::info(
            world.session(),
            MediaKind::Document,
            "application/octet-stream",
            total,
        ))
        .await
        .unwrap();
        let mut client = world.sessions().await;
        let call = tokio::spawn(async move { client.upload_media(ReceiverStream::new(rx)).await });
        let part = || UploadMediaRequest {
            part: Some(Part::Chunk(chunk.clone())),
        };
        for _ in 0..chunks / 2 {
            tx.send(part()).await.unwrap();
        }
        let midway = wait_for(Duration::from_secs(20), "half the file in media-tmp", || async {
            let files = temp_contents(world.data_dir());
            (files.iter().map(Vec::len).sum::<usize>() >= 512 * 1024).then_some(files)
        })
        .await;
        assert_eq!(midway.len(), 1, "one temp file per upload");
        assert!(
            !midway[0].windows(marker.len()).any(|w| w == marker),
            "the temp file holds plaintext"
        );
        for _ in chunks / 2..chunks {
            tx.send(part()).await.unwrap();
        }
        drop(tx);
        let handle = call.await.unwrap().expect("uploaded").into_inner();
        let whole: Vec<u8> = (0..chunks).flat_map(|_| chunk.iter().copied()).collect();
        assert_eq!(handle.size, total);
        assert_eq!(
            handle.sha256,
            world::sha(&whole),
            "the handle names the plaintext's sha256"
        );
        wait_for(Duration::from_secs(10), "the temp file gone", || async {
            (world::temp_files(&world) == 0).then_some(())
        })
        .await;
    }
}
