//! Reading surveys and households, always within the caller's scope: the survey list and
//! review queue, one survey, one household with its versions, and a field user's own
//! submissions. ID numbers are masked unless revealed; every revealed view is audited.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::flag_text::FlagDetail;
use crate::audit;
use crate::auth::{Area, Caller};
use crate::db::schema::{
    household_surveys, households, people, photo_links, survey_flags, survey_members, users,
    village_surveys,
};
use crate::db::DbConnection;
use crate::domain::*;
use crate::error::{bad_query, ApiError, ApiResult};
use crate::photos::PhotoRef;
use crate::privacy::{Purpose, Vault};

#[derive(Debug, Serialize, ToSchema)]
pub struct SurveySummary {
    pub id: String,
    pub household_id: String,
    pub version: i32,
    pub village_code: String,
    pub enumerator_id: String,
    pub head_name: String,
    pub member_count: i32,
    pub poverty_status: PovertyStatus,
    pub surveyed_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub status: ReviewStatus,
    /// Counts the survey's state changes: name it as `seen_version` when deciding.
    pub review_version: i32,
    pub flags: Vec<SurveyFlag>,
    /// Each flag with the other household concerned and why it was raised.
    pub flag_details: Vec<FlagDetail>,
    /// WGS-84, where the survey was made.
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
    pub photos: Vec<PhotoRef>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SurveyPage {
    pub items: Vec<SurveySummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The columns of a survey's summary.
#[derive(Queryable, Selectable)]
#[diesel(table_name = household_surveys, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct SummaryRow {
    id: String,
    household_id: String,
    version: i32,
    village_code: String,
    enumerator_id: String,
    head_name: String,
    member_count: i32,
    poverty_status: String,
    surveyed_at: NaiveDateTime,
    received_at: NaiveDateTime,
    status: String,
    review_version: i32,
    lat: f64,
    lon: f64,
    accuracy_m: Option<f64>,
}

/// Which surveys a list shows: typed and scope-checked (see [`Area::parse`]).
#[derive(Debug, Clone, Default)]
pub struct SurveyFilter {
    /// Its village and county; the township is not used.
    pub area: Area,
    pub status: Option<ReviewStatus>,
    pub flag: Option<SurveyFlag>,
    /// User id of the enumerator.
    pub enumerator: Option<String>,
    /// The review queue: awaiting a decision, oldest received first.
    pub needs_review: bool,
    /// Surveyed at or after this UTC instant.
    pub from: Option<NaiveDateTime>,
    /// Surveyed before this UTC instant.
    pub to: Option<NaiveDateTime>,
    pub cursor: Option<Cursor>,
    pub limit: i64,
}

/// A position in a list ordered by a time and a key. The time keeps every digit the database
/// stored (SQLite keeps nanoseconds), so the next page starts exactly after the last item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub at: NaiveDateTime,
    pub key: String,
}

impl Cursor {
    pub fn encode(at: NaiveDateTime, key: &str) -> String {
        let nanos = at.and_utc().timestamp_nanos_opt().unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{nanos}|{key}"))
    }

    /// A cursor from a `cursor` query parameter (400 `invalid_query` if not one of ours).
    pub fn parse(cursor: &str) -> ApiResult<Cursor> {
        let bad = || bad_query("cursor", "不是本服务器给出的翻页游标");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (nanos, key) = text.split_once('|').ok_or_else(bad)?;
        let at = DateTime::from_timestamp_nanos(nanos.parse().map_err(|_| bad())?);
        Ok(Cursor {
            at: at.naive_utc(),
            key: key.to_owned(),
        })
    }
}

fn flags_of(
    conn: &mut DbConnection,
    ids: &[String],
) -> QueryResult<HashMap<String, Vec<SurveyFlag>>> {
    let mut out: HashMap<String, Vec<SurveyFlag>> = HashMap::new();
    for (survey, flag) in survey_flags::table
        .filter(survey_flags::survey_id.eq_any(ids))
        .select((survey_flags::survey_id, survey_flags::flag))
        .load::<(String, String)>(conn)?
    {
        if let Some(flag) = SurveyFlag::parse(&flag) {
            let list = out.entry(survey).or_default();
            if !list.contains(&flag) {
                list.push(flag);
            }
        }
    }
    Ok(out)
}

fn corrupt(what: &str) -> ApiError {
    ApiError::internal(anyhow::anyhow!("stored {what} is invalid"))
}

