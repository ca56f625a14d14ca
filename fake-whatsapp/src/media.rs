//! Media on the phones' side: a phone sends a file as WhatsApp's phones do
//! (wacore's media encryption with a fresh key, the ciphertext put on the
//! fake's CDN, an image/video/audio/document/sticker message pointing at it);
//! it remembers what it sent, so that after the CDN's copy expired it can
//! answer a device's re-upload request (`<receipt type="server-error">`) with a
//! new upload and a `mediaretry` notification, if it is online; and it opens
//! what devices send it (downloaded from the CDN and decrypted) for
//! `ListReceivedMessages`.

use std::collections::HashMap;

use base64::{prelude::BASE64_URL_SAFE_NO_PAD, Engine as _};
use buffa::{Message as _, MessageField};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::sync::{Mutex, MutexGuard};
use wacore::{
    download::{DownloadUtils, Downloadable, MediaType},
    media_retry::decrypt_media_retry_notification,
    proto_helpers::MessageExt as _,
};
use wacore_binary::{builder::NodeBuilder, Node};
use waproto::whatsapp as wa;

use crate::{
    cdn::Cdn,
    proto::{MediaKind, ReceivedMedia, SendMediaRequest},
    stanza::{self, attr, content_bytes},
    vocab::Refusal,
};

/// What the phone that sent a file remembers of it.
#[derive(Debug, Clone)]
struct Sent {
    /// Where the CDN holds it now.
    direct_path: String,
    /// The media key (the message carries it too).
    media_key: [u8; 32],
    /// The chat the device sees it in (the sending phone's JID).
    chat: String,
    /// Whether the phone answers re-upload requests.
    online: bool,
}

/// The files the fake's phones sent, by message id.
#[derive(Debug, Default)]
pub struct Phones {
    sent: Mutex<HashMap<String, Sent>>,
}

impl Phones {
    async fn sent(&self) -> MutexGuard<'_, HashMap<String, Sent>> {
        self.sent.lock().await
    }

    /// Encrypts `request.data` for a new message, puts it on `cdn` and builds the
    /// message; remembers it under `message_id`. Returns the message and the
    /// file's direct path.
    pub async fn seal(
        &self,
        cdn: &Cdn,
        message_id: &str,
        request: &SendMediaRequest,
    ) -> Result<(wa::Message, String), Refusal> {
        let kind = MediaKind::try_from(request.kind).unwrap_or(MediaKind::Unspecified);
        let media_type = media_type(kind)?;
        if request.data.is_empty() {
            return Err(Refusal::Invalid("media needs data (the file's bytes)".into()));
        }
        if request.mime.is_empty() {
            return Err(Refusal::Invalid("media needs a mime type".into()));
        }
        let encrypted = wacore::upload::encrypt_media(&request.data, media_type)
            .map_err(|e| Refusal::Invalid(format!("could not encrypt the file: {e}")))?;
        let token = BASE64_URL_SAFE_NO_PAD.encode(encrypted.file_enc_sha256);
        let (url, direct_path) = cdn.put(Bytes::from(encrypted.data_to_upload), token).await;
        let file = File {
            url: Some(url),
            direct_path: Some(direct_path.clone()),
            media_key: Some(encrypted.media_key.to_vec()),
            file_sha256: Some(encrypted.file_sha256.to_vec()),
            file_enc_sha256: Some(encrypted.file_enc_sha256.to_vec()),
            file_length: Some(request.data.len() as u64),
            media_key_timestamp: Some(i64::try_from(stanza::now()).unwrap_or(i64::MAX)),
            mimetype: Some(request.mime.clone()),
            sidecar: encrypted.streaming_sidecar,
        };
        let message = message(kind, file, request);
        let sent = Sent {
            direct_path: direct_path.clone(),
            media_key: encrypted.media_key,
            chat: format!("{}@s.whatsapp.net", request.from_phone_number),
            online: true,
        };
        self.sent().await.insert(message_id.to_owned(), sent);
        Ok((message, direct_path))
    }

    /// Expires a file on `cdn`, by the message a phone sent it in or by its
    /// direct path; a phone that sent it answers re-upload requests only if
    /// `online`. Returns the direct path.
    pub async fn expire(
        &self,
        cdn: &Cdn,
        message_id: &str,
        direct_path: &str,
        online: bool,
    ) -> Result<String, Refusal> {
        let path = if message_id.is_empty() {
            direct_path.to_owned()
        } else {
            let mut sent = self.sent().await;
            let record = sent
                .get_mut(message_id)
                .ok_or_else(|| Refusal::NotFound(format!("no phone sent media in message {message_id}")))?;
            record.online = online;
            record.direct_path.clone()
        };
        if path.is_empty() {
            return Err(Refusal::Invalid("a message_id or a direct_path is required".into()));
        }
        if !cdn.expire(&path).await {
            return Err(Refusal::NotFound(format!("the cdn holds no file at {path}")));
        }
        Ok(path)
    }

    /// A device asks for a re-upload (`receipt`, a `server-error` receipt): if
    /// the phone that sent the message is online, it uploads the file again and
    /// the `mediaretry` notification telling the device the new direct path is
    /// returned; `None` when nobody answers.
    pub async fn reupload(&self, cdn: &Cdn, receipt: &Node) -> Option<Node> {
        cdn.count_reupload_request().await;
        let id = attr(receipt, "id")?;
        let record = self.sent().await.get(&id).cloned()?;
        if !record.online {
            tracing::info!(%id, "a re-upload request to an offline phone; unanswered");
            return None;
        }
        // The request is sealed with the media key: only the device that holds the
        // message can ask.
        let encrypt = receipt.get_optional_child("encrypt")?;
        let enc_p = encrypt.get_optional_child("enc_p").and_then(content_bytes)?;
        let enc_iv = encrypt.get_optional_child("enc_iv").and_then(content_bytes)?;
        if let Err(why) = decrypt_media_retry_notification(&record.media_key, &id, enc_iv, enc_p) {
            tracing::warn!(%id, %why, "a re-upload request that does not open with the media key");
            return None;
        }
        let blob = cdn.get(&record.direct_path).await?;
        let (_, direct_path) = cdn.put(blob.data, blob.token).await;
        if let Some(sent) = self.sent().await.get_mut(&id) {
            sent.direct_path.clone_from(&direct_path);
        }
        tracing::info!(%id, %direct_path, "the phone uploaded the file again");
        retry_notification(&id, &record, &direct_path).ok()
    }
}

