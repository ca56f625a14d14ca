//! Server-side requests outside the event flow: a pairing code for linking by phone
//! number on an open pairing connection, and unlinking a stored device that has no
//! open connection.

use std::{sync::Arc, time::Duration};

use tokio::time::{timeout, timeout_at, Instant};
use tracing::info;
use whatsapp_rust::{
    pair_code::{PairCodeOptions, PairError},
    wacore::pair_code::PairCodeUtils,
    Client,
};

use super::{client, reach, store::CredentialFiles};
use crate::backend::{BackendError, PairingCodeIssued, CLOSE_TIMEOUT};

/// How long a stored device may take to log in before it is unlinked.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(20);

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

/// Logs the stored device in, unlinks it on WhatsApp's side and deletes the store.
/// Unreachable WhatsApp answers `Unreachable` quickly and keeps the store.
pub async fn logout_stored(files: CredentialFiles, dial: client::Dial) -> Result<(), BackendError> {
    if !files.is_linked() {
        return wipe(files).await;
    }
    reach::probe(dial.url.clone())
        .await
        .map_err(BackendError::Unreachable)?;
    let built = client::build(&files, &dial, tracing::Span::current(), None)
        .await
        .map_err(BackendError::Storage)?;
    let client = built.client.clone();
    let running = built.bot.spawn();
    let logged_in = client.wait_for_connected(LOGIN_TIMEOUT).await;
    if let Err(e) = logged_in {
        let _ = timeout(CLOSE_TIMEOUT, running.shutdown()).await;
        return Err(BackendError::Unreachable(format!(
            "the stored device did not log in to whatsapp: {e}"
        )));
    }
    let unlinked = timeout(CLOSE_TIMEOUT, client.logout()).await.is_ok();
    let _ = timeout(CLOSE_TIMEOUT, running.shutdown()).await;
    if !unlinked {
        return Err(BackendError::Unreachable(
            "whatsapp did not confirm the logout in time".into(),
        ));
    }
    info!("stored device unlinked");
    wipe(files).await
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