fn summaries(
    conn: &mut DbConnection,
    caller: &Caller,
    rows: Vec<SummaryRow>,
) -> ApiResult<Vec<SurveySummary>> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut flags = flags_of(conn, &ids)?;
    let mut details: HashMap<String, Vec<FlagDetail>> = HashMap::new();
    for (survey, detail) in flag_details(conn, caller, &ids)? {
        details.entry(survey).or_default().push(detail);
    }
    let mut photos: HashMap<String, Vec<PhotoRef>> = HashMap::new();
    for (survey, sha) in photo_links::table
        .filter(photo_links::submission_id.eq_any(&ids))
        .select((photo_links::submission_id, photo_links::photo_sha256))
        .order((photo_links::submission_id, photo_links::photo_sha256))
        .load::<(String, String)>(conn)?
    {
        photos.entry(survey).or_default().push(PhotoRef::new(sha));
    }
    rows.into_iter()
        .map(|r| {
            Ok(SurveySummary {
                flags: flags.remove(&r.id).unwrap_or_default(),
                flag_details: details.remove(&r.id).unwrap_or_default(),
                photos: photos.remove(&r.id).unwrap_or_default(),
                poverty_status: PovertyStatus::parse(&r.poverty_status)
                    .ok_or_else(|| corrupt("poverty status"))?,
                status: ReviewStatus::parse(&r.status).ok_or_else(|| corrupt("status"))?,
                surveyed_at: r.surveyed_at.and_utc(),
                received_at: r.received_at.and_utc(),
                review_version: r.review_version,
                lat: r.lat,
                lon: r.lon,
                accuracy_m: r.accuracy_m,
                id: r.id,
                household_id: r.household_id,
                version: r.version,
                village_code: r.village_code,
                enumerator_id: r.enumerator_id,
                head_name: r.head_name,
                member_count: r.member_count,
            })
        })
        .collect()
}

/// The states a reviewer still has to decide.
pub const AWAITING_REVIEW: [&str; 2] = ["submitted", "reopened"];

type Boxed<'a> = household_surveys::BoxedQuery<'a, <DbConnection as diesel::Connection>::Backend>;

/// Surveys inside the caller's scope and the filter's area, status, flag, enumerator and days.
fn filtered<'a>(caller: &Caller, f: &SurveyFilter) -> Boxed<'a> {
    let mut select = household_surveys::table.into_boxed();
    crate::auth::area::narrow_to_area!(select, household_surveys::village_code, caller, &f.area);
    if let Some(status) = f.status {
        select = select.filter(household_surveys::status.eq(status.as_str()));
    }
    if let Some(flag) = f.flag {
        let flagged = survey_flags::table
            .filter(survey_flags::flag.eq(flag.as_str()))
            .select(survey_flags::survey_id);
        select = select.filter(household_surveys::id.eq_any(flagged));
    }
    if let Some(enumerator) = &f.enumerator {
        select = select.filter(household_surveys::enumerator_id.eq(enumerator.clone()));
    }
    if let Some(from) = f.from {
        select = select.filter(household_surveys::surveyed_at.ge(from));
    }
    if let Some(to) = f.to {
        select = select.filter(household_surveys::surveyed_at.lt(to));
    }
    if f.needs_review {
        select = select.filter(household_surveys::status.eq_any(AWAITING_REVIEW));
    }
    select
}

