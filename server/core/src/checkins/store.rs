//! Storing a check-in with its flags, inside the transaction that claimed its submission id;
//! and the answer it gets.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use geo::Point;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::input::{Checkin, Worker};
use super::policy::CheckinPolicy;
use super::verify::{self, Facts, Neighbour};
use crate::db::schema::{checkins, household_surveys, people, photo_links, photos, survey_members};
use crate::db::DbConnection;
use crate::domain::time::china;
use crate::domain::Rule;
use crate::domain::{CheckinFlag, CheckinKind, CheckinStatus, EmploymentStatus};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::photos::phash::distance;
use crate::privacy::Vault;
use crate::villages::geofences::Geofences;

/// The answer to a check-in: the same body on every replay.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckinAnswer {
    pub id: String,
    /// `accepted`, or `flagged` with the reasons in `flags`; a check-in is never refused for
    /// doubtful facts.
    #[schema(example = "accepted")]
    pub status: crate::domain::CheckinStatus,
    pub flags: Vec<CheckinFlag>,
    /// The local (Asia/Shanghai) day the check-in counts for.
    #[schema(example = "2020-07-20")]
    pub attendance_date: chrono::NaiveDate,
    #[schema(value_type = crate::domain::CheckinKind, example = "resident_duty")]
    pub kind: String,
    pub received_at: chrono::DateTime<Utc>,
}

/// A stored photo's perceptual hash, EXIF time and EXIF position.
/// What a check-in's photo tells: its perceptual hash and EXIF time and place.
#[derive(Queryable, Selectable)]
#[diesel(table_name = photos, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct PhotoFacts {
    phash: i64,
    taken_at: Option<NaiveDateTime>,
    exif_lat: Option<f64>,
    exif_lon: Option<f64>,
}

/// Another check-in of the same person, for the travel check.
#[derive(Queryable, Selectable)]
#[diesel(table_name = checkins, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct NeighbourRow {
    captured_at: NaiveDateTime,
    lat: f64,
    lon: f64,
    accuracy_m: Option<f64>,
}

/// Days either side of a check-in within which a near copy of another person's photo anywhere
/// in the county counts as reuse. A county has some 20 000 check-ins a month, so a week either
/// way keeps the scan to a few thousand hashes; exact copies are found at any distance in time.
pub const COUNTY_REUSE_DAYS: i64 = 7;

/// The perceptual hashes a new check-in photo is compared with: every check-in photo of the
/// village and of the person, and other people's check-in photos in the county within
/// [`COUNTY_REUSE_DAYS`]. Each query is answered from an index that ends in the hash (faster
/// than one `OR`, which PostgreSQL answers from the table).
pub fn reuse_candidates(
    conn: &mut DbConnection,
    village: &str,
    subject: &str,
    day: NaiveDate,
) -> QueryResult<Vec<i64>> {
    let county = county_of(village);
    let window = chrono::Duration::days(COUNTY_REUSE_DAYS);
    let mut hashes: Vec<i64> = reuse::village(village).load(conn)?;
    hashes.extend(reuse::person(subject).load::<i64>(conn)?);
    hashes.extend(reuse::county(&county, day - window, day + window, subject).load::<i64>(conn)?);
    Ok(hashes)
}

/// The reuse check's three queries, public so that the tests and benches that check their
/// plans explain these very queries. Their binds are their arguments, in order.
pub mod reuse {
    use chrono::NaiveDate;
    use diesel::prelude::*;

    use crate::db::schema::checkins;

    /// The hashes of the village's check-in photos.
    #[diesel::dsl::auto_type]
    pub fn village<'a>(village: &'a str) -> _ {
        checkins::table
            .filter(checkins::village_code.eq(village))
            .select(checkins::photo_phash)
    }

    /// The hashes of the person's check-in photos.
    #[diesel::dsl::auto_type]
    pub fn person<'a>(subject: &'a str) -> _ {
        checkins::table
            .filter(checkins::subject.eq(subject))
            .select(checkins::photo_phash)
    }

    /// The hashes of other people's check-in photos in the county between two days.
    #[diesel::dsl::auto_type]
    pub fn county<'a>(county: &'a str, from: NaiveDate, to: NaiveDate, subject: &'a str) -> _ {
        checkins::table
            .filter(checkins::county_code.eq(county))
            .filter(checkins::attendance_date.between(from, to))
            .filter(checkins::subject.ne(subject))
            .select(checkins::photo_phash)
    }
}

