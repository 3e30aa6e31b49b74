//! Photos for the API and the console: the upload (intake: hash, limits, decode, analysis,
//! storage), whether the caller uploaded one, and a photo or its thumbnail for those who may
//! see it.

use std::future::Future;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::db::{self, PhotoRow};
use super::decode::{self, DecodeError};
use super::intake::{self, IntakeError};
use super::store::Variant;
use super::{thumbnail, DecodeBudget, PhotoSettings, PhotoStore};
use crate::auth::Caller;
use crate::db::Db;
use crate::domain::{PhotoFormat, Role};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// What photo requests need: the database, the object store, the decode budget and the limits.
#[derive(Clone, Copy)]
pub struct Photos<'a> {
    pub db: &'a Db,
    pub objects: &'a PhotoStore,
    pub budget: &'a DecodeBudget,
    pub settings: &'a PhotoSettings,
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

/// A photo's SHA-256, 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256(String);

impl Sha256 {
    /// Parses a hash named in a path (any case): 400 `invalid_path` otherwise.
    pub fn parse(raw: &str) -> ApiResult<Sha256> {
        let sha = raw.to_ascii_lowercase();
        if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Sha256(sha))
        } else {
            Err(ApiError::BadRequest {
                code: ErrorCode::InvalidPath,
                detail: "sha256：须为 64 位十六进制数".into(),
                field: Some("sha256".into()),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn refused(error: IntakeError) -> ApiError {
    ApiError::field("body", error.rule(), error.to_string())
}

fn store_error(error: anyhow::Error) -> ApiError {
    tracing::error!(error = format!("{error:#}"), "photo store");
    ApiError::Unavailable("photo store".into())
}

/// Whether the caller uploaded this photo (404 when not: someone else's is not revealed).
pub async fn exists(db: &Db, caller: &Caller, sha: &Sha256) -> ApiResult<()> {
    let (sha, user) = (sha.0.clone(), caller.user_id.clone());
    let mine = db
        .run(move |conn| Ok(db::uploaded_by(conn, &sha, &user)?))
        .await?;
    if mine {
        Ok(())
    } else {
        Err(ApiError::NotFound("照片不存在".into()))
    }
}

/// Who uploads photos: enumerators and first secretaries (403 for everyone else). Every upload
/// checks it; handlers may ask first, to refuse before they look at the request.
pub fn require_uploader(caller: &Caller) -> ApiResult<()> {
    caller.require_role(&[Role::Enumerator, Role::FirstSecretary])
}

/// An upload's outcome: whether the photo was stored now, and what the server read from it.
#[derive(Debug)]
pub struct Uploaded {
    pub created: bool,
    pub info: PhotoInfo,
}

/// Takes a photo under its SHA-256. `body` reads the request body (its limit is the caller's
/// to enforce) and is called only when the bytes are needed: a photo the caller already
/// uploaded is answered at once. One stored from another user's upload is recorded as theirs
/// too once the bytes match its hash; a new one is checked, analysed and stored, bytes first,
/// row second, so it is visible only once both exist.
pub async fn upload<F, Fut>(
    photos: Photos<'_>,
    caller: &Caller,
    sha: &Sha256,
    body: F,
) -> ApiResult<Uploaded>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ApiResult<Bytes>>,
{
    require_uploader(caller)?;
    let now = Utc::now();
    let lookup = (sha.0.clone(), caller.user_id.clone());
    let (existing, mine) = photos
        .db
        .run(move |conn| {
            let row = db::find(conn, &lookup.0)?;
            let mine = row.is_some() && db::uploaded_by(conn, &lookup.0, &lookup.1)?;
            Ok((row, mine))
        })
        .await?;
    match existing {
        Some(row) if mine => Ok(Uploaded {
            created: false,
            info: PhotoInfo::from(&row),
        }),
        Some(row) => {
            join_upload(photos, caller, sha, body().await?, now).await?;
            Ok(Uploaded {
                created: false,
                info: PhotoInfo::from(&row),
            })
        }
        None => store_new(photos, caller, sha, body().await?, now).await,
    }
}

/// Stored from someone else's upload: this user becomes an uploader only by sending the same
/// bytes, so knowing a photo's hash is not enough to use it. The bytes are checked against the
/// hash, not decoded again.
async fn join_upload(
    photos: Photos<'_>,
    caller: &Caller,
    sha: &Sha256,
    bytes: Bytes,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let actual = intake::sha256_hex(&bytes);
    if actual != sha.0 {
        return Err(refused(IntakeError::Sha256Mismatch {
            claimed: sha.0.clone(),
            actual,
        }));
    }
    let (sha, user) = (sha.0.clone(), caller.user_id.clone());
    photos
        .db
        .write(move |conn| Ok(db::record_upload(conn, &sha, &user, now)?))
        .await
}

/// A photo new to the server: checked against the limits, decoded within the budget,
/// analysed, then stored.
async fn store_new(
    photos: Photos<'_>,
    caller: &Caller,
    sha: &Sha256,
    bytes: Bytes,
    now: DateTime<Utc>,
) -> ApiResult<Uploaded> {
    let claimed = sha.0.clone();
    let body = bytes.clone();
    let image_limits = photos.settings.image_limits();
    let checked = tokio::task::spawn_blocking(move || {
        intake::check(&body, &claimed, &image_limits).map(|checked| (body, checked))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(refused)?;
    let (body, checked) = checked;
    let reservation = photos.budget.reserve(checked.decode_bytes()).await?;
    let analysis = tokio::task::spawn_blocking(move || {
        let _reservation = reservation;
        intake::describe(&body, checked)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(refused)?;

    photos
        .objects
        .put(&sha.0, Variant::Original, bytes)
        .await
        .map_err(store_error)?;
    let user_id = caller.user_id.clone();
    let (created, row) = photos
        .db
        .write(move |conn| {
            let created = db::insert(conn, &analysis, &user_id, now)?;
            let row = db::find(conn, &analysis.sha256)?
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("photo row vanished")))?;
            Ok((created, row))
        })
        .await?;
    tracing::info!(sha256 = %row.sha256, created, "photo upload");
    Ok(Uploaded {
        created,
        info: PhotoInfo::from(&row),
    })
}

/// A photo's bytes as served, with the strong entity tag of that variant.
#[derive(Debug)]
pub struct Image {
    pub bytes: Bytes,
    pub etag: String,
}

/// The photo or its thumbnail, for its uploaders and for users whose scope covers a
/// submission that names it; everyone else gets 404.
pub async fn get(
    photos: Photos<'_>,
    caller: &Caller,
    sha: &Sha256,
    variant: Variant,
) -> ApiResult<Image> {
    let (lookup, caller) = (sha.0.clone(), caller.clone());
    let row = photos
        .db
        .run(move |conn| {
            let row = db::find(conn, &lookup)?;
            match row {
                Some(row) if db::may_see(conn, &lookup, &caller)? => Ok(row),
                _ => Err(ApiError::NotFound("照片不存在".into())),
            }
        })
        .await?;
    let sha = &sha.0;
    match variant {
        Variant::Original => {
            let bytes = photos
                .objects
                .get(sha, Variant::Original)
                .await
                .map_err(store_error)?;
            let bytes = bytes.ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("photo {sha} has a row but no bytes"))
            })?;
            Ok(Image {
                bytes,
                etag: sha.clone(),
            })
        }
        Variant::Thumbnail => Ok(Image {
            bytes: thumbnail_of(&photos, &row).await?,
            etag: format!("{sha}-thumb"),
        }),
    }
}

/// The stored thumbnail, made and kept beside the original on first request. The decode
/// reserves its memory like an upload's, so many thumbnail requests at once wait or get 503.
async fn thumbnail_of(photos: &Photos<'_>, row: &PhotoRow) -> ApiResult<Bytes> {
    let sha = row.sha256.as_str();
    if let Some(thumb) = photos
        .objects
        .get(sha, Variant::Thumbnail)
        .await
        .map_err(store_error)?
    {
        return Ok(thumb);
    }
    let original = photos
        .objects
        .get(sha, Variant::Original)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("photo {sha} has a row but no bytes")))?;
    let failed = |e: DecodeError| ApiError::internal(anyhow::anyhow!("thumbnail of {sha}: {e}"));
    // Checked again: the limits may have been lowered since the photo was stored.
    let limits = photos.settings.image_limits();
    let (original, frame) = tokio::task::spawn_blocking(move || {
        let frame = decode::inspect(&original)?;
        frame.check(&limits)?;
        Ok((original, frame))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(failed)?;
    let reservation = photos
        .budget
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
    photos
        .objects
        .put(sha, Variant::Thumbnail, thumb.clone())
        .await
        .map_err(store_error)?;
    Ok(thumb)
}