/// Household surveys in the caller's scope, newest received first, in pages; the review queue
/// (`needs_review`) oldest first. Each item carries what a reviewer's list needs: flags with
/// their details, position, photo and thumbnail URLs, review version.
pub fn list(conn: &mut DbConnection, caller: &Caller, f: &SurveyFilter) -> ApiResult<SurveyPage> {
    let mut select = filtered(caller, f);
    let queue = f.needs_review;
    match f.cursor.clone() {
        Some(Cursor { at, key: id }) if queue => {
            select = select.filter(
                household_surveys::received_at
                    .gt(at)
                    .or(household_surveys::received_at
                        .eq(at)
                        .and(household_surveys::id.gt(id))),
            );
        }
        Some(Cursor { at, key: id }) => {
            select = select.filter(
                household_surveys::received_at
                    .lt(at)
                    .or(household_surveys::received_at
                        .eq(at)
                        .and(household_surveys::id.lt(id))),
            );
        }
        None => {}
    }
    select = if queue {
        select.order((household_surveys::received_at, household_surveys::id))
    } else {
        select.order((
            household_surveys::received_at.desc(),
            household_surveys::id.desc(),
        ))
    };
    let limit = f.limit;
    let mut rows: Vec<SummaryRow> = select
        .select(SummaryRow::as_select())
        .limit(limit + 1)
        .load(conn)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| Cursor::encode(r.received_at, &r.id))
    } else {
        None
    };
    Ok(SurveyPage {
        items: summaries(conn, caller, rows)?,
        next_cursor,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmploymentView {
    pub status: EmploymentStatus,
    pub employer_id: Option<String>,
    pub post_type: Option<PostType>,
    pub monthly_income_yuan: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub name: String,
    /// Masked (`220802********1238`) unless revealed; null for a member without an ID number.
    pub id_number: Option<String>,
    pub sex: Sex,
    pub birth_date: NaiveDate,
    pub relation: Relation,
    pub labour_capacity: LabourCapacity,
    pub employment: Option<EmploymentView>,
    pub wants_public_post: bool,
    pub training_wanted: bool,
    pub training_trade: Option<TrainingTrade>,
    pub at_risk: bool,
    pub safety_net: Vec<SafetyNet>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SurveyDetail {
    #[serde(flatten)]
    pub summary: SurveySummary,
    pub form_version: String,
    #[schema(example = "2020-07")]
    pub month: String,
    pub household_number: Option<String>,
    /// The head's ID number, masked unless revealed.
    pub head_id_number: Option<String>,
    /// Masked (`138****0000`) unless revealed.
    pub phone: Option<String>,
    pub relocated: bool,
    pub replaces: Option<String>,
    pub review_comment: Option<String>,
    pub status_changed_at: DateTime<Utc>,
    /// Whether ID and phone numbers are shown in full.
    pub revealed: bool,
    pub members: Vec<MemberView>,
}

pub fn mask_phone(phone: &str) -> String {
    if phone.len() == 11 {
        format!("{}****{}", &phone[..3], &phone[7..])
    } else {
        "****".into()
    }
}

fn id_text(vault: &Vault, sealed: &str, reveal: bool) -> ApiResult<String> {
    let id = vault.open_id(sealed).map_err(ApiError::internal)?;
    Ok(if reveal {
        id.expose().to_owned()
    } else {
        id.masked()
    })
}

/// The columns of a survey's detail beyond its summary.
#[derive(Queryable, Selectable)]
#[diesel(table_name = household_surveys, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct DetailRow {
    form_version: String,
    month: String,
    household_number: Option<String>,
    head_id_sealed: Option<String>,
    phone_sealed: Option<String>,
    relocated: bool,
    replaces: Option<String>,
    review_comment: Option<String>,
    status_changed_at: NaiveDateTime,
}

/// One member of a survey, with the person's sealed ID, sex and birth date.
#[derive(Queryable, Selectable)]
#[diesel(table_name = survey_members, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct MemberRow {
    name: String,
    #[diesel(select_expression = people::id_sealed)]
    id_sealed: Option<String>,
    #[diesel(select_expression = people::sex)]
    sex: String,
    #[diesel(select_expression = people::birth_date)]
    birth_date: NaiveDate,
    relation: String,
    labour_capacity: String,
    employment_status: Option<String>,
    employer_id: Option<String>,
    post_type: Option<String>,
    monthly_income_yuan: Option<i64>,
    wants_public_post: bool,
    training_wanted: bool,
    training_trade: Option<String>,
    at_risk: bool,
    safety_net: String,
}

impl MemberRow {
    fn view(self, vault: &Vault, reveal: bool) -> ApiResult<MemberView> {
        let employment = match self.employment_status.as_deref() {
            Some(status) => Some(EmploymentView {
                status: EmploymentStatus::parse(status)
                    .ok_or_else(|| corrupt("employment status"))?,
                employer_id: self.employer_id,
                post_type: self.post_type.as_deref().and_then(PostType::parse),
                monthly_income_yuan: self.monthly_income_yuan,
            }),
            None => None,
        };
        Ok(MemberView {
            id_number: match &self.id_sealed {
                Some(sealed) => Some(id_text(vault, sealed, reveal)?),
                None => None,
            },
            name: self.name,
            sex: Sex::parse(&self.sex).ok_or_else(|| corrupt("sex"))?,
            birth_date: self.birth_date,
            relation: Relation::parse(&self.relation).ok_or_else(|| corrupt("relation"))?,
            labour_capacity: LabourCapacity::parse(&self.labour_capacity)
                .ok_or_else(|| corrupt("labour capacity"))?,
            employment,
            wants_public_post: self.wants_public_post,
            training_wanted: self.training_wanted,
            training_trade: self
                .training_trade
                .as_deref()
                .and_then(TrainingTrade::parse),
            at_risk: self.at_risk,
            safety_net: self
                .safety_net
                .split(',')
                .filter_map(SafetyNet::parse)
                .collect(),
        })
    }
}

/// The members of a survey, in their order.
fn members_of(
    conn: &mut DbConnection,
    vault: &Vault,
    survey: &str,
    reveal: bool,
) -> ApiResult<Vec<MemberView>> {
    let rows: Vec<MemberRow> = survey_members::table
        .inner_join(people::table)
        .filter(survey_members::survey_id.eq(survey))
        .order(survey_members::position)
        .select(MemberRow::as_select())
        .load(conn)?;
    rows.into_iter().map(|m| m.view(vault, reveal)).collect()
}

/// A sealed phone number, masked unless revealed.
pub(crate) fn phone_text(vault: &Vault, sealed: &str, reveal: bool) -> ApiResult<String> {
    let clear = String::from_utf8(
        vault
            .open(Purpose::Phone, sealed)
            .map_err(ApiError::internal)?,
    )
    .map_err(ApiError::internal)?;
    Ok(if reveal { clear } else { mask_phone(&clear) })
}

/// Records in the audit log that a reader saw a subject's personal data in full.
fn audit_reveal(
    conn: &mut DbConnection,
    caller: &Caller,
    subject_type: &str,
    subject_id: &str,
    reason: Option<&str>,
) -> ApiResult<()> {
    audit::append(
        conn,
        &audit::Entry {
            user_id: &caller.user_id,
            action: "reveal_personal_data",
            subject_type,
            subject_id,
            reason,
            ..Default::default()
        },
    )?;
    Ok(())
}

/// One household survey with its members, if it lies in the caller's scope. ID and phone
/// numbers are masked unless `reveal` (checked by the caller, see
/// [`crate::auth::reveal_allowed`]); a revealed view is audited.
pub fn survey(
    conn: &mut DbConnection,
    vault: &Vault,
    caller: &Caller,
    id: &str,
    reveal: bool,
    reason: Option<&str>,
) -> ApiResult<SurveyDetail> {
    let not_found = || ApiError::NotFound(format!("入户调查 {id} 不存在"));
    let row: SummaryRow = household_surveys::table
        .find(id)
        .select(SummaryRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(not_found)?;
    let village = DivisionCode::parse(&row.village_code).map_err(|_| corrupt("village code"))?;
    if !caller.can_access_village(&village) {
        return Err(not_found());
    }
    let extra: DetailRow = household_surveys::table
        .find(id)
        .select(DetailRow::as_select())
        .first(conn)?;
    let members = members_of(conn, vault, id, reveal)?;
    let head_id_number = extra
        .head_id_sealed
        .as_deref()
        .map(|s| id_text(vault, s, reveal))
        .transpose()?;
    let phone = extra
        .phone_sealed
        .as_deref()
        .map(|s| phone_text(vault, s, reveal))
        .transpose()?;
    if reveal {
        audit_reveal(conn, caller, "household_survey", id, reason)?;
    }
    let summary = summaries(conn, caller, vec![row])?
        .pop()
        .ok_or_else(|| corrupt("survey"))?;
    Ok(SurveyDetail {
        summary,
        form_version: extra.form_version,
        month: extra.month,
        household_number: extra.household_number,
        head_id_number,
        phone,
        relocated: extra.relocated,
        replaces: extra.replaces,
        review_comment: extra.review_comment,
        status_changed_at: extra.status_changed_at.and_utc(),
        revealed: reveal,
        members,
    })
}

/// A flag as stored: its detail names no household (see [`super::flag_text`]).
#[derive(Queryable, Selectable)]
#[diesel(table_name = survey_flags, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct FlagRow {
    survey_id: String,
    flag: String,
    related_household_id: String,
    detail: String,
}

/// The flags of the surveys, each with its survey id. A related household outside the
/// caller's scope is not named, neither by id nor in the text: the flag says only that there
/// is one (see [`super::flag_text`]).
fn flag_details(
    conn: &mut DbConnection,
    caller: &Caller,
    surveys: &[String],
) -> ApiResult<Vec<(String, FlagDetail)>> {
    let rows: Vec<FlagRow> = survey_flags::table
        .filter(survey_flags::survey_id.eq_any(surveys))
        .select(FlagRow::as_select())
        .order((
            survey_flags::survey_id,
            survey_flags::flag,
            survey_flags::related_household_id,
        ))
        .load(conn)?;
    let related: Vec<&str> = rows
        .iter()
        .map(|r| r.related_household_id.as_str())
        .filter(|r| !r.is_empty())
        .collect();
    let visible: HashSet<String> = households::table
        .filter(households::id.eq_any(&related))
        .select((households::id, households::village_code))
        .load::<(String, String)>(conn)?
        .into_iter()
        .filter(|(_, village)| {
            DivisionCode::parse(village).is_ok_and(|v| caller.can_access_village(&v))
        })
        .map(|(id, _)| id)
        .collect();
    let visible_ids: Vec<&str> = visible.iter().map(String::as_str).collect();
    let names = super::flag_text::names_of(conn, &visible_ids)?;
    rows.into_iter()
        .map(|r| {
            let FlagRow {
                survey_id: survey,
                flag,
                related_household_id: related,
                detail,
            } = r;
            let shown = visible.contains(&related);
            let name = names.get(&related).filter(|_| shown);
            Ok((
                survey,
                FlagDetail {
                    flag: SurveyFlag::parse(&flag).ok_or_else(|| corrupt("flag"))?,
                    detail: super::flag_text::for_reader(&detail, name),
                    related_household_id: shown.then_some(related),
                },
            ))
        })
        .collect()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HouseholdView {
    pub id: String,
    pub village_code: String,
    pub household_number: Option<String>,
    /// The head's ID number from the latest version that gives one, masked unless revealed.
    pub head_id_number: Option<String>,
    pub revealed: bool,
    /// Every version, oldest first.
    pub versions: Vec<SurveySummary>,
    /// The flags of all its versions.
    pub flags: Vec<FlagDetail>,
    /// Set when a reviewer merged this household into another: its versions are there now.
    pub merged_into: Option<String>,
}

/// A household in the caller's scope: its versions (one per survey) and their flags. The head's
/// ID number is masked unless `reveal` (checked by the caller); a revealed view is audited.
pub fn household(
    conn: &mut DbConnection,
    vault: &Vault,
    caller: &Caller,
    id: &str,
    reveal: bool,
    reason: Option<&str>,
) -> ApiResult<HouseholdView> {
    let not_found = || ApiError::NotFound(format!("户 {id} 不存在"));
    let village_code: String = households::table
        .find(id)
        .select(households::village_code)
        .first(conn)
        .optional()?
        .ok_or_else(not_found)?;
    let village = DivisionCode::parse(&village_code).map_err(|_| corrupt("village code"))?;
    if !caller.can_access_village(&village) {
        return Err(not_found());
    }
    let rows: Vec<SummaryRow> = household_surveys::table
        .filter(household_surveys::household_id.eq(id))
        .select(SummaryRow::as_select())
        .order(household_surveys::version)
        .load(conn)?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let head_sealed: Option<String> = household_surveys::table
        .filter(household_surveys::household_id.eq(id))
        .filter(household_surveys::head_id_sealed.is_not_null())
        .order(household_surveys::version.desc())
        .select(household_surveys::head_id_sealed)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten();
    let head_id_number = head_sealed
        .as_deref()
        .map(|s| id_text(vault, s, reveal))
        .transpose()?;
    if reveal {
        audit_reveal(conn, caller, "household", id, reason)?;
    }
    let survivor = super::duplicates::survivor_of(conn, id)?;
    let household_number =
        super::identity::numbers_of(conn, &[(id.to_owned(), village_code.clone())])?.remove(id);
    Ok(HouseholdView {
        flags: flag_details(conn, caller, &ids)?
            .into_iter()
            .map(|(_, f)| f)
            .collect(),
        merged_into: (survivor != id).then_some(survivor),
        versions: summaries(conn, caller, rows)?,
        id: id.to_owned(),
        village_code,
        household_number,
        head_id_number,
        revealed: reveal,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubmissionStatus {
    pub id: String,
    pub kind: SurveyKind,
    pub village_code: String,
    pub status: ReviewStatus,
    /// The reviewer's reason or request, when there is one.
    pub review_comment: Option<String>,
    /// User id of the reviewer who last decided (household surveys).
    pub reviewed_by: Option<String>,
    /// Their name, for the app to show.
    pub reviewer_name: Option<String>,
    pub flags: Vec<SurveyFlag>,
    pub received_at: DateTime<Utc>,
    pub status_changed_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MySubmissions {
    pub items: Vec<SubmissionStatus>,
    /// Pass as `since` next time.
    pub next_since: Option<DateTime<Utc>>,
}

/// The state of one submission as its author's feed has it.
#[derive(Queryable)]
struct StatusRow {
    id: String,
    village_code: String,
    status: String,
    review_comment: Option<String>,
    received_at: NaiveDateTime,
    changed_at: NaiveDateTime,
    reviewed_by: Option<String>,
}

/// The caller's household and village surveys received or changed after `floor`.
fn changed_since(
    conn: &mut DbConnection,
    caller: &Caller,
    floor: NaiveDateTime,
) -> QueryResult<(Vec<StatusRow>, Vec<StatusRow>)> {
    let households: Vec<StatusRow> = household_surveys::table
        .filter(household_surveys::enumerator_id.eq(&caller.user_id))
        .filter(
            household_surveys::received_at
                .gt(floor)
                .or(household_surveys::status_changed_at.gt(floor)),
        )
        .select((
            household_surveys::id,
            household_surveys::village_code,
            household_surveys::status,
            household_surveys::review_comment,
            household_surveys::received_at,
            household_surveys::status_changed_at,
            household_surveys::reviewed_by,
        ))
        .load(conn)?;
    let villages: Vec<StatusRow> = village_surveys::table
        .filter(village_surveys::surveyor_id.eq(&caller.user_id))
        .filter(
            village_surveys::received_at
                .gt(floor)
                .or(village_surveys::status_changed_at.gt(floor)),
        )
        .select((
            village_surveys::id,
            village_surveys::village_code,
            village_surveys::status,
            village_surveys::review_comment,
            village_surveys::received_at,
            village_surveys::status_changed_at,
            None::<String>.into_sql::<diesel::sql_types::Nullable<diesel::sql_types::Text>>(),
        ))
        .load(conn)?;
    Ok((households, villages))
}

/// The caller's own submissions received or changed after `since` (all when absent), oldest
/// change first, with their review status, comments and reviewer.
pub fn submissions_of(
    conn: &mut DbConnection,
    caller: &Caller,
    since: Option<DateTime<Utc>>,
) -> ApiResult<MySubmissions> {
    // Before any submission this service can have received (PostgreSQL's timestamps do not
    // reach NaiveDateTime::MIN).
    let floor = since
        .unwrap_or_else(|| DateTime::from_timestamp(0, 0).unwrap_or_default())
        .naive_utc();
    let (households, villages) = changed_since(conn, caller, floor)?;
    let ids: Vec<String> = households.iter().map(|r| r.id.clone()).collect();
    let mut flags = flags_of(conn, &ids)?;
    let reviewers: Vec<String> = households
        .iter()
        .filter_map(|r| r.reviewed_by.clone())
        .collect();
    let names: HashMap<String, String> = users::table
        .filter(users::id.eq_any(&reviewers))
        .select((users::id, users::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let mut items = households
        .into_iter()
        .map(|r| (r, SurveyKind::HouseholdSurvey))
        .chain(villages.into_iter().map(|r| (r, SurveyKind::VillageSurvey)))
        .map(|(r, kind)| {
            Ok(SubmissionStatus {
                reviewer_name: r.reviewed_by.as_ref().and_then(|b| names.get(b).cloned()),
                reviewed_by: r.reviewed_by,
                flags: flags.remove(&r.id).unwrap_or_default(),
                id: r.id,
                kind,
                village_code: r.village_code,
                status: ReviewStatus::parse(&r.status).ok_or_else(|| corrupt("status"))?,
                review_comment: r.review_comment,
                received_at: r.received_at.and_utc(),
                status_changed_at: r.changed_at.max(r.received_at).and_utc(),
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    items.sort_by(|a, b| (a.status_changed_at, &a.id).cmp(&(b.status_changed_at, &b.id)));
    let next_since = items.iter().map(|i| i.status_changed_at).max();
    Ok(MySubmissions { items, next_since })
}