/// Whether another person's check-in anywhere in the county used these very bytes.
fn same_bytes_in_county(
    conn: &mut DbConnection,
    sha256: &str,
    village: &str,
    subject: &str,
) -> QueryResult<bool> {
    Ok(checkins::table
        .filter(checkins::photo_sha256.eq(sha256))
        .filter(checkins::county_code.eq(county_of(village)))
        .filter(checkins::subject.ne(subject))
        .count()
        .get_result::<i64>(conn)?
        > 0)
}

/// The 12-digit code of a village's county.
pub fn county_of(village: &str) -> String {
    format!("{}000000", village.get(..6).unwrap_or(village))
}

/// The special-post worker a check-in names, resolved: the person key (the members'
/// `person_id_hash`), the sealed ID number if the person has one, and the field that named them.
pub struct ResolvedWorker {
    pub key: String,
    pub sealed: Option<String>,
    pub field: &'static str,
}

/// Resolves the check-in's worker. An ID number is its keyed hash; a `worker_ref` is matched
/// against the person keys listed in the surveys of the check-in's own village only, so a ref
/// from another village (or a made-up one) names no one: 422 `worker_ref` `unknown_worker`,
/// the same answer whether or not the person exists elsewhere. A person without an ID number
/// (`people.id_sealed` NULL, key `noid-…`) resolves to that key with no sealed number.
pub fn resolve_worker(
    conn: &mut DbConnection,
    vault: &Vault,
    checkin: &Checkin,
) -> ApiResult<Option<ResolvedWorker>> {
    let Some(worker) = &checkin.worker else {
        return Ok(None);
    };
    let token = match worker {
        Worker::IdNumber(id) => {
            return Ok(Some(ResolvedWorker {
                key: vault.index_id(id),
                sealed: Some(vault.seal_id(id)),
                field: "worker_id_number",
            }))
        }
        Worker::Ref(token) => token,
    };
    let village = checkin.village.as_str();
    let keys: Vec<String> = survey_members::table
        .inner_join(household_surveys::table)
        .filter(household_surveys::village_code.eq(village))
        .select(survey_members::person_id_hash)
        .distinct()
        .load(conn)?;
    let Some(key) = keys
        .into_iter()
        .find(|key| vault.worker_ref(village, key) == *token)
    else {
        return Err(ApiError::Validation(vec![FieldError::new(
            "worker_ref",
            Rule::UnknownWorker,
            format!("本村（{village}）的调查中没有这一人员标识所指的人员：请先同步再选人"),
        )]));
    };
    let sealed: Option<String> = people::table
        .find(&key)
        .select(people::id_sealed)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten();
    Ok(Some(ResolvedWorker {
        key,
        sealed,
        field: "worker_ref",
    }))
}

