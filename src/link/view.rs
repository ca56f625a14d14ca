//! What the page is told about its session: the status, the QR drawn as SVG with
//! its times, and the server's clock (so the page can correct its own). Only what a
//! person linking needs: no phone number, name or JID.

use std::time::SystemTime;

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde::Serialize;

use crate::{
    domain::{DisconnectReason, PairingCodeView, SessionView, Status},
    qr_render::{render, ImageKind},
    store::unix_ms,
};

/// One state of the session, as the page draws it.
#[derive(Debug, Clone, Serialize)]
pub struct PageState {
    /// The session's revision (the SSE event id).
    pub revision: u64,
    /// The wire name, e.g. `SESSION_STATUS_QR_WAITING`.
    pub status: &'static str,
    /// The current code, while pairing.
    pub qr: Option<PageQr>,
    /// Why the last connection ended (wire name), when it matters to the person.
    pub reason: Option<&'static str>,
    /// What went wrong, in words, when the session FAILED.
    pub error: Option<String>,
    /// The server's clock (unix ms) when this was sent.
    pub now: u64,
}

/// The QR code as the page draws it.
#[derive(Debug, Clone, Serialize)]
pub struct PageQr {
    /// `data:image/svg+xml;base64,...`
    pub svg: String,
    /// When the code was issued, ms since the Unix epoch.
    pub issued_at: u64,
    /// When the code stops working, ms since the Unix epoch (the countdown's end).
    pub expires_at: u64,
    /// 1-based position in the batch.
    pub index: u32,
    /// Codes in the batch.
    pub count: u32,
    /// Grows by one per new connection: the page tells a new batch from the same one.
    pub generation: u64,
}

/// A pairing code, as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PagePairingCode {
    /// `XXXX-XXXX`, as the phone asks for it.
    pub code: String,
    /// When the code stops working, ms since the Unix epoch.
    pub expires_at: u64,
    /// The server's clock (unix ms).
    pub now: u64,
}

impl PageState {
    /// The page's view of `view` at `now`.
    pub fn of(view: &SessionView, now: SystemTime) -> Self {
        let qr = match view.status {
            Status::QrWaiting | Status::Connecting | Status::Starting => view.qr.as_ref(),
            _ => None,
        };
        let qr = qr.and_then(|qr| {
            let svg = render(&qr.code, ImageKind::Svg).ok()?;
            Some(PageQr {
                svg: format!("data:image/svg+xml;base64,{}", B64.encode(svg)),
                issued_at: unix_ms(qr.issued_at),
                expires_at: unix_ms(qr.expires_at),
                index: qr.index,
                count: qr.count,
                generation: qr.generation,
            })
        });
        let reason = match view.disconnect_reason {
            DisconnectReason::Unspecified => None,
            reason => Some(reason.wire_name()),
        };
        let error = (view.status == Status::Failed && !view.last_error.is_empty()).then(|| view.last_error.clone());
        Self {
            revision: view.revision,
            status: view.status.wire_name(),
            qr,
            reason,
            error,
            now: unix_ms(now),
        }
    }

    /// As JSON.
    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("page state serializes")
    }
}

impl PagePairingCode {
    /// The page's view of `code` at `now`.
    pub fn of(code: &PairingCodeView, now: SystemTime) -> Self {
        Self {
            code: code.code.clone(),
            expires_at: unix_ms(code.expires_at),
            now: unix_ms(now),
        }
    }
}
