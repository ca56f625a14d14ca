//! `EmulatorService`: the phone's side of the emulated WhatsApp.

use tonic::{Request, Response, Status};

use crate::{
    backend::emulator::Emulator,
    domain::{id::is_phone_digits, SessionId},
    proto::{self, emulator_service_server::EmulatorService},
    registry::Sessions,
};

/// Serves `EmulatorService` on top of the emulator.
#[derive(Clone)]
pub struct EmulatorApi {
    /// The emulated WhatsApp.
    emulator: Emulator,
    /// The sessions (for CrashSession).
    sessions: Sessions,
}

impl EmulatorApi {
    /// Serves `emulator`.
    pub fn new(emulator: Emulator, sessions: Sessions) -> Self {
        Self { emulator, sessions }
    }
}

#[tonic::async_trait]
impl EmulatorService for EmulatorApi {
    async fn crash_session(
        &self,
        request: Request<proto::CrashSessionRequest>,
    ) -> Result<Response<proto::CrashSessionResponse>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        self.sessions.crash(id, body.panic).await?;
        Ok(Response::new(proto::CrashSessionResponse {}))
    }

    async fn scan_qr(&self, request: Request<proto::ScanQrRequest>) -> Result<Response<proto::ScanQrResponse>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let identity = self.emulator.scan_qr(&id, &body.code, &body.phone_number).await?;
        tracing::info!(session_id = %id, "emulated phone scanned the qr code");
        Ok(Response::new(proto::ScanQrResponse {
            phone_number: identity.phone_number,
            jid: identity.jid,
        }))
    }

    async fn enter_pairing_code(
        &self,
        request: Request<proto::EnterPairingCodeRequest>,
    ) -> Result<Response<proto::EnterPairingCodeResponse>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let identity = self.emulator.enter_pairing_code(&id, &body.code).await?;
        tracing::info!(session_id = %id, "emulated phone entered the pairing code");
        Ok(Response::new(proto::EnterPairingCodeResponse {
            phone_number: identity.phone_number,
            jid: identity.jid,
        }))
    }

    async fn drop_connection(
        &self,
        request: Request<proto::DropConnectionRequest>,
    ) -> Result<Response<proto::DropConnectionResponse>, Status> {
        let id = SessionId::parse(&request.get_ref().session_id)?;
        self.emulator.drop_connection(&id).await?;
        Ok(Response::new(proto::DropConnectionResponse {}))
    }

    async fn logout_from_phone(
        &self,
        request: Request<proto::LogoutFromPhoneRequest>,
    ) -> Result<Response<proto::LogoutFromPhoneResponse>, Status> {
        let id = SessionId::parse(&request.get_ref().session_id)?;
        self.emulator.logout_from_phone(&id).await?;
        Ok(Response::new(proto::LogoutFromPhoneResponse {}))
    }

    async fn replace_stream(
        &self,
        request: Request<proto::ReplaceStreamRequest>,
    ) -> Result<Response<proto::ReplaceStreamResponse>, Status> {
        let id = SessionId::parse(&request.get_ref().session_id)?;
        self.emulator.replace_stream(&id).await?;
        Ok(Response::new(proto::ReplaceStreamResponse {}))
    }

    async fn fail_connects(
        &self,
        request: Request<proto::FailConnectsRequest>,
    ) -> Result<Response<proto::FailConnectsResponse>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        self.emulator.fail_connects(&id, body.count).await;
        Ok(Response::new(proto::FailConnectsResponse {}))
    }

    async fn count_connections(
        &self,
        request: Request<proto::CountConnectionsRequest>,
    ) -> Result<Response<proto::CountConnectionsResponse>, Status> {
        let raw = &request.get_ref().session_id;
        let id = if raw.is_empty() {
            None
        } else {
            Some(SessionId::parse(raw)?)
        };
        let count = self.emulator.count_connections(id.as_ref()).await;
        Ok(Response::new(proto::CountConnectionsResponse {
            started: count.started,
            open: count.open,
        }))
    }

    async fn list_sent_messages(
        &self,
        request: Request<proto::ListSentMessagesRequest>,
    ) -> Result<Response<proto::ListSentMessagesResponse>, Status> {
        let id = SessionId::parse(&request.get_ref().session_id)?;
        let messages = self
            .emulator
            .sent_messages(&id)
            .await
            .into_iter()
            .map(|m| proto::EmulatedMessage {
                to: m.to,
                text: m.text,
                message_id: m.message_id,
                kind: m.kind as i32,
                quoted_id: m.quoted_id,
                target_id: m.target_id,
                received_at: Some(m.received_at.into()),
                state: m.state as i32,
                media: m.media,
            })
            .collect();
        let (media_uploads, media_reuploads) = self.emulator.media_counts(&id).await;
        Ok(Response::new(proto::ListSentMessagesResponse {
            messages,
            media_uploads,
            media_reuploads,
        }))
    }

    async fn deliver_media(
        &self,
        request: Request<proto::DeliverMediaRequest>,
    ) -> Result<Response<proto::DeliverMediaResponse>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let message_id = self.emulator.deliver_media(&id, body).await?;
        Ok(Response::new(proto::DeliverMediaResponse { message_id }))
    }

    async fn expire_media(
        &self,
        request: Request<proto::ExpireMediaRequest>,
    ) -> Result<Response<proto::ExpireMediaResponse>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        self.emulator
            .expire_media(&id, &body.message_id, body.phone_online)
            .await?;
        Ok(Response::new(proto::ExpireMediaResponse {}))
    }

    async fn deliver_message(
        &self,
        request: Request<proto::DeliverMessageRequest>,
    ) -> Result<Response<proto::DeliverMessageResponse>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let message_id = self
            .emulator
            .deliver_message(&id, &body.from, &body.text, Some(body.message_id.as_str()))
            .await?;
        Ok(Response::new(proto::DeliverMessageResponse { message_id }))
    }

    async fn deliver_undecryptable_message(
        &self,
        request: Request<proto::DeliverUndecryptableMessageRequest>,
    ) -> Result<Response<proto::DeliverUndecryptableMessageResponse>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let message_id = self.emulator.deliver_undecryptable(&id, &body.from, &body.text).await?;
        Ok(Response::new(proto::DeliverUndecryptableMessageResponse { message_id }))
    }

    async fn recover_message(
        &self,
        request: Request<proto::RecoverMessageRequest>,
    ) -> Result<Response<proto::RecoverMessageResponse>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        self.emulator.recover_message(&id, &body.message_id).await?;
        Ok(Response::new(proto::RecoverMessageResponse {}))
    }

    async fn send_receipt(
        &self,
        request: Request<proto::SendReceiptRequest>,
    ) -> Result<Response<proto::SendReceiptResponse>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let kind = proto::ReceiptKind::try_from(body.kind).unwrap_or(proto::ReceiptKind::Unspecified);
        self.emulator.send_receipt(&id, &body.message_id, kind).await?;
        Ok(Response::new(proto::SendReceiptResponse {}))
    }

    async fn count_pending(
        &self,
        request: Request<proto::CountPendingRequest>,
    ) -> Result<Response<proto::CountPendingResponse>, Status> {
        let id = SessionId::parse(&request.get_ref().session_id)?;
        let pending = self.emulator.count_pending(&id).await?;
        Ok(Response::new(proto::CountPendingResponse { pending }))
    }

    async fn reject_sends(
        &self,
        request: Request<proto::RejectSendsRequest>,
    ) -> Result<Response<proto::RejectSendsResponse>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        self.emulator.reject_sends(&id, body.code, body.count).await?;
        Ok(Response::new(proto::RejectSendsResponse {}))
    }

    async fn hold_server_acks(
        &self,
        request: Request<proto::HoldServerAcksRequest>,
    ) -> Result<Response<proto::HoldServerAcksResponse>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        self.emulator.hold_acks(&id, body.hold).await?;
        Ok(Response::new(proto::HoldServerAcksResponse {}))
    }

    async fn set_account_health(
        &self,
        request: Request<proto::SetAccountHealthRequest>,
    ) -> Result<Response<proto::SetAccountHealthResponse>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let length = |d: Option<prost_types::Duration>, field: &str| -> Result<std::time::Duration, Status> {
            d.map(std::time::Duration::try_from)
                .transpose()
                .map_err(|_| Status::invalid_argument(format!("{field} must not be negative")))
                .map(Option::unwrap_or_default)
        };
        let restricted_for = length(body.reachout_restricted_for, "reachout_restricted_for")?;
        let ban_for = length(body.temp_ban_for, "temp_ban_for")?;
        self.emulator
            .set_account_health(&id, restricted_for, body.temp_ban_reason, ban_for)
            .await;
        Ok(Response::new(proto::SetAccountHealthResponse {}))
    }

    async fn set_registered(
        &self,
        request: Request<proto::SetRegisteredRequest>,
    ) -> Result<Response<proto::SetRegisteredResponse>, Status> {
        let body = request.into_inner();
        if let Some(bad) = body.phone_numbers.iter().find(|n| !is_phone_digits(n)) {
            return Err(Status::invalid_argument(format!(
                "phone number {bad:?} must be 7-15 digits with the country code"
            )));
        }
        if body.rate_limit_next_checks > 0 {
            let backoff = match body.rate_limit_backoff {
                Some(backoff) => Some(
                    std::time::Duration::try_from(backoff)
                        .map_err(|_| Status::invalid_argument("rate_limit_backoff must not be negative"))?,
                ),
                None => None,
            };
            self.emulator.rate_limit_checks(body.rate_limit_next_checks, backoff);
        }
        let (contact_queries, numbers_checked) =
            self.emulator
                .set_registered(&body.phone_numbers, body.registered, body.fail_next_checks);
        Ok(Response::new(proto::SetRegisteredResponse {
            contact_queries,
            numbers_checked,
        }))
    }

    async fn rate_limit(
        &self,
        request: Request<proto::RateLimitRequest>,
    ) -> Result<Response<proto::RateLimitResponse>, Status> {
        let id = SessionId::parse(&request.get_ref().session_id)?;
        self.emulator.rate_limit(&id).await?;
        tracing::info!(session_id = %id, "emulated whatsapp rate-limited the connection (429)");
        Ok(Response::new(proto::RateLimitResponse {}))
    }
}
