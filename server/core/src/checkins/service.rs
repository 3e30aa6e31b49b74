//! The check-in operations the JSON API and the console share: intake, a month's attendance,
//! the list of check-ins, the review of flagged ones, the 考勤表 and the subsidy sheet. Each keeps to its caller's scope itself.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::attendance::{self, Attendance, CheckinList, Filter};
use super::input::{self, Checkin, CheckinRequest};
use super::review::{self, CheckinReview, CheckinReviewRequest};
use super::subsidies::{self, SubsidySheet};
use super::{sheets, store, CheckinPolicy};
use crate::auth::Caller;
use crate::db::{Db, DbConnection};
use crate::domain::Month;
use crate::error::bad_query;
use crate::error::ApiResult;
use crate::ledger::export::{Download, ExportFormat};
use crate::ledger::node::NodeFilter;
use crate::privacy::Vault;
use crate::submissions::{self, Kind, Outcome, Received, Validated};
use crate::villages::geofences::Geofences;

impl Validated for Checkin {
    fn submission_id(&self) -> &str {
        self.id.as_str()
    }
    fn village_code(&self) -> &str {
        self.village.as_str()
    }
}

/// What a check-in is checked against: the seals, the village geofences, the rules.
pub struct Verification<'a> {
    pub vault: &'a Vault,
    pub geofences: &'a Geofences,
    pub policy: &'a CheckinPolicy,
}

/// Whatever holds the [`Verification`] for as long as a check-in waits for its group commit:
/// the server's state.
pub trait Verifier: Send + Sync + 'static {
    fn verification(&self) -> Verification<'_>;
}

/// Receives a check-in exactly once (see [`submissions::prepare`]): stored accepted or
/// flagged, never refused for doubtful facts.
pub async fn submit<V: Verifier>(
    db: &Db,
    with: Arc<V>,
    caller: Caller,
    request: CheckinRequest,
    value: &Value,
    now: DateTime<Utc>,
) -> ApiResult<Outcome> {
    caller.require_role(&submissions::SUBMITTERS)?;
    let received = Received {
        kind: Kind::Checkin,
        user_id: &caller.user_id,
        claimed_id: &request.submission_id,
        claimed_village: &request.village_code,
        value,
    };
    let prepared = submissions::prepare(with.verification().vault, &received, || {
        input::validate(&request, &caller, now)
    })?;
    submissions::commit_in_batch(db, prepared, now, move |conn, checkin| {
        let with = with.verification();
        store::store(
            conn,
            with.vault,
            with.geofences,
            with.policy,
            checkin,
            &caller.user_id,
            now,
        )
    })
    .await
}

/// A month's attendance in the caller's scope and the filter's area.
pub async fn attendance(
    db: &Db,
    vault: &Vault,
    policy: &CheckinPolicy,
    caller: Caller,
    filter: Filter,
) -> ApiResult<Attendance> {
    let (vault, policy) = (vault.clone(), policy.clone());
    db.run(move |conn| attendance::compute(conn, &vault, &policy, &caller, &filter))
        .await
}

/// A month's check-ins in the caller's scope and the filter's area, newest first: only the
/// flagged ones (`Some(true)`), only the accepted (`Some(false)`) or all; at most `limit`.
pub async fn list_checkins(
    db: &Db,
    caller: Caller,
    filter: Filter,
    flagged: Option<bool>,
    limit: i64,
) -> ApiResult<CheckinList> {
    db.run(move |conn| attendance::list(conn, &caller, &filter, flagged, limit))
        .await
}

/// Confirms or dismisses a flagged check-in (see [`review`]); `true` when it was decided now,
/// `false` for a retried identical decision.
pub async fn review_checkin(
    db: &Db,
    caller: Caller,
    id: String,
    request: CheckinReviewRequest,
    now: DateTime<Utc>,
) -> ApiResult<(CheckinReview, bool)> {
    db.transaction(move |conn| review::decide(conn, &caller, &id, &request, now))
        .await
}

/// The file name's month and the names of the villages a sheet shows.
fn village_names(
    conn: &mut DbConnection,
    d: &attendance::Detailed,
) -> ApiResult<std::collections::HashMap<String, String>> {
    let mut codes: Vec<String> = d
        .attendance
        .people
        .iter()
        .map(|p| p.village_code.clone())
        .collect();
    codes.sort_unstable();
    codes.dedup();
    Ok(crate::villages::names(conn, &codes)?)
}

fn file_format(format: ExportFormat) -> ApiResult<ExportFormat> {
    if format == ExportFormat::Json {
        return Err(bad_query("format", "须为 json、xlsx 或 csv"));
    }
    Ok(format)
}

/// The month's 考勤表 as a file: a row per person, a column per day (see [`sheets`]).
pub fn attendance_export(
    vault: &Vault,
    policy: &CheckinPolicy,
    caller: Caller,
    filter: Filter,
    format: ExportFormat,
) -> ApiResult<Download> {
    let format = file_format(format)?;
    let (vault, policy) = (vault.clone(), policy.clone());
    let ext = format.extension();
    Ok(Download {
        content_type: format.content_type(),
        file_name: format!("{} 驻村考勤表.{ext}", filter.month),
        fallback: format!("attendance-{}.{ext}", filter.month),
        write: Box::new(move |conn, sink| {
            let d = attendance::detailed(conn, &vault, &policy, &caller, &filter)?;
            let names = village_names(conn, &d)?;
            let table = sheets::attendance_table(&d, &names);
            match format {
                ExportFormat::Csv => sheets::csv(&[table], sink),
                _ => sheets::xlsx(&[table], sink),
            }
        }),
    })
}

/// The subsidy sheet of a node: authorised and looked up first, so a refusal is an answer and
/// not a cut download.
pub async fn subsidies(
    db: &Db,
    vault: &Vault,
    policy: &CheckinPolicy,
    caller: Caller,
    node: NodeFilter,
    month: Month,
) -> ApiResult<SubsidySheet> {
    let (vault, policy) = (vault.clone(), policy.clone());
    db.run(move |conn| {
        let node = subsidies::resolve(conn, &caller, &node)?;
        subsidies::compute(conn, &vault, &policy, &caller, &node, month)
    })
    .await
}

/// The subsidy sheet as a file (see [`sheets::subsidy_tables`]).
pub async fn subsidies_export(
    db: &Db,
    vault: &Vault,
    policy: &CheckinPolicy,
    caller: Caller,
    filter: NodeFilter,
    month: Month,
    format: ExportFormat,
) -> ApiResult<Download> {
    let format = file_format(format)?;
    let check = caller.clone();
    let node = db
        .run(move |conn| subsidies::resolve(conn, &check, &filter))
        .await?;
    let (vault, policy) = (vault.clone(), policy.clone());
    let ext = format.extension();
    Ok(Download {
        content_type: format.content_type(),
        file_name: format!("{month} {} 岗位补贴发放表.{ext}", node.name),
        fallback: format!("subsidies-{}-{month}.{ext}", node.code.as_str()),
        write: Box::new(move |conn, sink| {
            let sheet = subsidies::compute(conn, &vault, &policy, &caller, &node, month)?;
            let tables = sheets::subsidy_tables(&sheet);
            match format {
                ExportFormat::Csv => sheets::csv(&tables, sink),
                _ => sheets::xlsx(&tables, sink),
            }
        }),
    })
}
