use actix_web::http::header::{self, CacheControl, CacheDirective, ContentType, EntityTag};
use actix_web::{get, head, put, web, HttpRequest, HttpResponse};
use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::db::{self, PhotoRow};
use super::decode::{self, DecodeError};
use super::intake::{self, IntakeError};
use super::store::Variant;
use super::thumbnail;
use crate::auth::Caller;
use crate::domain::{PhotoFormat, Role};
use crate::error::{ApiError, ApiResult, ErrorCode, Problem};
use crate::http::{declared_length, read_limited};
use crate::state::AppState;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(photo_exists)
        .service(upload_photo)
        .service(get_photo);
}

/// What the server read from a stored photo.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhotoInfo {
    #[schema(example = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    pub sha256: String,
    pub format: PhotoFormat,
    pub byte_size: u64,
    pub width: u32,
    pub height: u32,
    /// EXIF orientation, 1–8 (1 when absent).
    pub orientation: u16,
    /// EXIF DateTimeOriginal with the camera's UTC offset (UTC+8 assumed when it gives none).
    pub taken_at: Option<DateTime<FixedOffset>>,
    /// EXIF GPS position, WGS-84.
    pub exif_location: Option<ExifLocation>,
    /// 64-bit DCT perceptual hash, 16 hex digits.
    #[schema(example = "c3a1f0e4b2d69578")]
    pub phash: String,
    /// When the server first stored the photo.
    pub stored_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExifLocation {
    pub lat: f64,
    pub lon: f64,
}

