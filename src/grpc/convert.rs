//! Conversions between the domain and the wire types.

use std::time::{Duration, SystemTime};

use crate::{
    domain::{DisconnectReason, Qr, SessionView, Status},
    error::SessionError,
    proto,
    qr_render::{render, ImageKind},
};

/// The wire form of a session, with the QR image rendered when asked. Takes the view
/// by value: its strings move into the answer instead of being copied (the hot read).
pub fn session(view: SessionView, image: Option<ImageKind>) -> Result<proto::Session, SessionError> {
    let qr = view.qr.map(|qr| self::qr(qr, image)).transpose()?;
    Ok(proto::Session {
        id: view.id.into_string(),
        status: status(view.status) as i32,
        qr,
        phone_number: view.phone_number,
        jid: view.jid,
        push_name: view.push_name,
        created_at: Some(timestamp(view.created_at)),
        updated_at: Some(timestamp(view.updated_at)),
        connected_at: view.connected_at.map(timestamp),
        last_active_at: view.last_active_at.map(timestamp),
        last_error: view.last_error,
        disconnect_reason: reason(view.disconnect_reason) as i32,
        restart_count: view.restart_count,
        revision: view.revision,
        labels: view.labels.into_iter().collect(),
    })
}

fn qr(qr: Qr, image: Option<ImageKind>) -> Result<proto::Qr, SessionError> {
    let image = match image {
        Some(kind) => render(&qr.code, kind).map_err(SessionError::Internal)?,
        None => String::new(),
    };
    Ok(proto::Qr {
        code: qr.code,
        issued_at: Some(timestamp(qr.issued_at)),
        expires_at: Some(timestamp(qr.expires_at)),
        index: qr.index,
        count: qr.count,
        generation: qr.generation,
        image,
    })
}

/// The image a request asked for; INVALID_ARGUMENT for an unknown value.
pub fn image_kind(raw: i32) -> Result<Option<ImageKind>, SessionError> {
    match proto::QrImage::try_from(raw) {
        Ok(proto::QrImage::None) => Ok(None),
        Ok(proto::QrImage::PngDataUrl) => Ok(Some(ImageKind::PngDataUrl)),
        Ok(proto::QrImage::Svg) => Ok(Some(ImageKind::Svg)),
        Ok(proto::QrImage::Terminal) => Ok(Some(ImageKind::Terminal)),
        Err(_) => Err(SessionError::InvalidArgument(format!(
            "qr_image {raw} is unknown: use QR_IMAGE_NONE, QR_IMAGE_PNG_DATA_URL, QR_IMAGE_SVG or QR_IMAGE_TERMINAL"
        ))),
    }
}

/// The status filter of a list request; None means all.
pub fn status_filter(raw: i32) -> Result<Option<Status>, SessionError> {
    use proto::SessionStatus as P;
    let wire = P::try_from(raw)
        .map_err(|_| SessionError::InvalidArgument(format!("status {raw} is unknown: use a SESSION_STATUS_ value")))?;
    let status = match wire {
        P::Unspecified => return Ok(None),
        P::Starting => Status::Starting,
        P::Connecting => Status::Connecting,
        P::QrWaiting => Status::QrWaiting,
        P::Pairing => Status::Pairing,
        P::Restarting => Status::Restarting,
        P::Connected => Status::Connected,
        P::Reconnecting => Status::Reconnecting,
        P::Disconnected => Status::Disconnected,
        P::LoggedOut => Status::LoggedOut,
        P::Failed => Status::Failed,
    };
    Ok(Some(status))
}

/// The wire form of a status.
pub fn status(status: Status) -> proto::SessionStatus {
    status.into()
}

fn reason(reason: DisconnectReason) -> proto::DisconnectReason {
    reason.into()
}

/// A protobuf timestamp.
pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

/// A protobuf duration as a std one; INVALID_ARGUMENT when negative.
pub fn duration(d: Option<prost_types::Duration>, field: &str) -> Result<Duration, SessionError> {
    let Some(d) = d else {
        return Ok(Duration::ZERO);
    };
    Duration::try_from(d).map_err(|_| SessionError::InvalidArgument(format!("{field} must be a positive duration")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_models_wire_names_are_the_protos() {
        use crate::domain::status::{ALL_REASONS, ALL_STATUSES};
        for s in ALL_STATUSES {
            assert_eq!(s.wire_name(), status(s).as_str_name());
        }
        for r in ALL_REASONS {
            assert_eq!(r.wire_name(), reason(r).as_str_name());
        }
    }
}