/// `<notification type="mediaretry" id from t><encrypt><enc_p/><enc_iv/></encrypt>
/// <rmr jid from_me="false"/></notification>`: a `MediaRetryNotification`
/// (SUCCESS, the new direct path) sealed as the client opens it (wacore's
/// media-retry key, AES-GCM with the message id as associated data).
fn retry_notification(id: &str, record: &Sent, direct_path: &str) -> Result<Node, String> {
    let notification = wa::MediaRetryNotification {
        stanza_id: Some(id.to_owned()),
        direct_path: Some(direct_path.to_owned()),
        result: Some(wa::media_retry_notification::ResultType::SUCCESS),
        ..Default::default()
    };
    let mut key = [0u8; 32];
    wacore::crypto::hkdf_sha256_into(&record.media_key, None, b"WhatsApp Media Retry Notification", &mut key)
        .map_err(|e| format!("hkdf: {e:?}"))?;
    let iv: [u8; 12] = rand::random();
    let mut sealed = Vec::new();
    wacore_libsignal::crypto::aes_256_gcm_encrypt(&key, &iv, id.as_bytes(), &notification.encode_to_vec(), &mut sealed)
        .map_err(|e| format!("aes-gcm: {e:?}"))?;
    let encrypt = NodeBuilder::new("encrypt")
        .children([
            NodeBuilder::new("enc_p").bytes(sealed).build(),
            NodeBuilder::new("enc_iv").bytes(iv.to_vec()).build(),
        ])
        .build();
    let rmr = NodeBuilder::new("rmr")
        .attr("jid", record.chat.clone())
        .attr("from_me", "false")
        .build();
    Ok(NodeBuilder::new("notification")
        .attr("type", "mediaretry")
        .attr("id", id.to_owned())
        .attr("from", record.chat.clone())
        .attr("t", stanza::now().to_string())
        .children([encrypt, rmr])
        .build())
}

/// The CDN fields every media message carries.
struct File {
    url: Option<String>,
    direct_path: Option<String>,
    media_key: Option<Vec<u8>>,
    file_sha256: Option<Vec<u8>>,
    file_enc_sha256: Option<Vec<u8>>,
    file_length: Option<u64>,
    media_key_timestamp: Option<i64>,
    mimetype: Option<String>,
    sidecar: Option<Vec<u8>>,
}

/// wacore's media type of a kind.
fn media_type(kind: MediaKind) -> Result<MediaType, Refusal> {
    Ok(match kind {
        MediaKind::Image => MediaType::Image,
        MediaKind::Video => MediaType::Video,
        MediaKind::Audio => MediaType::Audio,
        MediaKind::Document => MediaType::Document,
        MediaKind::Sticker => MediaType::Sticker,
        MediaKind::Unspecified => {
            return Err(Refusal::Invalid(
                "a media kind is required: image, video, audio, document or sticker".into(),
            ))
        }
    })
}

