//! Monthly close (月调度): a city admin freezes a month's figures at every level as a snapshot.
//! Later changes to that month's surveys do not alter it; they count from the next month on.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::cache;
use crate::audit;
use crate::db::schema::{closed_months, household_surveys, month_snapshots, users, villages};
use crate::db::DbConnection;
use crate::domain::Month;
use crate::error::{ApiError, ApiResult, ErrorCode};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonthState {
    #[schema(example = "2020-07")]
    pub month: String,
    /// `open` (figures live) or `closed` (frozen).
    #[schema(example = "closed")]
    pub state: crate::domain::MonthStatus,
    pub closed_at: Option<DateTime<Utc>>,
    pub closed_by: Option<String>,
    pub closed_by_name: Option<String>,
}

/// A closed month's row, with the name of who closed it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = closed_months, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct ClosedRow {
    month: String,
    closed_at: NaiveDateTime,
    closed_by: String,
    #[diesel(select_expression = users::name)]
    closed_by_name: String,
}

/// Every month from the first surveyed one to the current one, newest first.
pub fn list(conn: &mut DbConnection, current: Month) -> QueryResult<Vec<MonthState>> {
    let first: Option<String> = household_surveys::table
        .select(diesel::dsl::min(household_surveys::month))
        .first(conn)?;
    let closed: Vec<ClosedRow> = closed_months::table
        .inner_join(users::table.on(users::id.eq(closed_months::closed_by)))
        .select(ClosedRow::as_select())
        .load(conn)?;
    // Stored months are `YYYY-MM`; one that is not cannot start the list.
    let start = first
        .iter()
        .chain(closed.iter().map(|c| &c.month))
        .filter_map(|m| Month::parse(m).ok())
        .min()
        .unwrap_or(current);
    let mut months: Vec<Month> = Vec::new();
    let mut m = current;
    // Bounded: the service keeps at most a few decades of months.
    while m >= start && months.len() < 1200 {
        months.push(m);
        m = m.previous();
    }
    Ok(months
        .into_iter()
        .map(|month| {
            let month = month.to_string();
            let c = closed.iter().find(|c| c.month == month);
            MonthState {
                state: if c.is_some() {
                    crate::domain::MonthStatus::Closed
                } else {
                    crate::domain::MonthStatus::Open
                },
                closed_at: c.map(|c| c.closed_at.and_utc()),
                closed_by: c.map(|c| c.closed_by.clone()),
                closed_by_name: c.map(|c| c.closed_by_name.clone()),
                month,
            }
        })
        .collect())
}

/// Closes a month inside the caller's write transaction: computes every village's figures from
/// the normalised tables and stores them as the month's snapshot.
pub fn close(
    conn: &mut DbConnection,
    month: Month,
    user_id: &str,
    now: DateTime<Utc>,
) -> ApiResult<MonthState> {
    // One consistent view of every village: reviews committing during the close must not
    // leave some villages frozen before a change and others after it.
    if let DbConnection::Postgresql(_) = conn {
        conn.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")?;
    }
    let already = || ApiError::Conflict {
        code: ErrorCode::IllegalTransition,
        detail: format!("{month} 已完成月调度，不能再次关账"),
    };
    if cache::is_closed(conn, month)? {
        return Err(ApiError::Conflict {
            code: ErrorCode::IllegalTransition,
            detail: format!("{month} 已完成月调度，不能再次关账"),
        });
    }
    // The row first: on PostgreSQL a second close racing this one waits on it and then fails
    // on the primary key, rather than computing the snapshot twice.
    let text = month.to_string();
    let inserted = diesel::insert_into(closed_months::table)
        .values((
            closed_months::month.eq(&text),
            closed_months::closed_at.eq(now.naive_utc()),
            closed_months::closed_by.eq(user_id),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => {}
        // A concurrent close won.
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation
            | diesel::result::DatabaseErrorKind::SerializationFailure,
            _,
        )) => return Err(already()),
        Err(e) => return Err(e.into()),
    }
    let all: Vec<String> = villages::table
        .select(villages::code)
        .order(villages::code)
        .load(conn)?;
    let figures = cache::recompute_all(conn, &all, month)?;
    for village in &all {
        let Some(f) = figures.get(village) else {
            continue;
        };
        diesel::insert_into(month_snapshots::table)
            .values((
                month_snapshots::month.eq(&text),
                month_snapshots::village_code.eq(village),
                month_snapshots::approved.eq(cache::encode_figures(&f.approved)),
                month_snapshots::pending.eq(cache::encode_figures(&f.including_pending)),
            ))
            .execute(conn)?;
    }
    audit::append(
        conn,
        &audit::Entry {
            user_id,
            action: "close_month",
            subject_type: "month",
            subject_id: &text,
            from_state: Some("open"),
            to_state: Some("closed"),
            detail: Some(&format!("{} 个行政村的快照", all.len())),
            ..Default::default()
        },
    )?;
    Ok(MonthState {
        month: text,
        state: crate::domain::MonthStatus::Closed,
        closed_at: Some(now),
        closed_by: Some(user_id.to_owned()),
        closed_by_name: None,
    })
}
