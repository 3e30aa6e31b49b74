//! Month partitions of `checkins` on PostgreSQL (migration `2026-12-07-000000_checkin_partitions`):
//! the server creates each month's partition before the month begins, so that check-ins land in
//! their month's table: the photo-reuse check's county query reads one or two months, and a
//! closed year can be detached whole. SQLite keeps one table and has nothing to create.

use diesel::sql_types::{Bool, Date};
use diesel::{QueryableByName, RunQueryDsl};

use crate::db::{Db, DbConnection};
use crate::domain::Month;
use crate::error::ApiResult;

/// How many months after the current one have partitions: a server down over a month's turn, or
/// a phone whose clock runs weeks ahead, still finds its month's table.
pub const MONTHS_AHEAD: usize = 2;

#[derive(QueryableByName)]
struct Created {
    #[diesel(sql_type = Bool)]
    created: bool,
}

/// Creates the partitions of the months `first..=last` that do not exist yet; each creation
/// moves that month's waiting rows out of `checkins_default`. Returns the months it created;
/// none on SQLite. Safe from several servers at once: the database function takes an advisory
/// lock.
pub fn ensure(
    conn: &mut DbConnection,
    first: Month,
    last: Month,
) -> diesel::QueryResult<Vec<Month>> {
    let DbConnection::Postgresql(pg) = conn else {
        return Ok(Vec::new());
    };
    let mut created = Vec::new();
    let mut month = first;
    while month <= last {
        let row: Created = diesel::sql_query("SELECT checkin_month_partition($1) AS created")
            .bind::<Date, _>(month.first_day())
            .get_result(pg)?;
        if row.created {
            created.push(month);
        }
        month = month.next();
    }
    Ok(created)
}

/// [`ensure`] for the month before the current one (China time; offline queues upload late)
/// through [`MONTHS_AHEAD`] months after it: what the server runs at start.
pub fn ensure_current(conn: &mut DbConnection) -> diesel::QueryResult<Vec<Month>> {
    let current = Month::current();
    let last = (0..MONTHS_AHEAD).fold(current, |month, _| month.next());
    ensure(conn, current.previous(), last)
}

/// [`ensure_current`] off the async workers: what the server runs every hour, so that the next
/// months' partitions exist long before their first check-in.
pub async fn ensure_current_async(db: &Db) -> ApiResult<Vec<Month>> {
    db.run(move |conn| Ok(ensure_current(conn)?)).await
}
