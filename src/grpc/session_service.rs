//! `SessionService`: parses, calls the door into the sessions, converts.

use std::time::Duration;

use tonic::{Request, Response, Status};

use super::{
    convert::{self, image_kind},
    deadline::caller_deadline,
    event_service::{self, LogSlot},
    media, outbound,
    streams::{self, WireStream},
};
use crate::{
    domain::{input, QrRequest, SessionId},
    error::SessionError,
    link::{self, LinkIssuer},
    proto::{self, session_service_server::SessionService},
    registry::Sessions,
    transfer::MediaSettings,
};

/// Serves `SessionService` through the door into the sessions.
#[derive(Clone)]
pub struct SessionApi {
    /// Where calls go.
    sessions: Sessions,
    /// Makes link page URLs (CreateLinkUrl); None when the page is switched off.
    links: Option<LinkIssuer>,
    /// The event log, once open: GetMessageStatus reads the outbound log there.
    log: LogSlot,
    /// UploadMedia's caps and handle lifetime, and where its temp files go.
    media: MediaSettings,
}

impl SessionApi {
    /// Serves `sessions`; GetMessageStatus reads the log in `log` once it is there.
    pub fn new(sessions: Sessions, log: LogSlot, media: MediaSettings) -> Self {
        Self {
            sessions,
            links: None,
            log,
            media,
        }
    }

    /// Serves CreateLinkUrl with `links` (None: FAILED_PRECONDITION, page switched off).
    pub fn with_links(mut self, links: Option<LinkIssuer>) -> Self {
        self.links = links;
        self
    }
}

impl SessionApi {
    /// Revokes `id`'s links after an operator stopped or logged it out (a new link is
    /// needed to pair again); nothing to do without a link page.
    async fn revoke_links_of(&self, id: &SessionId) -> Result<(), SessionError> {
        match &self.links {
            Some(links) => links.revoke(id).await.map(drop),
            None => Ok(()),
        }
    }

    /// The event log; UNAVAILABLE until the daemon has restored its state.
    fn log(&self) -> Result<&crate::events::EventLog, SessionError> {
        event_service::restored(&self.log)
    }
}

fn qr_request<T>(request: &Request<T>, min_validity: Duration, may_refresh: bool) -> QrRequest {
    QrRequest {
        min_validity,
        may_refresh,
        deadline: caller_deadline(request),
    }
}

#[tonic::async_trait]
impl SessionService for SessionApi {
    type WatchSessionStream = WireStream<proto::Session>;
    type WatchSessionsStream = WireStream<proto::SessionEvent>;
    type DownloadMediaStream = WireStream<proto::MediaChunk>;

    async fn upload_media(
        &self,
        request: Request<tonic::Streaming<proto::UploadMediaRequest>>,
    ) -> Result<Response<proto::MediaHandle>, Status> {
        let log = self.log()?.clone();
        let handle = media::upload(&self.media, &self.sessions, &log, request.into_inner()).await?;
        Ok(Response::new(handle))
    }

    async fn download_media(
        &self,
        request: Request<proto::DownloadMediaRequest>,
    ) -> Result<Response<Self::DownloadMediaStream>, Status> {
        let log = self.log()?.clone();
        let stream = media::download(&self.media, &self.sessions, &log, request.into_inner()).await?;
        Ok(Response::new(stream))
    }

