//! What the session sends for a campaign item's stored content: the same text or
//! media a direct SendMessage would carry, with no reply.

use crate::{
    domain::{MediaInput, SendContent},
    events::campaign::ItemContent,
};

/// What the session sends for an item's content.
pub(super) fn send_content(content: ItemContent) -> SendContent {
    match content {
        ItemContent::Text { text } => SendContent::Text { text, reply_to: None },
        ItemContent::Media {
            media_id,
            caption,
            file_name,
            voice_note,
            duration_seconds,
            waveform,
            jpeg_thumbnail,
        } => SendContent::Media(Box::new(MediaInput {
            media_id,
            caption,
            file_name,
            voice_note,
            duration_seconds,
            waveform,
            jpeg_thumbnail,
            reply_to: None,
        })),
    }
}