/// Whose attendance a check-in records: `person:<person key>` for a special-post worker
/// (the same whether named by ID number or by ref), `user:<id>` for resident duty.
pub fn subject(worker: Option<&ResolvedWorker>, user_id: &str) -> String {
    match worker {
        Some(worker) => format!("person:{}", worker.key),
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

fn neighbour(row: NeighbourRow) -> Neighbour {
    Neighbour {
        captured_at: row.captured_at.and_utc(),
        position: Point::new(row.lon, row.lat),
        accuracy_m: row.accuracy_m.unwrap_or(0.0),
    }
}

/// The facts of the check-in's photo, if its author uploaded it: anyone else's answers as
/// missing, whoever stored it.
fn photo_facts(conn: &mut DbConnection, checkin: &Checkin, user_id: &str) -> ApiResult<PhotoFacts> {
    let photo: Option<PhotoFacts> =
        if crate::photos::db::uploaded_by(conn, &checkin.photo, user_id)? {
            photos::table
                .find(&checkin.photo)
                .select(PhotoFacts::as_select())
                .first(conn)
                .optional()?
        } else {
            None
        };
    photo.ok_or_else(|| {
        ApiError::field(
            "photo",
            Rule::PhotoMissing,
            format!(
                "照片 {} 尚未由本人上传：请先 PUT /api/v1/photos/{}，再重新提交",
                checkin.photo, checkin.photo
            ),
        )
    })
}

/// The subject's check-ins just before and just after this one.
fn neighbours(
    conn: &mut DbConnection,
    subject: &str,
    captured: DateTime<Utc>,
) -> QueryResult<Vec<Neighbour>> {
    let before = checkins::table
        .filter(checkins::subject.eq(subject))
        .filter(checkins::captured_at.le(captured.naive_utc()))
        .order(checkins::captured_at.desc())
        .select(NeighbourRow::as_select())
        .first(conn)
        .optional()?;
    let after = checkins::table
        .filter(checkins::subject.eq(subject))
        .filter(checkins::captured_at.gt(captured.naive_utc()))
        .order(checkins::captured_at.asc())
        .select(NeighbourRow::as_select())
        .first(conn)
        .optional()?;
    Ok([before, after]
        .into_iter()
        .flatten()
        .map(neighbour)
        .collect())
}

/// Stores a validated check-in, accepted or flagged, and returns the answer.
pub fn store(
    conn: &mut DbConnection,
    vault: &Vault,
    fences: &Geofences,
    policy: &CheckinPolicy,
    checkin: &Checkin,
    user_id: &str,
    now: DateTime<Utc>,
) -> ApiResult<Value> {
    let photo = photo_facts(conn, checkin, user_id)?;
    let phash = photo.phash;
    let worker = resolve_worker(conn, vault, checkin)?;
    let subject = subject(worker.as_ref(), user_id);
    if let Some(worker) = &worker {
        if !holds_post(conn, &worker.key, checkin.village.as_str())? {
            return Err(ApiError::Validation(vec![FieldError::new(
                worker.field,
                Rule::NotAPostHolder,
                "按最近的入户调查，此人在该村没有扶贫特岗或临时公益岗",
            )]));
        }
    }

    let captured = checkin.captured_at.with_timezone(&Utc);
    let attendance_date = checkin.captured_at.with_timezone(&china()).date_naive();
    let photo_reused =
        same_bytes_in_county(conn, &checkin.photo, checkin.village.as_str(), &subject)?
            || reuse_candidates(conn, checkin.village.as_str(), &subject, attendance_date)?
                .iter()
                .any(|h| distance(*h as u64, phash as u64) <= policy.photo_reuse_bits);

    let fence = fences.get(conn, checkin.village.as_str())?;
    let facts = Facts {
        captured_at: captured,
        received_at: now,
        position: Point::new(checkin.lon, checkin.lat),
        accuracy_m: checkin.accuracy_m,
        mock_location: checkin.mock_location,
        exif_taken_at: photo.taken_at.map(|t| t.and_utc()),
        exif_position: photo.exif_lat.zip(photo.exif_lon),
        neighbours: neighbours(conn, &subject, captured)?,
        photo_reused,
    };
    let flags: Vec<CheckinFlag> = verify::flags(&facts, &fence, policy);
    let status = if flags.is_empty() {
        CheckinStatus::Accepted
    } else {
        CheckinStatus::Flagged
    }
    .as_str();
    diesel::insert_into(checkins::table)
        .values((
            checkins::id.eq(checkin.id.as_str()),
            checkins::user_id.eq(user_id),
            checkins::kind.eq(checkin.kind.as_str()),
            checkins::subject.eq(&subject),
            checkins::worker_id_sealed.eq(worker.as_ref().and_then(|w| w.sealed.as_deref())),
            checkins::village_code.eq(checkin.village.as_str()),
            checkins::county_code.eq(county_of(checkin.village.as_str())),
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
