//! Photo rows: what was read from each photo, who uploaded it, which submissions name it.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeZone, Utc};
use diesel::prelude::*;

use super::intake::Analysis;
use crate::auth::Caller;
use crate::db::schema::{photo_links, photo_uploads, photos};
use crate::db::{write_transaction, DbConnection};
use crate::error::ApiResult;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = photos, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct PhotoRow {
    pub sha256: String,
    pub format: String,
    pub byte_size: i64,
    pub width: i32,
    pub height: i32,
    pub orientation: i32,
    pub taken_at: Option<NaiveDateTime>,
    pub taken_offset_minutes: Option<i32>,
    pub exif_lat: Option<f64>,
    pub exif_lon: Option<f64>,
    pub phash: i64,
    pub created_at: NaiveDateTime,
}

impl PhotoRow {
    pub fn taken_at(&self) -> Option<DateTime<FixedOffset>> {
        let offset = FixedOffset::east_opt(self.taken_offset_minutes? * 60)?;
        Some(offset.from_utc_datetime(&self.taken_at?))
    }

    pub fn orientation(&self) -> u16 {
        u16::try_from(self.orientation).unwrap_or(1)
    }
}

pub fn find(conn: &mut DbConnection, sha256: &str) -> QueryResult<Option<PhotoRow>> {
    photos::table
        .find(sha256)
        .select(PhotoRow::as_select())
        .first(conn)
        .optional()
}

/// Whether `user_id` has uploaded the photo.
pub fn uploaded_by(conn: &mut DbConnection, sha256: &str, user_id: &str) -> QueryResult<bool> {
    Ok(photo_uploads::table
        .find((sha256, user_id))
        .count()
        .get_result::<i64>(conn)?
        > 0)
}

/// Of the named photos, those `user_id` has uploaded: the only ones their submissions may
/// name. Anyone else's photo answers as missing, so its existence is not revealed.
pub fn uploaded_of(
    conn: &mut DbConnection,
    sha256s: &[String],
    user_id: &str,
) -> QueryResult<Vec<String>> {
    photo_uploads::table
        .filter(photo_uploads::photo_sha256.eq_any(sha256s))
        .filter(photo_uploads::user_id.eq(user_id))
        .select(photo_uploads::photo_sha256)
        .load(conn)
}

/// Records that `user_id` uploaded the photo (again); a no-op when already recorded.
pub fn record_upload(
    conn: &mut DbConnection,
    sha256: &str,
    user_id: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    if !uploaded_by(conn, sha256, user_id)? {
        let inserted = diesel::insert_into(photo_uploads::table)
            .values((
                photo_uploads::photo_sha256.eq(sha256),
                photo_uploads::user_id.eq(user_id),
                photo_uploads::uploaded_at.eq(now.naive_utc()),
            ))
            .execute(conn);
        match inserted {
            // The same user uploading twice at once: the other request recorded it.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// Stores a new photo's row and its first upload. Returns `false` when another request stored
/// the same photo first (the unique key decides), in which case only the upload is recorded.
pub fn insert(
    conn: &mut DbConnection,
    a: &Analysis,
    user_id: &str,
    now: DateTime<Utc>,
) -> ApiResult<bool> {
    let inserted = write_transaction(conn, |conn| {
        diesel::insert_into(photos::table)
            .values((
                photos::sha256.eq(&a.sha256),
                photos::format.eq(a.format.as_str()),
                photos::byte_size.eq(a.byte_size as i64),
                photos::width.eq(a.width as i32),
                photos::height.eq(a.height as i32),
                photos::orientation.eq(i32::from(a.orientation)),
                photos::taken_at.eq(a.taken_at.map(|t| t.naive_utc())),
                photos::taken_offset_minutes
                    .eq(a.taken_at.map(|t| t.offset().fix().local_minus_utc() / 60)),
                photos::exif_lat.eq(a.exif_position.map(|p| p.0)),
                photos::exif_lon.eq(a.exif_position.map(|p| p.1)),
                // The hash's 64 bits, reinterpreted: both databases have signed 64-bit integers.
                photos::phash.eq(a.phash as i64),
                photos::created_at.eq(now.naive_utc()),
            ))
            .execute(conn)?;
        record_upload(conn, &a.sha256, user_id, now)?;
        Ok::<_, diesel::result::Error>(true)
    });
    match inserted {
        Ok(done) => Ok(done),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => {
            record_upload(conn, &a.sha256, user_id, now)?;
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether the caller may see the photo: they uploaded it, or their scope covers a village of a
/// submission that names it.
pub fn may_see(conn: &mut DbConnection, sha256: &str, caller: &Caller) -> QueryResult<bool> {
    if uploaded_by(conn, sha256, &caller.user_id)? {
        return Ok(true);
    }
    let villages: Vec<String> = photo_links::table
        .filter(photo_links::photo_sha256.eq(sha256))
        .select(photo_links::village_code)
        .distinct()
        .load(conn)?;
    Ok(villages
        .iter()
        .filter_map(|v| crate::domain::DivisionCode::parse(v).ok())
        .any(|v| caller.can_access_village(&v)))
}

/// Notes that a submission names a photo, for read access by scope. Idempotent.
pub fn link(
    conn: &mut DbConnection,
    sha256: &str,
    submission_id: &str,
    village_code: &str,
) -> QueryResult<()> {
    let known = photo_links::table
        .find((sha256, submission_id))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if !known {
        diesel::insert_into(photo_links::table)
            .values((
                photo_links::photo_sha256.eq(sha256),
                photo_links::submission_id.eq(submission_id),
                photo_links::village_code.eq(village_code),
            ))
            .execute(conn)?;
    }
    Ok(())
}
