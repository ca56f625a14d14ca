//! A media message for the real backend: the handle's upload descriptor (CDN path,
//! media key, hashes) and the caller's caption, file name, voice-note flag,
//! duration, waveform and thumbnail, in the message WhatsApp expects for each kind
//! (the fields of whatsapp-rust's `media::*_message` builders, whose
//! `UploadResponse` cannot be rebuilt from a stored descriptor).

use base64::{engine::general_purpose::STANDARD, Engine};
use whatsapp_rust::{
    buffa::MessageField,
    waproto::whatsapp::{
        self as wa,
        message::{AudioMessage, DocumentMessage, ImageMessage, StickerMessage, VideoMessage},
    },
};

use crate::{
    backend::{BackendError, MediaBlob, MediaMessage},
    media::MediaKind,
};

/// The upload descriptor's binary fields, decoded.
struct Keys {
    media_key: Vec<u8>,
    file_sha256: Vec<u8>,
    file_enc_sha256: Vec<u8>,
}

fn keys(blob: &MediaBlob) -> Result<Keys, BackendError> {
    let bad = |what: &str| {
        BackendError::Refused(format!(
            "the media handle's {what} is unreadable: upload the file again"
        ))
    };
    let file_sha256 = hex::decode(&blob.sha256).map_err(|_| bad("sha256"))?;
    Ok(Keys {
        media_key: STANDARD.decode(&blob.media_key).map_err(|_| bad("media key"))?,
        file_sha256,
        file_enc_sha256: STANDARD.decode(&blob.enc_sha256).map_err(|_| bad("encrypted hash"))?,
    })
}

/// The message that sends `media`, quoting with `context` when it is a reply.
pub fn message(media: &MediaMessage, context: Option<wa::ContextInfo>) -> Result<wa::Message, BackendError> {
    let blob = &media.blob;
    let k = keys(blob)?;
    let context = context.map(MessageField::some).unwrap_or_default();
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let bytes = |b: &[u8]| (!b.is_empty()).then(|| b.to_vec());
    let seconds = (media.duration_seconds > 0).then_some(media.duration_seconds);
    let sidecar = STANDARD.decode(&blob.sidecar).ok().filter(|s| !s.is_empty());
    macro_rules! cdn {
        ($kind:ident { $($field:ident: $value:expr),* $(,)? }) => {
            $kind {
                url: text(&blob.url),
                direct_path: Some(blob.direct_path.clone()),
                media_key: Some(k.media_key.clone()),
                file_sha256: Some(k.file_sha256.clone()),
                file_enc_sha256: Some(k.file_enc_sha256.clone()),
                file_length: Some(blob.size),
                media_key_timestamp: Some(blob.key_timestamp),
                mimetype: Some(blob.mime.clone()),
                context_info: context,
                $($field: $value,)*
                ..Default::default()
            }
        };
    }
    let mut message = wa::Message::default();
    match blob.kind {
        MediaKind::Image => {
            message.image_message = MessageField::some(cdn!(ImageMessage {
                caption: text(&media.caption),
                jpeg_thumbnail: bytes(&media.jpeg_thumbnail),
            }))
        }
        MediaKind::Video => {
            message.video_message = MessageField::some(cdn!(VideoMessage {
                caption: text(&media.caption),
                jpeg_thumbnail: bytes(&media.jpeg_thumbnail),
                seconds: seconds,
                streaming_sidecar: sidecar,
            }))
        }
        MediaKind::Audio => {
            message.audio_message = MessageField::some(cdn!(AudioMessage {
                seconds: seconds,
                ptt: Some(media.voice_note),
                waveform: bytes(&media.waveform),
                streaming_sidecar: sidecar,
            }))
        }
        MediaKind::Document => {
            message.document_message = MessageField::some(cdn!(DocumentMessage {
                caption: text(&media.caption),
                file_name: text(&media.file_name),
                title: text(&media.file_name),
                jpeg_thumbnail: bytes(&media.jpeg_thumbnail),
            }))
        }
        MediaKind::Sticker => message.sticker_message = MessageField::some(cdn!(StickerMessage {})),
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(kind: MediaKind, voice_note: bool) -> MediaMessage {
        MediaMessage {
            blob: MediaBlob {
                kind,
                mime: "audio/ogg; codecs=opus".into(),
                size: 3,
                sha256: "00ff10".into(),
                direct_path: "/v/t62/abc".into(),
                url: String::new(),
                media_key: STANDARD.encode([7u8; 32]),
                enc_sha256: STANDARD.encode([9u8; 32]),
                key_timestamp: 1_700_000_000,
                sidecar: String::new(),
            },
            caption: "see".into(),
            file_name: "a.pdf".into(),
            voice_note,
            duration_seconds: 12,
            waveform: vec![1, 2, 3],
            jpeg_thumbnail: Vec::new(),
        }
    }

    #[test]
    fn a_voice_note_is_ptt_audio_with_its_length_and_the_handles_keys() {
        let message = message(&media(MediaKind::Audio, true), None).unwrap();
        let audio = message.audio_message.as_option().expect("audio");
        assert_eq!(audio.ptt, Some(true));
        assert_eq!(audio.seconds, Some(12));
        assert_eq!(audio.media_key.as_deref(), Some(&[7u8; 32][..]));
        assert_eq!(audio.file_sha256.as_deref(), Some(&[0u8, 0xff, 0x10][..]));
        assert_eq!(audio.direct_path.as_deref(), Some("/v/t62/abc"));
        assert_eq!(audio.waveform.as_deref(), Some(&[1u8, 2, 3][..]));
    }

    #[test]
    fn a_document_keeps_its_name_and_caption() {
        let message = message(&media(MediaKind::Document, false), None).unwrap();
        let document = message.document_message.as_option().expect("document");
        assert_eq!(document.file_name.as_deref(), Some("a.pdf"));
        assert_eq!(document.caption.as_deref(), Some("see"));
        assert_eq!(document.file_length, Some(3));
    }
}
