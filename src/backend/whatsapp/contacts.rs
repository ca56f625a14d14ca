//! "Is this number on WhatsApp?" on the real backend: one usync contact query
//! (`Client::query_usync` with the contact, LID and business protocols, the
//! stanza WhatsApp Web's own check sends) for a batch of user chats, bounded, and
//! its answer mapped back to the chats. The library's `is_on_whatsapp` is not
//! used: it drops an answer without a JID, which is how WhatsApp answers a number
//! that is not on it, so "not on WhatsApp" could not be told from "no answer".

use std::{collections::HashMap, time::Duration};

use tokio::time::{timeout_at, Instant};
use whatsapp_rust::{
    usync::{
        UsyncAddressingMode, UsyncContext, UsyncMode, UsyncOutcome, UsyncProtocol, UsyncProtocolKind,
        UsyncProtocolResult, UsyncQuery, UsyncResponse, UsyncUser,
    },
    Client,
};

use crate::backend::BackendError;

/// Why a contact check gave no answer.
#[derive(Debug)]
pub enum Refused {
    /// WhatsApp refused it for its rate (429), naming how long to wait or not.
    RateLimited {
        /// The backoff WhatsApp named.
        backoff: Option<Duration>,
    },
    /// Anything else.
    Other(BackendError),
}

impl Refused {
    /// What the session is told.
    pub fn into_backend_error(self) -> BackendError {
        match self {
            Refused::RateLimited { backoff } => {
                let wait = backoff.map_or_else(String::new, |b| format!("; whatsapp asks to wait {} s", b.as_secs()));
                BackendError::Unreachable(format!("whatsapp refused the contact query for its rate (429){wait}"))
            }
            Refused::Other(error) => error,
        }
    }
}

/// The code of a contact query refused for its rate.
const RATE_LIMITED: u16 = 429;

/// Which of `chats` (`digits@s.whatsapp.net`) are on WhatsApp, by `deadline`. A
/// number WhatsApp cannot hold (a leading 0: not an international number) is
/// answered false without asking; one WhatsApp did not answer about is absent.
pub async fn registered(
    client: &Client,
    chats: Vec<String>,
    deadline: Instant,
) -> Result<HashMap<String, bool>, Refused> {
    let mut answer = HashMap::with_capacity(chats.len());
    let mut asked = Vec::with_capacity(chats.len());
    for chat in chats {
        let digits = digits(&chat).to_owned();
        if digits.is_empty() || digits.starts_with('0') {
            answer.insert(chat, false);
        } else {
            asked.push(digits);
        }
    }
    if asked.is_empty() {
        return Ok(answer);
    }
    let protocols = vec![
        UsyncProtocol::Contact {
            addressing_mode: UsyncAddressingMode::Pn,
        },
        UsyncProtocol::Lid,
        UsyncProtocol::BusinessVerifiedName,
    ];
    let users = asked.iter().map(|d| UsyncUser::from_phone(d.as_str())).collect();
    let query = UsyncQuery::new(UsyncMode::Query, UsyncContext::Interactive, protocols, users).map_err(|e| {
        Refused::Other(BackendError::Refused(format!(
            "the numbers could not be put in a contact query: {e}"
        )))
    })?;
    let response = timeout_at(deadline, client.query_usync(query))
        .await
        .map_err(|_| {
            Refused::Other(BackendError::Unreachable(
                "whatsapp did not answer the contact query in time".into(),
            ))
        })?
        .map_err(|e| {
            Refused::Other(BackendError::Unreachable(format!(
                "the contact query failed: {e}; retry later"
            )))
        })?;
    answer.extend(verdicts(&response)?);
    Ok(answer)
}

/// The chats a contact query's answer speaks of, each true when on WhatsApp; a
/// result-level error on the contact protocol (e.g. 429 with a backoff) fails it.
fn verdicts(response: &UsyncResponse) -> Result<HashMap<String, bool>, Refused> {
    if let Some(error) = response
        .protocol_state(UsyncProtocolKind::Contact)
        .and_then(|state| state.error.as_ref())
    {
        if error.code == Some(RATE_LIMITED) {
            let backoff = error.backoff.map(|s| Duration::from_secs(u64::from(s)));
            return Err(Refused::RateLimited { backoff });
        }
        let code = error.code.map_or_else(|| "?".to_owned(), |c| c.to_string());
        let backoff = error.backoff.map_or_else(String::new, |s| format!("; retry in {s} s"));
        return Err(Refused::Other(BackendError::Unreachable(format!(
            "whatsapp refused the contact query ({code}){backoff}"
        ))));
    }
    let mut verdicts = HashMap::with_capacity(response.users.len());
    for user in &response.users {
        let Some(UsyncProtocolResult::Contact(UsyncOutcome::Value(contact))) =
            user.protocol(UsyncProtocolKind::Contact)
        else {
            // No contact answer, or a per-user error: unknown.
            continue;
        };
        let from_jid = match (&user.id, &user.pn_jid) {
            (Some(id), _) if id.is_pn() => Some(id.user.to_string()),
            (_, Some(pn)) => Some(pn.user.to_string()),
            _ => None,
        };
        let from_content = contact.content.as_ref().map(|c| c.trim_start_matches('+').to_owned());
        let Some(digits) = from_jid.or(from_content).filter(|d| !d.is_empty()) else {
            continue;
        };
        verdicts.insert(format!("{digits}@s.whatsapp.net"), contact.contact_type == "in");
    }
    Ok(verdicts)
}

/// The user part of a chat's JID.
fn digits(chat: &str) -> &str {
    chat.split('@').next().unwrap_or_default()
}

#[cfg(test)]
#[path = "contacts_tests.rs"]
mod tests;
