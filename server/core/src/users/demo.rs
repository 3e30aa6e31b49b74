//! The demo users of `fixtures/demo_users.json`, created by `serve --demo`: one or more of each
//! role, with enumerators and county reviewers in two counties, so every scope can be tried.

use diesel::prelude::*;

use super::{create, validate, NewUserInput};
use crate::db::schema::users;
use crate::db::DbConnection;

const DEMO_USERS: &str = include_str!("../../../../fixtures/demo_users.json");

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
