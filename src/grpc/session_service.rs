//! `SessionService`: validates and converts, then asks the registry.

use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as TOKEN, Engine};
use ractor::{rpc::CallResult, RpcReplyPort};
use tonic::{Request, Response, Status};

use super::{
    convert::{self, image_kind},
    deadline::caller_deadline,
    streams::{self, WireStream},
};
use crate::{
    error::SessionError,
    link::{self, LinkIssuer},
    proto::{self, session_service_server::SessionService},
    registry::{RegistryHandle, RegistryMsg},
    session::{actor::SessionMsg, input, waiters::QrRequest, SessionId},
};

fn forward(id: SessionId, msg: SessionMsg) -> RegistryMsg {
    RegistryMsg::Forward { id, msg }
}

/// The default and the largest page of ListSessions.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// Labels per session, and the longest key or value.
const MAX_LABELS: usize = 64;
const MAX_LABEL_LEN: usize = 256;

/// Serves `SessionService` on top of the registry.
#[derive(Clone)]
pub struct SessionApi {
    /// Where requests go (once sessions are restored).
    registry: RegistryHandle,
    /// The longest any session request may wait server-side, plus slack: the bound of
    /// every call to the registry.
    call_bound: Duration,
    /// Makes link page URLs (CreateLinkUrl); None when the page is switched off.
    links: Option<LinkIssuer>,
}

impl SessionApi {
    /// `longest_wait`: the larger of the QR and refresh timeouts.
    pub fn new(registry: RegistryHandle, longest_wait: Duration) -> Self {
        Self {
            registry,
            call_bound: longest_wait + Duration::from_secs(2),
            links: None,
        }
    }

    /// Serves CreateLinkUrl with `links` (None: FAILED_PRECONDITION, page switched off).
    pub fn with_links(mut self, links: Option<LinkIssuer>) -> Self {
        self.links = links;
        self
    }

    /// Sends a request to the registry and waits (bounded) for the answer.
    async fn ask<T: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<Result<T, SessionError>>) -> RegistryMsg,
    ) -> Result<T, Status> {
        let registry = self.registry.get().map_err(Status::from)?;
        let answer = registry.call(build, Some(self.call_bound)).await;
        let result = match answer {
            Ok(CallResult::Success(result)) => result,
            Ok(CallResult::Timeout) => Err(SessionError::DeadlineExceeded(
                "the session did not answer in time: retry".into(),
            )),
            Ok(CallResult::SenderError) => Err(SessionError::Unavailable(
                "the session stopped while answering (restarting or shutting down): retry".into(),
            )),
            Err(_) => Err(SessionError::Unavailable(
                "wa-sessiond is shutting down: retry on another instance".into(),
            )),
        };
        result.map_err(Status::from)
    }
}

fn qr_request<T>(request: &Request<T>, min_validity: Duration, may_refresh: bool) -> QrRequest {
    QrRequest {
        min_validity,
        may_refresh,
        deadline: caller_deadline(request),
    }
}

fn labels(
    raw: std::collections::HashMap<String, String>,
) -> Result<std::collections::BTreeMap<String, String>, SessionError> {
    let too_long = raw
        .iter()
        .any(|(k, v)| k.is_empty() || k.len() > MAX_LABEL_LEN || v.len() > MAX_LABEL_LEN);
    if raw.len() > MAX_LABELS || too_long {
        return Err(SessionError::InvalidArgument(format!(
            "labels are invalid: at most {MAX_LABELS}, keys non-empty, keys and values at most {MAX_LABEL_LEN} bytes"
        )));
    }
    Ok(raw.into_iter().collect())
}

#[tonic::async_trait]
impl SessionService for SessionApi {
    type WatchSessionStream = WireStream<proto::Session>;
    type WatchSessionsStream = WireStream<proto::SessionEvent>;