    async fn watch_session(
        &self,
        request: Request<proto::WatchSessionRequest>,
    ) -> Result<Response<Self::WatchSessionStream>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let image = image_kind(body.qr_image)?;
        let keep_fresh = body.keep_qr_fresh;
        let changes = self.sessions.watch(id, keep_fresh).await?;
        Ok(Response::new(streams::session_changes(changes, image)))
    }

    async fn watch_sessions(
        &self,
        _: Request<proto::WatchSessionsRequest>,
    ) -> Result<Response<Self::WatchSessionsStream>, Status> {
        let (current, changes) = self.sessions.watch_all().await?;
        Ok(Response::new(streams::all_changes(current, changes)))
    }

    async fn disconnect_session(
        &self,
        request: Request<proto::DisconnectSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let id = SessionId::parse(&request.get_ref().session_id)?;
        let view = self.sessions.disconnect(id.clone()).await?;
        self.revoke_links_of(&id).await?;
        Ok(Response::new(convert::session(view, None)?))
    }

    async fn connect_session(
        &self,
        request: Request<proto::ConnectSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let qr = qr_request(&request, Duration::ZERO, true);
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let image = image_kind(body.qr_image)?;
        let view = self.sessions.connect(id, qr).await?;
        Ok(Response::new(convert::session(view, image)?))
    }

    async fn logout_session(
        &self,
        request: Request<proto::LogoutSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let id = SessionId::parse(&request.get_ref().session_id)?;
        let view = self.sessions.logout(id.clone()).await?;
        self.revoke_links_of(&id).await?;
        Ok(Response::new(convert::session(view, None)?))
    }

    async fn delete_session(
        &self,
        request: Request<proto::DeleteSessionRequest>,
    ) -> Result<Response<proto::DeleteSessionResponse>, Status> {
        let id = SessionId::parse(&request.get_ref().session_id)?;
        self.sessions.delete(id).await?;
        Ok(Response::new(proto::DeleteSessionResponse {}))
    }

    async fn send_text_message(
        &self,
        request: Request<proto::SendTextMessageRequest>,
    ) -> Result<Response<proto::SendTextMessageResponse>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let to = input::recipient(&body.to)?;
        input::text(&body.text)?;
        // The same path as SendMessage: in the outbound log, SERVER_ACK and receipts
        // followed, without a key.
        let text = body.text;
        let receipt = self.sessions.send_text(id, to, text).await?;
        Ok(Response::new(proto::SendTextMessageResponse {
            message_id: receipt.message_id,
            sent_at: Some(convert::timestamp(receipt.sent_at)),
        }))
    }

    async fn send_message(
        &self,
        request: Request<proto::SendMessageRequest>,
    ) -> Result<Response<proto::SendMessageResponse>, Status> {
        let (id, input) = outbound::send_input(request.into_inner())?;
        let answer = self.sessions.send_message(id, input).await?;
        Ok(Response::new(proto::SendMessageResponse {
            message_id: answer.message_id,
            status: answer.status as i32,
            accepted_at: Some(convert::timestamp(answer.accepted_at)),
        }))
    }

    async fn get_message_status(
        &self,
        request: Request<proto::GetMessageStatusRequest>,
    ) -> Result<Response<proto::MessageStatusInfo>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let (key, by_client) = outbound::status_key(&body)?;
        self.sessions.peek(id.clone()).await?;
        let row = self
            .log()?
            .outbound(id.as_str(), &key, by_client)
            .await
            .map_err(|e| SessionError::Unavailable(format!("could not read the outbound log ({e}): retry")))?;
        let what = if by_client { "client_message_id" } else { "message_id" };
        let row = row.ok_or_else(|| {
            SessionError::Missing(format!(
                "session {id} sent no message with {what} {key:?}: check the id"
            ))
        })?;
        Ok(Response::new(outbound::status_info(row)))
    }

    async fn send_chat_state(
        &self,
        request: Request<proto::SendChatStateRequest>,
    ) -> Result<Response<proto::SendChatStateResponse>, Status> {
        let (id, to, content) = outbound::chat_state(request.get_ref())?;
        self.sessions.send_signal(id, to, content).await?;
        Ok(Response::new(proto::SendChatStateResponse {}))
    }

    async fn mark_read(
        &self,
        request: Request<proto::MarkReadRequest>,
    ) -> Result<Response<proto::MarkReadResponse>, Status> {
        let (id, chat, content) = outbound::mark_read(request.into_inner())?;
        self.sessions.send_signal(id, chat, content).await?;
        Ok(Response::new(proto::MarkReadResponse {}))
    }

    async fn get_account_health(
        &self,
        request: Request<proto::GetAccountHealthRequest>,
    ) -> Result<Response<proto::AccountHealth>, Status> {
        let id = SessionId::parse(&request.get_ref().session_id)?;
        self.sessions.peek(id.clone()).await?;
        let health = self
            .log()?
            .account_health(id.as_str())
            .await
            .map_err(|e| SessionError::Unavailable(format!("could not read the account's health ({e}): retry")))?;
        Ok(Response::new(health))
    }

    async fn request_pairing_code(
        &self,
        request: Request<proto::RequestPairingCodeRequest>,
    ) -> Result<Response<proto::PairingCode>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let phone = input::phone_number(&body.phone_number)?;
        let code = self.sessions.request_pairing_code(id, phone).await?;
        Ok(Response::new(proto::PairingCode {
            code: code.code,
            expires_at: Some(convert::timestamp(code.expires_at)),
        }))
    }

    async fn create_session(
        &self,
        request: Request<proto::CreateSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let qr = qr_request(&request, Duration::ZERO, true);
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let image = image_kind(body.qr_image)?;
        let labels = input::labels(body.labels)?;
        let view = self.sessions.create(id, labels, qr).await?;
        Ok(Response::new(convert::session(view, image)?))
    }

    async fn get_session(
        &self,
        request: Request<proto::GetSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let min_validity = convert::duration(request.get_ref().min_qr_validity, "min_qr_validity")?;
        let qr = qr_request(&request, min_validity, !request.get_ref().no_refresh);
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let image = image_kind(body.qr_image)?;
        let view = self.sessions.get(id, qr).await?;
        Ok(Response::new(convert::session(view, image)?))
    }

    async fn list_sessions(
        &self,
        request: Request<proto::ListSessionsRequest>,
    ) -> Result<Response<proto::ListSessionsResponse>, Status> {
        let body = request.into_inner();
        let status = convert::status_filter(body.status)?;
        let page_size = input::page_size(body.page_size)?;
        let after = input::page_token(&body.page_token)?;
        let (views, next) = self.sessions.list(status, page_size, after).await?;
        let sessions = views
            .into_iter()
            .map(|view| convert::session(view, None))
            .collect::<Result<_, _>>()?;
        let next_page_token = next.as_ref().map(input::next_page_token).unwrap_or_default();
        Ok(Response::new(proto::ListSessionsResponse {
            sessions,
            next_page_token,
        }))
    }

    async fn create_link_url(
        &self,
        request: Request<proto::CreateLinkUrlRequest>,
    ) -> Result<Response<proto::CreateLinkUrlResponse>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let links = self.links.as_ref().ok_or_else(link::disabled)?;
        let order = links.order(convert::duration(body.ttl, "ttl")?, &body.redirect_url)?;
        let view = self.sessions.peek(id).await?;
        let issued = links.issue(&view, order, std::time::SystemTime::now());
        Ok(Response::new(proto::CreateLinkUrlResponse {
            url: issued.url,
            expires_at: Some(convert::timestamp(issued.expires_at)),
        }))
    }

    async fn revoke_links(
        &self,
        request: Request<proto::RevokeLinksRequest>,
    ) -> Result<Response<proto::RevokeLinksResponse>, Status> {
        let id = SessionId::parse(&request.get_ref().session_id)?;
        let links = self.links.as_ref().ok_or_else(link::disabled)?;
        self.sessions.peek(id.clone()).await?;
        let link_generation = links.revoke(&id).await?;
        Ok(Response::new(proto::RevokeLinksResponse {
            revoked_at: Some(convert::timestamp(std::time::SystemTime::now())),
            link_generation,
        }))
    }

    async fn refresh_qr(&self, request: Request<proto::RefreshQrRequest>) -> Result<Response<proto::Session>, Status> {
        let qr = qr_request(&request, Duration::ZERO, true);
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let image = image_kind(body.qr_image)?;
        let view = self.sessions.refresh_qr(id, qr).await?;
        Ok(Response::new(convert::session(view, image)?))
    }
}
