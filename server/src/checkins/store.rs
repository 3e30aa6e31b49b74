//! Storing a check-in with its flags, inside the transaction that claimed its submission id.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use geo::Point;
use serde_json::{json, Value};

use super::input::Checkin;
use super::policy::CheckinPolicy;
use super::verify::{self, Facts, Neighbour};
use crate::db::schema::{checkins, household_surveys, photo_links, photos, survey_members};
use crate::db::DbConnection;
use crate::domain::{CheckinFlag, CheckinKind, EmploymentStatus};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::photos::phash::distance;
use crate::privacy::Vault;
use crate::surveys::validate::china;
use crate::villages::geofences::Geofences;

/// A stored photo's perceptual hash, EXIF time and EXIF position.
type PhotoFacts = (i64, Option<NaiveDateTime>, Option<f64>, Option<f64>);

/// The perceptual hashes of every check-in photo of a village or a person, to compare with a
/// new one. A village has a couple of thousand check-ins a year, so the scan is short; two
/// queries, each answered from an index that ends in the hash, are faster than one `OR` (which
/// PostgreSQL answers from the table).
pub fn reuse_candidates(
    conn: &mut DbConnection,
    village: &str,
    subject: &str,
) -> QueryResult<Vec<i64>> {
    let mut hashes: Vec<i64> = checkins::table
        .filter(checkins::village_code.eq(village))
        .select(checkins::photo_phash)
        .load(conn)?;
    hashes.extend(
        checkins::table
            .filter(checkins::subject.eq(subject))
            .select(checkins::photo_phash)
            .load::<i64>(conn)?,
    );
    Ok(hashes)
}

/// Whose attendance a check-in records.
pub fn subject(checkin: &Checkin, user_id: &str, vault: &Vault) -> String {
    match &checkin.worker {
        Some(worker) => format!("person:{}", vault.index_id(worker)),
        None => format!("user:{user_id}"),
    }
}