    async fn watch_session(
        &self,
        request: Request<proto::WatchSessionRequest>,
    ) -> Result<Response<Self::WatchSessionStream>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let image = image_kind(body.qr_image)?;
        let keep_fresh = body.keep_qr_fresh;
        let changes = self
            .ask(|reply| forward(id, SessionMsg::Watch { keep_fresh, reply }))
            .await?;
        Ok(Response::new(streams::session_changes(changes, image)))
    }

    async fn watch_sessions(
        &self,
        _: Request<proto::WatchSessionsRequest>,
    ) -> Result<Response<Self::WatchSessionsStream>, Status> {
        let (current, changes) = self.ask(|reply| RegistryMsg::WatchAll { reply }).await?;
        Ok(Response::new(streams::all_changes(current, changes)))
    }

    async fn disconnect_session(
        &self,
        request: Request<proto::DisconnectSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let id = SessionId::parse(&request.get_ref().session_id)?;
        let view = self.ask(|reply| forward(id, SessionMsg::Disconnect(reply))).await?;
        Ok(Response::new(convert::session(&view, None)?))
    }

    async fn connect_session(
        &self,
        request: Request<proto::ConnectSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let qr = qr_request(&request, Duration::ZERO, true);
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let image = image_kind(body.qr_image)?;
        let view = self
            .ask(|reply| forward(id, SessionMsg::Connect { request: qr, reply }))
            .await?;
        Ok(Response::new(convert::session(&view, image)?))
    }

    async fn logout_session(
        &self,
        request: Request<proto::LogoutSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let id = SessionId::parse(&request.get_ref().session_id)?;
        let view = self.ask(|reply| forward(id, SessionMsg::Logout(reply))).await?;
        Ok(Response::new(convert::session(&view, None)?))
    }

    async fn delete_session(
        &self,
        request: Request<proto::DeleteSessionRequest>,
    ) -> Result<Response<proto::DeleteSessionResponse>, Status> {
        let id = SessionId::parse(&request.get_ref().session_id)?;
        self.ask(|reply| RegistryMsg::Delete { id, reply }).await?;
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
        let text = body.text;
        let receipt = self
            .ask(|reply| forward(id, SessionMsg::SendText { to, text, reply }))
            .await?;
        Ok(Response::new(proto::SendTextMessageResponse {
            message_id: receipt.message_id,
            sent_at: Some(convert::timestamp(receipt.sent_at)),
        }))
    }

    async fn request_pairing_code(
        &self,
        request: Request<proto::RequestPairingCodeRequest>,
    ) -> Result<Response<proto::PairingCode>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let phone = input::phone_number(&body.phone_number)?;
        let code = self
            .ask(|reply| forward(id, SessionMsg::RequestPairingCode { phone, reply }))
            .await?;
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
        let labels = labels(body.labels)?;
        let view = self
            .ask(|reply| RegistryMsg::Create {
                id,
                labels,
                request: qr,
                reply,
            })
            .await?;
        Ok(Response::new(convert::session(&view, image)?))
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
        let view = self
            .ask(|reply| forward(id, SessionMsg::Get { request: qr, reply }))
            .await?;
        Ok(Response::new(convert::session(&view, image)?))
    }

    async fn list_sessions(
        &self,
        request: Request<proto::ListSessionsRequest>,
    ) -> Result<Response<proto::ListSessionsResponse>, Status> {
        let body = request.into_inner();
        let status = convert::status_filter(body.status)?;
        let page_size = match body.page_size {
            0 => DEFAULT_PAGE,
            n if n < 0 => {
                return Err(SessionError::InvalidArgument("page_size must not be negative".into()).into());
            }
            n => (n as usize).min(MAX_PAGE),
        };
        let after = page_token(&body.page_token)?;
        let (views, next) = self
            .ask(|reply| RegistryMsg::List {
                status,
                page_size,
                after,
                reply,
            })
            .await?;
        let sessions = views
            .iter()
            .map(|view| convert::session(view, None))
            .collect::<Result<_, _>>()?;
        let next_page_token = next.map(|id| TOKEN.encode(id)).unwrap_or_default();
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
        let peek = QrRequest {
            min_validity: Duration::ZERO,
            may_refresh: false,
            deadline: None,
        };
        let view = self
            .ask(|reply| forward(id, SessionMsg::Get { request: peek, reply }))
            .await?;
        let issued = links.issue(&view, order, std::time::SystemTime::now());
        Ok(Response::new(proto::CreateLinkUrlResponse {
            url: issued.url,
            expires_at: Some(convert::timestamp(issued.expires_at)),
        }))
    }

    async fn refresh_qr(&self, request: Request<proto::RefreshQrRequest>) -> Result<Response<proto::Session>, Status> {
        let qr = qr_request(&request, Duration::ZERO, true);
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let image = image_kind(body.qr_image)?;
        let view = self
            .ask(|reply| forward(id, SessionMsg::RefreshQr { request: qr, reply }))
            .await?;
        Ok(Response::new(convert::session(&view, image)?))
    }
}

/// Decodes a page token (the last id of the previous page).
fn page_token(token: &str) -> Result<Option<SessionId>, SessionError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid =
        || SessionError::InvalidArgument("page_token is invalid: pass the next_page_token of the previous page".into());
    let bytes = TOKEN.decode(token).map_err(|_| invalid())?;
    let id = String::from_utf8(bytes).map_err(|_| invalid())?;
    SessionId::parse(&id).map(Some).map_err(|_| invalid())
}
