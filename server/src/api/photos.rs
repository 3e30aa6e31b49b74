//! `/photos/{sha256}` (HEAD, PUT, GET): the wire shapes of the photos service — the body's
//! media type and size, the `size` query and the cached image response.

use actix_web::http::header;
use actix_web::{get, head, put, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, Problem};
use crate::http::Auth;
use crate::http::{declared_length, image_response, read_limited, ApiQuery};
use crate::photos::service::{self, PhotoInfo, Photos, Sha256};
use crate::photos::store::Variant;
use crate::state::AppState;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(photo_exists)
        .service(upload_photo)
        .service(get_photo);
}

/// The photo services' resources in the application state.
pub fn photos_of(state: &AppState) -> Photos<'_> {
    Photos {
        db: &state.db,
        objects: &state.photos,
        budget: &state.decode_budget,
        settings: &state.settings.photos,
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PhotoSize {
    /// Longest side 320 px, JPEG, orientation applied.
    Thumb,
    /// The photo as uploaded.
    #[default]
    Full,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PhotoQuery {
    /// `thumb` or `full` (default).
    pub size: Option<PhotoSize>,
}

impl PhotoSize {
    /// The stored object this size is served from.
    pub fn variant(self) -> Variant {
        match self {
            PhotoSize::Thumb => Variant::Thumbnail,
            PhotoSize::Full => Variant::Original,
        }
    }
}

/// Only `image/jpeg` (or the common misspelling `image/jpg`) is taken: phones send JPEG, and
/// JPEG alone can be decoded at 1/8 scale, so its decode memory does not grow with its pixels.
fn require_jpeg(req: &HttpRequest) -> ApiResult<()> {
    let value = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match value.as_deref() {
        Some("image/jpeg") | Some("image/jpg") => Ok(()),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "照片只接受 JPEG（Content-Type: image/jpeg），收到的是 {}",
            other.unwrap_or("没有 Content-Type 的请求")
        ))),
    }
}

/// Whether the caller has uploaded this photo, so the app can skip uploading it again.
///
/// Photos are answered for their own uploaders only: whether someone else stored the same
/// bytes is not revealed (404 either way), and a submission may name only photos its author
/// uploaded.
#[utoipa::path(
    tag = "photos",
    security(("bearer" = [])),
    params(("sha256" = String, Path, description = "SHA-256 of the photo, 64 hex digits")),
    responses(
        (status = 200, description = "Uploaded by the caller"),
        (status = 404, description = "Not uploaded by the caller: upload it"),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[head("/photos/{sha256}")]
pub async fn photo_exists(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let sha = Sha256::parse(&path.into_inner())?;
    service::exists(&state.db, &caller, &sha).await?;
    Ok(HttpResponse::Ok().finish())
}

/// Uploads a photo under its SHA-256 (field roles).
///
/// The server recomputes the hash and refuses a mismatch. A photo the caller already uploaded
/// answers 200 at once, without reading the body; one stored from another user's upload
/// answers 200 once the body's hash matches (the caller may then name it); a new one answers
/// 201. Only JPEG is accepted. The body limit (15 MB by default) is enforced before the body
/// is read whole; before any pixel is decoded, the JPEG's markers are read and the photo is
/// refused if it exceeds the pixel limit (50 megapixels by default), 16384 px a side, a 4:1
/// aspect ratio, 32 scans, the decode-memory limit (128 MiB by default) or 64 pixels per byte
/// of image data beyond the first 2 megapixels. When the server is decoding too many photos at
/// once it answers 503 with `Retry-After`. Nothing is stored when anything is refused.
#[utoipa::path(
    tag = "photos",
    security(("bearer" = [])),
    params(("sha256" = String, Path, description = "SHA-256 of the body, 64 hex digits")),
    request_body(content = inline(crate::domain::Binary), description = "The image bytes", content_type = "image/jpeg"),
    responses(
        (status = 201, description = "Stored now", body = PhotoInfo),
        (status = 200, description = "Already stored: nothing was done", body = PhotoInfo),
        (status = 400, description = "`invalid_path`: not a SHA-256", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: only enumerators and first secretaries upload", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: not image/jpeg", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` on field `body`, rule `sha256_mismatch`, `not_an_image`, `format_mismatch` (another image format), `corrupt_image`, `unsupported_jpeg` (lossless, arithmetic-coded, CMYK…), `too_many_pixels`, `side_too_long`, `aspect_ratio`, `too_many_scans`, `decode_memory` or `implausible_compression`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`: too many photos being decoded now; retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
    )
)]
#[put("/photos/{sha256}")]
pub async fn upload_photo(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    service::require_uploader(&caller)?;
    let sha = Sha256::parse(&path.into_inner())?;
    require_jpeg(&req)?;
    let max_bytes = state.settings.photos.max_bytes;
    let length = declared_length(&req);
    if length.is_some_and(|n| n > max_bytes) {
        return Err(ApiError::PayloadTooLarge { limit: max_bytes });
    }
    let body = move || async move {
        let mut payload = payload;
        read_limited(&mut payload, max_bytes, length).await
    };
    let uploaded = service::upload(photos_of(&state), &caller, &sha, body).await?;
    let mut response = if uploaded.created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(response.json(uploaded.info))
}

/// A photo or its thumbnail, for its uploaders and for users whose scope covers a submission
/// that names it; everyone else gets 404.
#[utoipa::path(
    tag = "photos",
    security(("bearer" = [])),
    params(("sha256" = String, Path, description = "SHA-256 of the photo"), PhotoQuery),
    responses(
        (status = 200, description = "The image, JPEG (thumbnails: longest side 320 px, orientation applied)", content_type = "image/jpeg", body = inline(crate::domain::Binary)),
        (status = 400, description = "`invalid_path` or `invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such photo, or not visible to the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/photos/{sha256}")]
pub async fn get_photo(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    query: ApiQuery<PhotoQuery>,
) -> ApiResult<HttpResponse> {
    let sha = Sha256::parse(&path.into_inner())?;
    let variant = query.0.size.unwrap_or_default().variant();
    let image = service::get(photos_of(&state), &caller, &sha, variant).await?;
    image_response(image.bytes, image.etag)
}
