//! Server-side requests outside the event flow: a pairing code for linking by phone
//! number on an open pairing connection, and unlinking a device: over its open
//! connection, or from its stored credentials (after WhatsApp delivered what it
//! held for it, into the log).

use std::{sync::Arc, time::Duration};

use tokio::time::{timeout, timeout_at, Instant};
use tracing::info;
use whatsapp_rust::{
    pair_code::{PairCodeOptions, PairError},
    wacore::{iq::devices::RemoveCompanionDeviceSpec, pair_code::PairCodeUtils},
    Client, IqError,
};

use super::{client, inbound::InboxHook, reach, store::CredentialFiles};
use crate::{
    backend::{BackendError, PairingCodeIssued, CLOSE_TIMEOUT},
    events::Inbox,
};

/// How long a stored device may take to log in before it is unlinked.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(20);

/// How long WhatsApp may take to deliver what it held for a stored device being
/// unlinked (and the log to commit it).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Asks WhatsApp for a code to link `phone_number` (digits), all of it (the socket
/// included) by `deadline`. The code is valid for the library's pairing-code
/// window: 180 s from issue (WhatsApp Web's value).
pub async fn request(
    client: Arc<Client>,
    phone_number: String,
    deadline: Instant,
) -> Result<PairingCodeIssued, BackendError> {
    let socket_wait = deadline.saturating_duration_since(Instant::now());
    timeout_at(deadline, client.wait_for_socket(socket_wait))
        .await
        .map_err(|_| BackendError::Unreachable("no socket to whatsapp in time".into()))?
        .map_err(|e| BackendError::Unreachable(format!("no socket to whatsapp: {e}")))?;
    let options = PairCodeOptions {
        phone_number,
        ..PairCodeOptions::default()
    };
    let code = timeout_at(deadline, client.pair_with_code(options))
        .await
        .map_err(|_| BackendError::Unreachable("whatsapp did not issue a pairing code in time".into()))?
        .map_err(|e| match e {
            PairError::PairCode(e) => BackendError::Refused(format!("no pairing code: {e}")),
            other => BackendError::Unreachable(format!("whatsapp refused the pairing code request: {other}")),
        })?;
    issued(&code)
}

/// The code as the session shows it (8 letters and digits, dashes dropped), or why
/// what the library gave is not one: never a panic further up.
fn issued(raw: &str) -> Result<PairingCodeIssued, BackendError> {
    let code: String = raw.chars().filter(char::is_ascii_alphanumeric).collect();
    if code.len() != 8 {
        return Err(BackendError::Unreachable(format!(
            "whatsapp issued a malformed pairing code ({} letters and digits, 8 expected)",
            code.len()
        )));
    }
    Ok(PairingCodeIssued {
        code,
        valid_for: PairCodeUtils::code_validity(),
    })
}

/// Logs the stored device in, lets WhatsApp deliver what it held for the device
/// (committed to `inbox` before it is acked, as on any connection), unlinks the
/// device on WhatsApp's side and deletes the store. Unreachable WhatsApp answers
/// `Unreachable` quickly and keeps the store; a queue not delivered in time is not
/// unlinked (WhatsApp keeps it), and says so.
pub async fn logout_stored(files: CredentialFiles, dial: client::Dial, inbox: Inbox) -> Result<(), BackendError> {
    if !files.is_linked() {
        return wipe(files).await;
    }
    reach::probe(dial.url.clone())
        .await
        .map_err(BackendError::Unreachable)?;
    // Nothing listens for a redelivery: the queue wait below is shorter than the
    // hook's retries, so a batch the log refuses is never acked and never unlinked.
    let hook = InboxHook::new(inbox, Arc::default());
    let built = client::build(&files, &dial, tracing::Span::current(), hook)
        .await
        .map_err(BackendError::Storage)?;
    let client = built.client.clone();
    let running = built.bot.spawn();
    let unlinked = log_in_drain_and_unlink(&client).await;
    let _ = timeout(CLOSE_TIMEOUT, running.shutdown()).await;
    unlinked?;
    info!("stored device unlinked");
    wipe(files).await
}

/// Waits for the login and the delivery of the offline queue, then unlinks.
async fn log_in_drain_and_unlink(client: &Arc<Client>) -> Result<(), BackendError> {
    if let Err(e) = client.wait_for_connected(LOGIN_TIMEOUT).await {
        return Err(BackendError::Unreachable(format!(
            "the stored device did not log in to whatsapp, so whatsapp was not asked to unlink it: {e}"
        )));
    }
    if let Err(e) = client.wait_for_startup_sync(DRAIN_TIMEOUT).await {
        return Err(BackendError::Unreachable(format!(
            "the messages whatsapp held for the device were not all logged within {DRAIN_TIMEOUT:?} ({e}), \
             so the device was not unlinked and whatsapp keeps them"
        )));
    }
    unlink(client).await
}

/// Asks WhatsApp to unlink the device (within `CLOSE_TIMEOUT`) and closes the
/// client either way. Err says why WhatsApp was not asked, or what it answered:
/// never a clean logout that did not happen.
pub async fn unlink(client: &Arc<Client>) -> Result<(), BackendError> {
    let asked = match client.pn() {
        Some(jid) => timeout(CLOSE_TIMEOUT, client.execute(RemoveCompanionDeviceSpec::new(&jid)))
            .await
            .map_err(|_| BackendError::Unreachable("whatsapp did not answer the unlink request in time".into()))
            .and_then(|answer| answer.map_err(unlink_failed)),
        None => Err(BackendError::Refused(
            "the store holds no device id, so whatsapp was not asked to unlink it".into(),
        )),
    };
    let _ = timeout(CLOSE_TIMEOUT, client.disconnect()).await;
    asked
}

/// What an unlink request that failed means: refused by WhatsApp, or not
/// confirmed (no answer, or the connection went first).
fn unlink_failed(error: IqError) -> BackendError {
    match error {
        IqError::ServerError { code, text, .. } => {
            BackendError::Refused(format!("whatsapp refused to unlink the device ({code} {text})"))
        }
        IqError::Timeout => BackendError::Unreachable("whatsapp did not answer the unlink request in time".into()),
        other => BackendError::Unreachable(format!("whatsapp did not confirm the unlink: {other}")),
    }
}

/// Deletes the store's files.
pub async fn wipe(files: CredentialFiles) -> Result<(), BackendError> {
    tokio::task::spawn_blocking(move || files.wipe())
        .await
        .map_err(|e| BackendError::Storage(format!("could not wipe credentials: {e}")))?
        .map_err(|e| BackendError::Storage(format!("could not wipe credentials: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pairing_code_is_eight_letters_and_digits_or_a_clean_error() {
        assert_eq!(issued("ABCD-1234").unwrap().code, "ABCD1234");
        for malformed in ["", "ABC", "ABCD-12345", "----"] {
            let refused = issued(malformed).unwrap_err();
            assert!(refused.to_string().contains("malformed pairing code"), "{refused}");
            assert!(!refused.to_string().contains(malformed) || malformed.is_empty());
        }
    }
}
