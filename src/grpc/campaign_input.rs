//! CampaignService's wire side: requests checked and turned into the log's
//! campaign vocabulary (every refusal names the field and the item's position),
//! and campaign rows turned into `Campaign` and `CampaignItemResult`.

use std::{collections::HashMap, time::Duration};

use sha2::{Digest, Sha256};

use super::{convert, outbound::media_input};
use crate::{
    backend::Outbound,
    domain::{input, SessionId},
    error::SessionError,
    events::campaign::{CampaignRow, ItemContent, ItemRow, NewItem, Pacing},
    proto::{self, campaign_item::Content},
};

/// The most items one call takes.
pub const MAX_ITEMS_PER_CALL: usize = 1_000;

/// The longest gap a policy may ask for.
const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// The gaps without a policy.
const DEFAULT_MIN: Duration = Duration::from_secs(20);
const DEFAULT_MAX: Duration = Duration::from_secs(60);

/// A campaign id: the session id rule.
pub fn campaign_id(raw: &str) -> Result<String, SessionError> {
    SessionId::parse(raw).map(|id| id.to_string()).map_err(|_| {
        SessionError::InvalidArgument(format!(
            "campaign_id {raw:?} is invalid: 1-64 of [A-Za-z0-9._-], starting with a letter or digit"
        ))
    })
}

/// A policy with its defaults filled in.
pub fn pacing(raw: Option<proto::PacingPolicy>) -> Result<Pacing, SessionError> {
    let raw = raw.unwrap_or_default();
    let bound = |d: Option<prost_types::Duration>, field: &str, default: Duration| -> Result<u64, SessionError> {
        let d = match d {
            None => default,
            Some(d) => convert::duration(Some(d), field)?,
        };
        if d > MAX_INTERVAL {
            return Err(SessionError::InvalidArgument(format!(
                "{field} must be at most 24h, got {}s",
                d.as_secs()
            )));
        }
        Ok(d.as_millis() as u64)
    };
    let min_ms = bound(raw.min_interval, "pacing.min_interval", DEFAULT_MIN)?;
    let max_ms = bound(raw.max_interval, "pacing.max_interval", DEFAULT_MAX)?;
    if min_ms > max_ms {
        return Err(SessionError::InvalidArgument(format!(
            "pacing.min_interval ({min_ms} ms) is longer than pacing.max_interval ({max_ms} ms): set min <= max"
        )));
    }
    Ok(Pacing {
        min_ms,
        max_ms,
        daily_limit: raw.daily_limit,
        new_contact_daily_limit: raw.new_contact_daily_limit,
        typing: raw.typing,
        skip_unregistered: raw.skip_unregistered,
    })
}

/// Checks a call's items; `first` is the campaign position of the first (the
/// default item ids). Each gets its WhatsApp id now.
pub fn items(raw: Vec<proto::CampaignItem>, first: u64) -> Result<Vec<NewItem>, SessionError> {
    if raw.len() > MAX_ITEMS_PER_CALL {
        return Err(SessionError::InvalidArgument(format!(
            "{} items in one call: send at most {MAX_ITEMS_PER_CALL} a call (AddCampaignItems takes the rest)",
            raw.len()
        )));
    }
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(raw.len());
    let mut out = Vec::with_capacity(raw.len());
    for (i, item) in raw.into_iter().enumerate() {
        let at = |e: SessionError| match e {
            SessionError::InvalidArgument(m) => SessionError::InvalidArgument(format!("items[{i}]: {m}")),
            other => other,
        };
        let item_id = if item.item_id.is_empty() {
            (first + i as u64).to_string()
        } else {
            campaign_id(&item.item_id)
                .map_err(|_| {
                    SessionError::InvalidArgument(format!(
                        "item_id {:?} is invalid: 1-64 of [A-Za-z0-9._-], starting with a letter or digit",
                        item.item_id
                    ))
                })
                .map_err(at)?
        };
        if let Some(before) = seen.insert(item_id.clone(), i) {
            return Err(SessionError::InvalidArgument(format!(
                "items[{i}]: item_id {item_id:?} is also items[{before}]'s: item ids are unique in a campaign"
            )));
        }
        let chat = input::chat(&item.to).map_err(at)?;
        let content = match item.content {
            None => {
                return Err(at(SessionError::InvalidArgument(
                    "content is missing: set text or media".into(),
                )))
            }
            Some(Content::Text(text)) => {
                let text = expand(&text, &item.vars).map_err(at)?;
                input::text(&text).map_err(at)?;
                ItemContent::Text { text }
            }
            Some(Content::Media(mut media)) => {
                media.caption = expand(&media.caption, &item.vars).map_err(at)?;
                let media = media_input(media, None).map_err(at)?;
                ItemContent::Media {
                    media_id: media.media_id,
                    caption: media.caption,
                    file_name: media.file_name,
                    voice_note: media.voice_note,
                    duration_seconds: media.duration_seconds,
                    waveform: media.waveform,
                    jpeg_thumbnail: media.jpeg_thumbnail,
                }
            }
        };
        out.push(NewItem {
            item_id,
            chat,
            content,
            message_id: Outbound::new_id(),
        });
    }
    Ok(out)
}

