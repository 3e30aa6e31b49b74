//! HTTP plumbing shared by every route: request ids and observation, limits on clients and
//! request bodies, security headers, cached image answers, body and query extractors that
//! answer in problem+json, the one rule for control characters in text, the fallback for
//! unknown routes.

mod caller;
pub mod export;
mod extract;
mod headers;
mod images;
pub mod limits;
mod observe;
pub mod text;

pub use crate::error::bad_query;
pub use caller::{load_caller, load_session, Auth, AuthForPasswordChange, PASSWORD_CHANGE_PATHS};
pub use extract::{declared_length, read_limited, ApiJson, ApiJsonValue, ApiQuery, JsonLimit};
pub use headers::security_headers;
pub use images::image_response;
pub use limits::{limit, ClientLimits};
pub use observe::observe;
pub use text::{refuse_control_characters, PageRefusals};

use actix_web::{HttpRequest, HttpResponse};

use crate::error::ApiError;

/// Answers requests no route took: 405 when the path exists with another method, else 404.
pub async fn fallback(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if req.match_pattern().is_some() {
        Err(ApiError::MethodNotAllowed)
    } else {
        Err(ApiError::NotFound(format!("没有这个地址：{}", req.path())))
    }
}

/// The client's address for rate limits: the peer, or the `Forwarded`/`X-Forwarded-For`
/// address when the server is configured to trust its proxy.
pub fn client_addr(req: &HttpRequest, trust_proxy_headers: bool) -> String {
    let info = req.connection_info();
    let addr = if trust_proxy_headers {
        info.realip_remote_addr()
    } else {
        info.peer_addr()
    };
    addr.map(|a| {
        // Drop the port: a client reconnecting gets a new one.
        a.parse::<std::net::SocketAddr>()
            .map(|s| s.ip().to_string())
            .unwrap_or_else(|_| a.to_owned())
    })
    .unwrap_or_else(|| "unknown".into())
}
