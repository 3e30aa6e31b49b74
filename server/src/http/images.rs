//! Images as served to the app and the console alike: JPEG, cached privately for a year
//! (content-addressed, so never stale), with a strong entity tag.

use actix_web::http::header::{self, CacheControl, CacheDirective, ContentType, EntityTag};
use actix_web::HttpResponse;
use bytes::Bytes;

use crate::error::{ApiError, ApiResult};

/// A JPEG answer with `etag` as its strong entity tag.
pub fn image_response(bytes: Bytes, etag: String) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok()
        .insert_header(ContentType(
            "image/jpeg".parse().map_err(ApiError::internal)?,
        ))
        .insert_header(CacheControl(vec![
            CacheDirective::Private,
            CacheDirective::MaxAge(31_536_000),
            CacheDirective::Extension("immutable".into(), None),
        ]))
        .insert_header(header::ETag(EntityTag::new_strong(etag)))
        .body(bytes))
}