/// Whether the person holds a special or temporary post in the village, by the latest survey
/// of each household of the village that lists them.
fn holds_post(conn: &mut DbConnection, person_hash: &str, village: &str) -> QueryResult<bool> {
    let listed: Vec<(String, i32, Option<String>)> = survey_members::table
        .inner_join(household_surveys::table)
        .filter(survey_members::person_id_hash.eq(person_hash))
        .filter(household_surveys::village_code.eq(village))
        .select((
            household_surveys::household_id,
            household_surveys::version,
            survey_members::employment_status,
        ))
        .load(conn)?;
    for (household, version, status) in &listed {
        let latest: Option<i32> = household_surveys::table
            .filter(household_surveys::household_id.eq(household))
            .select(diesel::dsl::max(household_surveys::version))
            .first(conn)?;
        let post = [
            EmploymentStatus::SpecialPost.as_str(),
            EmploymentStatus::TemporaryPublicPost.as_str(),
        ];
        if latest == Some(*version) && status.as_deref().is_some_and(|s| post.contains(&s)) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn neighbour(row: Option<(NaiveDateTime, f64, f64, Option<f64>)>) -> Option<Neighbour> {
    row.map(|(at, lat, lon, accuracy)| Neighbour {
        captured_at: at.and_utc(),
        position: Point::new(lon, lat),
        accuracy_m: accuracy.unwrap_or(0.0),
    })
}

pub fn store(
    conn: &mut DbConnection,
    vault: &Vault,
    fences: &Geofences,
    policy: &CheckinPolicy,
    checkin: &Checkin,
    user_id: &str,
    now: DateTime<Utc>,
) -> ApiResult<Value> {
    let photo: Option<PhotoFacts> = photos::table
        .find(&checkin.photo)
        .select((
            photos::phash,
            photos::taken_at,
            photos::exif_lat,
            photos::exif_lon,
        ))
        .first(conn)
        .optional()?;
    let Some((phash, exif_taken_at, exif_lat, exif_lon)) = photo else {
        return Err(ApiError::field(
            "photo",
            "photo_missing",
            format!(
                "photo {} has not been uploaded: PUT /api/v1/photos/{}, then retry",
                checkin.photo, checkin.photo
            ),
        ));
    };
    let subject = subject(checkin, user_id, vault);
    if let Some(person) = subject.strip_prefix("person:") {
        if !holds_post(conn, person, checkin.village.as_str())? {
            return Err(ApiError::Validation(vec![FieldError::new(
                "worker_id_number",
                "not_a_post_holder",
                "this person holds no special or temporary post in the village (by its latest household surveys)",
            )]));
        }
    }

    let captured = checkin.captured_at.with_timezone(&Utc);
    let columns = (
        checkins::captured_at,
        checkins::lat,
        checkins::lon,
        checkins::accuracy_m,
    );
    let before = checkins::table
        .filter(checkins::subject.eq(&subject))
        .filter(checkins::captured_at.le(captured.naive_utc()))
        .order(checkins::captured_at.desc())
        .select(columns)
        .first(conn)
        .optional()?;
    let after = checkins::table
        .filter(checkins::subject.eq(&subject))
        .filter(checkins::captured_at.gt(captured.naive_utc()))
        .order(checkins::captured_at.asc())
        .select(columns)
        .first(conn)
        .optional()?;
    // Reuse: any other check-in photo of this person or this village that is perceptually the
    // same picture. A village has some thousands a year, so the scan is short.
    let earlier: Vec<i64> = checkins::table
        .filter(
            checkins::village_code
                .eq(checkin.village.as_str())
                .or(checkins::subject.eq(&subject)),
        )
        .select(checkins::photo_phash)
        .load(conn)?;
    let photo_reused = earlier
        .iter()
        .any(|h| distance(*h as u64, phash as u64) <= policy.photo_reuse_bits);

    let fence = fences.get(conn, checkin.village.as_str())?;
    let facts = Facts {
        captured_at: captured,
        received_at: now,
        position: Point::new(checkin.lon, checkin.lat),
        accuracy_m: checkin.accuracy_m,
        mock_location: checkin.mock_location,
        exif_taken_at: exif_taken_at.map(|t| t.and_utc()),
        exif_position: exif_lat.zip(exif_lon),
        neighbours: [neighbour(before), neighbour(after)]
            .into_iter()
            .flatten()
            .collect(),
        photo_reused,
    };
    let flags: Vec<CheckinFlag> = verify::flags(&facts, &fence, policy);
    let status = if flags.is_empty() {
        "accepted"
    } else {
        "flagged"
    };
    let attendance_date = checkin.captured_at.with_timezone(&china()).date_naive();
    diesel::insert_into(checkins::table)
        .values((
            checkins::id.eq(checkin.id.as_str()),
            checkins::user_id.eq(user_id),
            checkins::kind.eq(checkin.kind.as_str()),
            checkins::subject.eq(&subject),
            checkins::worker_id_sealed.eq(checkin.worker.as_ref().map(|w| vault.seal_id(w))),
            checkins::village_code.eq(checkin.village.as_str()),
            checkins::captured_at.eq(captured.naive_utc()),
            checkins::attendance_date.eq(attendance_date),
            checkins::lat.eq(checkin.lat),
            checkins::lon.eq(checkin.lon),
            checkins::accuracy_m.eq(checkin.accuracy_m),
            checkins::mock_location.eq(checkin.mock_location),
            checkins::photo_sha256.eq(&checkin.photo),
            checkins::photo_phash.eq(phash),
            checkins::status.eq(status),
            checkins::flags.eq(flags
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(",")),
            checkins::received_at.eq(now.naive_utc()),
        ))
        .execute(conn)?;
    diesel::insert_into(photo_links::table)
        .values((
            photo_links::photo_sha256.eq(&checkin.photo),
            photo_links::submission_id.eq(checkin.id.as_str()),
            photo_links::village_code.eq(checkin.village.as_str()),
        ))
        .execute(conn)?;
    Ok(json!({
        "id": checkin.id,
        "status": status,
        "flags": flags,
        "attendance_date": attendance_date,
        "kind": match checkin.kind { CheckinKind::ResidentDuty => "resident_duty", CheckinKind::SpecialPost => "special_post" },
        "received_at": now,
    }))
}
