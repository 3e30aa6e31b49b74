//! Headers every answer carries: `X-Content-Type-Options: nosniff`, and `Cache-Control:
//! no-store` unless the route chose its own caching.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;

/// Most answers carry personal data (names, ID numbers, positions, tokens): no shared cache, no
/// browser history may keep them. The few that may be cached say so themselves (photos, private
/// and immutable under their hash; the console's stylesheet and script). `nosniff` keeps a
/// browser from reading JSON or an uploaded photo as HTML or script.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}
