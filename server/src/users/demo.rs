//! The demo users of `fixtures/demo_users.json`, created by `serve --demo`: one or more of each
//! role, with enumerators and county reviewers in two counties, so every scope can be tried.

use diesel::prelude::*;

use super::{create, validate, NewUserInput};
use crate::db::schema::users;
use crate::db::DbConnection;

const DEMO_USERS: &str = include_str!("../../../fixtures/demo_users.json");

pub fn inputs() -> anyhow::Result<Vec<NewUserInput>> {
    serde_json::from_str(DEMO_USERS).map_err(|e| anyhow::anyhow!("fixtures/demo_users.json: {e}"))
}

/// Creates the demo users that do not exist yet; returns every demo user and whether it was
/// created now. Existing accounts are left as they are.
pub fn ensure(conn: &mut DbConnection) -> anyhow::Result<Vec<(NewUserInput, bool)>> {
    let mut out = Vec::new();
    for input in inputs()? {
        let exists = users::table
            .filter(users::phone.eq(&input.phone))
            .count()
            .get_result::<i64>(conn)?
            > 0;
        if !exists {
            let user = validate(conn, &input)
                .map_err(|e| anyhow::anyhow!("demo user {}: {e}", input.phone))?;
            create(conn, &user, None, "演示用户（serve --demo）")
                .map_err(|e| anyhow::anyhow!("demo user {}: {e}", input.phone))?;
        }
        out.push((input, !exists));
    }
    Ok(out)
}

/// Generates `households` households' surveys over the last three months when the database has
/// no household survey yet, so that `serve --demo` has a review queue and a ledger to show.
/// Deterministic; most surveys approved, about one in twelve awaiting review.
pub fn ensure_surveys(
    conn: &mut DbConnection,
    keys: &crate::secrets::Keys,
    households: usize,
) -> anyhow::Result<Option<crate::ledger::seed::Seeded>> {
    use crate::db::schema::household_surveys;
    use chrono::{Datelike, Months};

    let any: i64 = household_surveys::table.count().get_result(conn)?;
    if any > 0 {
        return Ok(None);
    }
    let today = chrono::Utc::now()
        .with_timezone(&crate::domain::time::china())
        .date_naive();
    let first = today
        .with_day(1)
        .and_then(|d| d.checked_sub_months(Months::new(2)))
        .ok_or_else(|| anyhow::anyhow!("no month two months back"))?;
    let options = crate::ledger::seed::SeedOptions {
        households,
        months: 3,
        start: first.format("%Y-%m").to_string(),
        seed: 2020,
    };
    let vault = crate::privacy::Vault::new(keys);
    let seeded = crate::ledger::seed::seed(conn, &vault, &options, |_| {})?;
    Ok(Some(seeded))
}
