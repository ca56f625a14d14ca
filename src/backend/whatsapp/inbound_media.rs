//! The download descriptor of a received media message, for the real backend: the
//! CDN path, media key and hashes whatsapp-rust needs to download it again later
//! (`DownloadParams::encrypted`). Kept server-side by the daemon, never in events.

use base64::{engine::general_purpose::STANDARD, Engine};
use whatsapp_rust::{proto_helpers::MessageExt, waproto::whatsapp as wa};

use crate::{backend::MediaBlob, media::MediaKind};

/// The descriptor of `message`'s file; None without one (or without a key).
pub fn descriptor(message: &wa::Message) -> Option<MediaBlob> {
    let base = message.get_base_message();
    macro_rules! blob {
        ($kind:expr, $m:expr) => {{
            let m = $m;
            Some(MediaBlob {
                kind: $kind,
                mime: m.mimetype.clone().unwrap_or_default(),
                size: m.file_length.unwrap_or_default(),
                sha256: hex::encode(m.file_sha256.as_deref().unwrap_or_default()),
                direct_path: m.direct_path.clone()?,
                url: m.url.clone().unwrap_or_default(),
                media_key: STANDARD.encode(m.media_key.as_deref()?),
                enc_sha256: STANDARD.encode(m.file_enc_sha256.as_deref().unwrap_or_default()),
                key_timestamp: m.media_key_timestamp.unwrap_or_default(),
                sidecar: String::new(),
            })
        }};
    }
    if let Some(m) = base.image_message.as_option() {
        return blob!(MediaKind::Image, m);
    }
    if let Some(m) = base.video_message.as_option().or(base.ptv_message.as_option()) {
        return blob!(MediaKind::Video, m);
    }
    if let Some(m) = base.audio_message.as_option() {
        return blob!(MediaKind::Audio, m);
    }
    if let Some(m) = base.document_message.as_option() {
        return blob!(MediaKind::Document, m);
    }
    if let Some(m) = base.sticker_message.as_option() {
        return blob!(MediaKind::Sticker, m);
    }
    None
}

#[cfg(test)]
mod tests {
    use whatsapp_rust::buffa::MessageField;

    use super::*;

    #[test]
    fn an_image_with_its_key_keeps_a_descriptor_and_one_without_keeps_none() {
        let image = wa::message::ImageMessage {
            direct_path: Some("/v/t62/abc".into()),
            media_key: Some(vec![7; 32]),
            file_sha256: Some(vec![0, 0xff]),
            file_enc_sha256: Some(vec![9; 32]),
            file_length: Some(12_345),
            mimetype: Some("image/jpeg".into()),
            media_key_timestamp: Some(1_700_000_000),
            ..Default::default()
        };
        let message = wa::Message {
            image_message: MessageField::some(image.clone()),
            ..Default::default()
        };
        let blob = descriptor(&message).expect("a descriptor");
        assert_eq!(blob.kind, MediaKind::Image);
        assert_eq!(blob.direct_path, "/v/t62/abc");
        assert_eq!(blob.sha256, "00ff");
        assert_eq!(blob.size, 12_345);
        assert_eq!(STANDARD.decode(&blob.media_key).unwrap(), vec![7; 32]);
        assert!(
            !format!("{blob:?}").contains(&blob.media_key),
            "the key stays out of logs"
        );

        let keyless = wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                media_key: None,
                ..image
            }),
            ..Default::default()
        };
        assert!(descriptor(&keyless).is_none());
        assert!(descriptor(&wa::Message::default()).is_none());
    }
}