/// Fills in `{{name}}` placeholders from `vars`; one without a value is refused.
pub fn expand(text: &str, vars: &HashMap<String, String>) -> Result<String, SessionError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = after[..end].trim();
        match vars.get(name) {
            Some(value) => out.push_str(value),
            None => {
                return Err(SessionError::InvalidArgument(format!(
                    "placeholder {{{{{name}}}}} has no value: add {name:?} to vars"
                )))
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What makes two CreateCampaign requests with one id the same request: a hash of
/// the session, the policy, the labels and the items (ids, chats, contents).
pub fn fingerprint(
    session_id: &str,
    pacing: &Pacing,
    start_paused: bool,
    labels: &std::collections::BTreeMap<String, String>,
    items: &[NewItem],
) -> String {
    let mut hash = Sha256::new();
    let mut field = |value: &[u8]| {
        hash.update((value.len() as u64).to_be_bytes());
        hash.update(value);
    };
    field(session_id.as_bytes());
    field(serde_json::to_string(pacing).unwrap_or_default().as_bytes());
    field(&[start_paused as u8]);
    field(serde_json::to_string(labels).unwrap_or_default().as_bytes());
    for item in items {
        field(item.item_id.as_bytes());
        field(item.chat.as_bytes());
        field(serde_json::to_string(&item.content).unwrap_or_default().as_bytes());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A campaign on the wire.
pub fn campaign(row: CampaignRow, next_send_at: Option<std::time::SystemTime>) -> proto::Campaign {
    let c = row.counts;
    let ms = |v: u64| prost_types::Duration::try_from(Duration::from_millis(v)).unwrap_or_default();
    proto::Campaign {
        campaign_id: row.id,
        session_id: row.session_id,
        state: row.state as i32,
        pause_reason: row.pause_reason as i32,
        resume_at: row.resume_at.map(convert::timestamp),
        counts: Some(proto::CampaignCounts {
            total: c.total,
            pending: c.pending + c.sending,
            sent: c.sent,
            server_ack: c.server_ack,
            delivered: c.delivered,
            read: c.read,
            failed: c.failed,
            skipped: c.skipped,
            cancelled: c.cancelled,
        }),
        next_send_at: next_send_at.map(convert::timestamp),
        created_at: Some(convert::timestamp(row.created_at)),
        labels: row.labels.into_iter().collect(),
        pacing: Some(proto::PacingPolicy {
            min_interval: Some(ms(row.pacing.min_ms)),
            max_interval: Some(ms(row.pacing.max_ms)),
            daily_limit: row.pacing.daily_limit,
            new_contact_daily_limit: row.pacing.new_contact_daily_limit,
            typing: row.pacing.typing,
            skip_unregistered: row.pacing.skip_unregistered,
        }),
    }
}

/// An item's result on the wire.
pub fn item(row: ItemRow) -> proto::CampaignItemResult {
    proto::CampaignItemResult {
        item_id: row.item_id,
        to: row.chat,
        status: row.status as i32,
        message_id: row.message_id,
        error_code: row.error_code,
        error: row.error,
        sent_at: row.sent_at.map(convert::timestamp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_one_without_a_value_is_refused() {
        let vars = HashMap::from([("name".to_owned(), "Ana".to_owned())]);
        assert_eq!(expand("hi {{name}}, {{ name }}!", &vars).unwrap(), "hi Ana, Ana!");
        assert_eq!(expand("no close {{name", &vars).unwrap(), "no close {{name");
        let refused = expand("hi {{nick}}", &vars).unwrap_err().to_string();
        assert!(refused.contains("{{nick}}"), "{refused}");
    }

    #[test]
    fn intervals_default_and_are_bounded() {
        let p = pacing(None).unwrap();
        assert_eq!((p.min_ms, p.max_ms), (20_000, 60_000));
        let policy = |min: i64, max: i64| proto::PacingPolicy {
            min_interval: Some(prost_types::Duration { seconds: min, nanos: 0 }),
            max_interval: Some(prost_types::Duration { seconds: max, nanos: 0 }),
            ..Default::default()
        };
        assert!(pacing(Some(policy(0, 0))).is_ok());
        assert!(pacing(Some(policy(5, 1))).is_err());
        assert!(pacing(Some(policy(0, 90_000))).is_err());
    }
}