fn some_text(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// The message for `file` of `kind`.
fn message(kind: MediaKind, f: File, r: &SendMediaRequest) -> wa::Message {
    use wa::message::{AudioMessage, DocumentMessage, ImageMessage, StickerMessage, VideoMessage};
    let caption = some_text(&r.caption);
    let seconds = (r.duration_seconds > 0).then_some(r.duration_seconds);
    let mut message = wa::Message::default();
    macro_rules! file {
        ($ty:ident { $($field:ident : $value:expr),* $(,)? }) => {
            $ty {
                url: f.url, direct_path: f.direct_path, media_key: f.media_key,
                file_sha256: f.file_sha256, file_enc_sha256: f.file_enc_sha256,
                file_length: f.file_length, media_key_timestamp: f.media_key_timestamp,
                mimetype: f.mimetype, $($field: $value,)* ..Default::default()
            }
        };
    }
    match kind {
        MediaKind::Image | MediaKind::Unspecified => {
            message.image_message = MessageField::some(file!(ImageMessage { caption: caption }));
        }
        MediaKind::Video => {
            let video = file!(VideoMessage {
                caption: caption,
                seconds: seconds,
                streaming_sidecar: f.sidecar
            });
            message.video_message = MessageField::some(video);
        }
        MediaKind::Audio => {
            let ptt = Some(r.voice_note);
            let audio = file!(AudioMessage {
                seconds: seconds,
                ptt: ptt,
                streaming_sidecar: f.sidecar
            });
            message.audio_message = MessageField::some(audio);
        }
        MediaKind::Document => {
            let name = some_text(&r.file_name);
            message.document_message = MessageField::some(file!(DocumentMessage {
                caption: caption,
                file_name: name
            }));
        }
        MediaKind::Sticker => message.sticker_message = MessageField::some(file!(StickerMessage {})),
    }
    message
}

/// The media a device sent in `message`, opened as the recipient's phone opens
/// it: downloaded from `cdn` and decrypted. `None` when it carries no media.
pub async fn received(cdn: &Cdn, message: &wa::Message) -> Option<ReceivedMedia> {
    let m = message.get_base_message();
    let (kind, file, mut shown): (MediaKind, &dyn Downloadable, ReceivedMedia) =
        if let Some(image) = m.image_message.as_option() {
            let shown = listed(image.mimetype.as_ref(), image.caption.as_ref(), None, None, None);
            (MediaKind::Image, image, shown)
        } else if let Some(video) = m.video_message.as_option() {
            let shown = listed(
                video.mimetype.as_ref(),
                video.caption.as_ref(),
                None,
                None,
                video.seconds,
            );
            (MediaKind::Video, video, shown)
        } else if let Some(audio) = m.audio_message.as_option() {
            let shown = listed(audio.mimetype.as_ref(), None, None, audio.ptt, audio.seconds);
            (MediaKind::Audio, audio, shown)
        } else if let Some(doc) = m.document_message.as_option() {
            let shown = listed(
                doc.mimetype.as_ref(),
                doc.caption.as_ref(),
                doc.file_name.as_ref(),
                None,
                None,
            );
            (MediaKind::Document, doc, shown)
        } else if let Some(sticker) = m.sticker_message.as_option() {
            (
                MediaKind::Sticker,
                sticker,
                listed(sticker.mimetype.as_ref(), None, None, None, None),
            )
        } else {
            return None;
        };
    shown.kind = kind.into();
    shown.direct_path = file.direct_path().unwrap_or_default().to_owned();
    match open(cdn, file).await {
        Ok((size, sha256)) => {
            shown.size = size as u64;
            shown.sha256 = sha256;
        }
        Err(why) => {
            tracing::warn!(direct_path = %shown.direct_path, %why, "could not open a device's media");
            shown.error = why;
        }
    }
    Some(shown)
}

fn listed(
    mime: Option<&String>,
    caption: Option<&String>,
    file_name: Option<&String>,
    ptt: Option<bool>,
    seconds: Option<u32>,
) -> ReceivedMedia {
    ReceivedMedia {
        mime: mime.cloned().unwrap_or_default(),
        caption: caption.cloned().unwrap_or_default(),
        file_name: file_name.cloned().unwrap_or_default(),
        voice_note: ptt.unwrap_or(false),
        duration_seconds: seconds.unwrap_or(0),
        ..Default::default()
    }
}

/// The size and SHA-256 (hex) of `file`'s plaintext, from the CDN, its MAC and
/// hashes checked.
async fn open(cdn: &Cdn, file: &dyn Downloadable) -> Result<(usize, String), String> {
    let path = file.direct_path().ok_or("no direct path")?;
    let blob = cdn
        .get(path)
        .await
        .ok_or_else(|| format!("the cdn holds no file at {path}"))?;
    if file.file_enc_sha256().map(|hash| BASE64_URL_SAFE_NO_PAD.encode(hash)) != Some(blob.token.clone()) {
        return Err("the message's file_enc_sha256 is not the stored file's".into());
    }
    let key = file.media_key().ok_or("no media key")?.to_vec();
    let (media_type, expected) = (file.app_info(), file.file_sha256().map(<[u8]>::to_vec));
    // Decrypting and hashing a large file is CPU work: off the connection's task.
    let opened = tokio::task::spawn_blocking(move || {
        let plain = DownloadUtils::verify_and_decrypt(&blob.data, &key, media_type).map_err(|e| e.to_string())?;
        let sha256 = Sha256::digest(&plain);
        if expected.is_some_and(|hash| hash != sha256.as_slice()) {
            return Err("the plaintext's sha256 is not the message's file_sha256".to_owned());
        }
        Ok((plain.len(), hex::encode(sha256)))
    });
    opened.await.map_err(|e| format!("the decryption task failed: {e}"))?
}
