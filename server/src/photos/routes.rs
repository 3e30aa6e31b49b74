use actix_web::http::header::{self, CacheControl, CacheDirective, ContentType, EntityTag};
use actix_web::{get, head, put, web, HttpRequest, HttpResponse};
use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::db::{self, PhotoRow};
use super::intake::{self, IntakeError};
use super::store::Variant;
use super::thumbnail;
use crate::auth::Caller;
use crate::domain::{PhotoFormat, Role};
use crate::error::{ApiError, ApiResult, ErrorCode, Problem};
use crate::http::{declared_length, read_limited};
use crate::startup::AppState;

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
            detail: "sha256: must be 64 hexadecimal digits".into(),
            field: Some("sha256".into()),
        })
    }
}

fn declared_format(req: &HttpRequest) -> ApiResult<PhotoFormat> {
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
        Some("image/jpeg") | Some("image/jpg") => Ok(PhotoFormat::Jpeg),
        Some("image/png") => Ok(PhotoFormat::Png),
        Some("image/webp") => Ok(PhotoFormat::Webp),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "a photo is sent as image/jpeg, image/png or image/webp, not {}",
            other.unwrap_or("without a Content-Type")
        ))),
    }
}

fn mime(format: PhotoFormat) -> &'static str {
    match format {
        PhotoFormat::Jpeg => "image/jpeg",
        PhotoFormat::Png => "image/png",
        PhotoFormat::Webp => "image/webp",
    }
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
        Err(ApiError::NotFound("no such photo".into()))
    }
}

/// Uploads a photo under its SHA-256 (field roles).
///
/// The server recomputes the hash and refuses a mismatch. A photo the caller already uploaded
/// answers 200 at once, without reading the body; one stored from another user's upload
/// answers 200 once the body's hash matches (the caller may then name it); a new one answers
/// 201. JPEG, PNG and WebP are
/// accepted (check-ins later require JPEG). The body limit (15 MB by default) is enforced before
/// the body is read whole, the pixel limit (50 megapixels) from the image header before any
/// pixel is decoded. Nothing is stored when anything is refused.
#[utoipa::path(
    tag = "photos",
    security(("bearer" = [])),
    params(("sha256" = String, Path, description = "SHA-256 of the body, 64 hex digits")),
    request_body(content = Vec<u8>, description = "The image bytes", content_type = "image/jpeg"),
    responses(
        (status = 201, description = "Stored now", body = PhotoInfo),
        (status = 200, description = "Already stored: nothing was done", body = PhotoInfo),
        (status = 400, description = "`invalid_path`: not a SHA-256", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: only enumerators and first secretaries upload", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: not image/jpeg, image/png or image/webp", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` on field `body`, rule `sha256_mismatch`, `not_an_image`, `format_mismatch`, `corrupt_image` or `too_many_pixels`", body = Problem, content_type = "application/problem+json"),
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
    let declared = declared_format(&req)?;
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
    let analysis = tokio::task::spawn_blocking(move || {
        intake::analyze(&body, &claimed, declared, limits.max_pixels)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e: IntakeError| ApiError::field("body", e.rule(), e.to_string()))?;

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
        (status = 200, description = "The image (`image/jpeg` for thumbnails)", content_type = "image/jpeg", body = Vec<u8>),
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
                _ => Err(ApiError::NotFound("no such photo".into())),
            }
        })
        .await?;
    let format = row.format()?;
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
            (bytes, mime(format), sha.clone())
        }
        PhotoSize::Thumb => (
            thumbnail_of(&state, &row, format).await?,
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

/// The stored thumbnail, made and kept beside the original on first request.
async fn thumbnail_of(state: &AppState, row: &PhotoRow, format: PhotoFormat) -> ApiResult<Bytes> {
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
    let orientation = row.orientation();
    let max_pixels = state.settings.photos.max_pixels;
    let thumb = tokio::task::spawn_blocking(move || {
        thumbnail::make(&original, format, orientation, max_pixels)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::internal(anyhow::anyhow!("thumbnail of a stored photo: {e}")))?;
    let thumb = Bytes::from(thumb);
    state
        .photos
        .put(sha, Variant::Thumbnail, thumb.clone())
        .await
        .map_err(store_error)?;
    Ok(thumb)
}