impl From<&PhotoRow> for PhotoInfo {
    fn from(row: &PhotoRow) -> Self {
        Self {
            sha256: row.sha256.clone(),
            format: PhotoFormat::parse(&row.format).unwrap_or(PhotoFormat::Jpeg),
            byte_size: row.byte_size.max(0) as u64,
            width: row.width.max(0) as u32,
            height: row.height.max(0) as u32,
            orientation: row.orientation(),
            taken_at: row.taken_at(),
            exif_location: row
                .exif_lat
                .zip(row.exif_lon)
                .map(|(lat, lon)| ExifLocation { lat, lon }),
            phash: format!("{:016x}", row.phash as u64),
            stored_at: row.created_at.and_utc(),
        }
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

fn parse_sha256(raw: &str) -> ApiResult<String> {
    let sha = raw.to_ascii_lowercase();
    if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha)
    } else {
        Err(ApiError::BadRequest {
            code: ErrorCode::InvalidPath,
            detail: "sha256：须为 64 位十六进制数".into(),
            field: Some("sha256".into()),
        })
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

fn refused(error: IntakeError) -> ApiError {
    ApiError::field("body", error.rule(), error.to_string())
}

fn store_error(error: anyhow::Error) -> ApiError {
    tracing::error!(error = format!("{error:#}"), "photo store");
    ApiError::Unavailable("photo store".into())
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
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let sha = parse_sha256(&path.into_inner())?;
    let user = caller.user_id;
    let mine = state
        .db
        .run(move |conn| Ok(db::uploaded_by(conn, &sha, &user)?))
        .await?;
    if mine {
        Ok(HttpResponse::Ok().finish())
    } else {
        Err(ApiError::NotFound("照片不存在".into()))
    }
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
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    caller.require_role(&[Role::Enumerator, Role::FirstSecretary])?;
    let sha = parse_sha256(&path.into_inner())?;
    require_jpeg(&req)?;
    let limits = state.settings.photos.clone();
    let length = declared_length(&req);
    if length.is_some_and(|n| n > limits.max_bytes) {
        return Err(ApiError::PayloadTooLarge {
            limit: limits.max_bytes,
        });
    }
    let user_id = caller.user_id.clone();
    let now = Utc::now();

    // A photo this user already uploaded: answer without reading the body.
    let lookup = (sha.clone(), user_id.clone());
    let (existing, mine) = state
        .db
        .run(move |conn| {
            let row = db::find(conn, &lookup.0)?;
            let mine = row.is_some() && db::uploaded_by(conn, &lookup.0, &lookup.1)?;
            Ok((row, mine))
        })
        .await?;
    if let (Some(row), true) = (&existing, mine) {
        return Ok(HttpResponse::Ok().json(PhotoInfo::from(row)));
    }

    let mut payload = payload;
    if let Some(row) = existing {
        // Stored from someone else's upload: this user becomes an uploader only by sending the
        // same bytes, so knowing a photo's hash is not enough to use it. The bytes are checked
        // against the hash, not decoded again.
        let bytes = read_limited(&mut payload, limits.max_bytes, length).await?;
        let actual = intake::sha256_hex(&bytes);
        if actual != sha {
            let error = IntakeError::Sha256Mismatch {
                claimed: sha,
                actual,
            };
            return Err(ApiError::field("body", error.rule(), error.to_string()));
        }
        let (sha, user) = (sha.clone(), user_id.clone());
        state
            .db
            .write(move |conn| Ok(db::record_upload(conn, &sha, &user, now)?))
            .await?;
        return Ok(HttpResponse::Ok().json(PhotoInfo::from(&row)));
    }
    let bytes = read_limited(&mut payload, limits.max_bytes, length).await?;
    let claimed = sha.clone();
    let body = bytes.clone();
    let image_limits = limits.image_limits();
    let checked = tokio::task::spawn_blocking(move || {
        intake::check(&body, &claimed, &image_limits).map(|checked| (body, checked))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(refused)?;
    let (body, checked) = checked;
    let reservation = state.decode_budget.reserve(checked.decode_bytes()).await?;
    let analysis = tokio::task::spawn_blocking(move || {
        let _reservation = reservation;
        intake::describe(&body, checked)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(refused)?;

    // Bytes first, row second: a photo is visible (HEAD, GET) only once both exist.
    state
        .photos
        .put(&sha, Variant::Original, bytes)
        .await
        .map_err(store_error)?;
    let (created, row) = state
        .db
        .write(move |conn| {
            let created = db::insert(conn, &analysis, &user_id, now)?;
            let row = db::find(conn, &analysis.sha256)?
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("photo row vanished")))?;
            Ok((created, row))
        })
        .await?;
    tracing::info!(sha256 = %row.sha256, created, "photo upload");
    let mut response = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(response.json(PhotoInfo::from(&row)))
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
    caller: Caller,
    path: web::Path<String>,
    query: crate::http::ApiQuery<PhotoQuery>,
) -> ApiResult<HttpResponse> {
    photo_response(state, caller, path, query).await
}

/// [`get_photo`] as a function, for the console.
pub async fn photo_response(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: crate::http::ApiQuery<PhotoQuery>,
) -> ApiResult<HttpResponse> {
    let sha = parse_sha256(&path.into_inner())?;
    let size = query.0.size.unwrap_or_default();
    let lookup = sha.clone();
    let row = state
        .db
        .run(move |conn| {
            let row = db::find(conn, &lookup)?;
            match row {
                Some(row) if db::may_see(conn, &lookup, &caller)? => Ok(row),
                _ => Err(ApiError::NotFound("照片不存在".into())),
            }
        })
        .await?;
    let (bytes, content_type, tag) = match size {
        PhotoSize::Full => {
            let bytes = state
                .photos
                .get(&sha, Variant::Original)
                .await
                .map_err(store_error)?;
            let bytes = bytes.ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("photo {sha} has a row but no bytes"))
            })?;
            (bytes, "image/jpeg", sha.clone())
        }
        PhotoSize::Thumb => (
            thumbnail_of(&state, &row).await?,
            "image/jpeg",
            format!("{sha}-thumb"),
        ),
    };
    Ok(HttpResponse::Ok()
        .insert_header(ContentType(
            content_type.parse().map_err(ApiError::internal)?,
        ))
        .insert_header(CacheControl(vec![
            CacheDirective::Private,
            CacheDirective::MaxAge(31_536_000),
            CacheDirective::Extension("immutable".into(), None),
        ]))
        .insert_header(header::ETag(EntityTag::new_strong(tag)))
        .body(bytes))
}

/// The stored thumbnail, made and kept beside the original on first request. The decode
/// reserves its memory like an upload's, so many thumbnail requests at once wait or get 503.
async fn thumbnail_of(state: &AppState, row: &PhotoRow) -> ApiResult<Bytes> {
    let sha = row.sha256.as_str();
    if let Some(thumb) = state
        .photos
        .get(sha, Variant::Thumbnail)
        .await
        .map_err(store_error)?
    {
        return Ok(thumb);
    }
    let original = state
        .photos
        .get(sha, Variant::Original)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("photo {sha} has a row but no bytes")))?;
    let failed = |e: DecodeError| ApiError::internal(anyhow::anyhow!("thumbnail of {sha}: {e}"));
    // Checked again: the limits may have been lowered since the photo was stored.
    let limits = state.settings.photos.image_limits();
    let (original, frame) = tokio::task::spawn_blocking(move || {
        let frame = decode::inspect(&original)?;
        frame.check(&limits)?;
        Ok((original, frame))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(failed)?;
    let reservation = state
        .decode_budget
        .reserve(frame.decode_bytes(thumbnail::PURPOSE))
        .await?;
    let orientation = row.orientation();
    let thumb = tokio::task::spawn_blocking(move || {
        let _reservation = reservation;
        thumbnail::make(&original, &frame, orientation)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(failed)?;
    let thumb = Bytes::from(thumb);
    state
        .photos
        .put(sha, Variant::Thumbnail, thumb.clone())
        .await
        .map_err(store_error)?;
    Ok(thumb)
}
