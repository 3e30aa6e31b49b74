//! Accounts for the administration API: the list a reviewer or the city administrator may see,
//! and creation by the city administrator.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::{create as store, validate, NewUserInput};
use crate::auth::{Caller, ScopeLevel};
use crate::db::schema::{user_villages, users};
use crate::db::{Db, DbConnection};
use crate::domain::Role;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Serialize, ToSchema)]
pub struct UserSummary {
    pub id: String,
    pub phone: String,
    pub name: String,
    pub role: Role,
    pub role_label: String,
    pub county_code: Option<String>,
    pub village_codes: Vec<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub count: usize,
    pub users: Vec<UserSummary>,
}

/// A user as the list shows it.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct UserRow {
    id: String,
    phone: String,
    name: String,
    role: String,
    county_code: Option<String>,
    active: bool,
    created_at: NaiveDateTime,
}

fn summaries(conn: &mut DbConnection, rows: Vec<UserRow>) -> ApiResult<Vec<UserSummary>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut villages: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (user, village) in user_villages::table
        .filter(user_villages::user_id.eq_any(&ids))
        .order((user_villages::user_id, user_villages::village_code))
        .load::<(String, String)>(conn)?
    {
        villages.entry(user).or_default().push(village);
    }
    rows.into_iter()
        .map(|r| {
            let role = Role::parse(&r.role).ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("user {} has role {}", r.id, r.role))
            })?;
            Ok(UserSummary {
                village_codes: villages.remove(&r.id).unwrap_or_default(),
                id: r.id,
                phone: r.phone,
                name: r.name,
                role,
                role_label: role.label().to_owned(),
                county_code: r.county_code,
                active: r.active,
                created_at: r.created_at.and_utc(),
            })
        })
        .collect()
}

/// The accounts the caller may see, by phone number: all of them for the city administrator,
/// the county's for a county reviewer; field users are refused (403).
pub async fn list(db: &Db, caller: &Caller) -> ApiResult<UserList> {
    caller.require_role(&[Role::CityAdmin, Role::CountyReviewer])?;
    let caller = caller.clone();
    let list = db
        .run(move |conn| {
            let mut query = users::table
                .select(UserRow::as_select())
                .order(users::phone)
                .into_boxed();
            if caller.scope_level() == ScopeLevel::County {
                let county = caller.county_code.as_ref().map(|c| c.as_str().to_owned());
                query = query.filter(users::county_code.eq(county));
            }
            let rows: Vec<UserRow> = query.load(conn)?;
            summaries(conn, rows)
        })
        .await?;
    Ok(UserList {
        count: list.len(),
        users: list,
    })
}

/// Creates an account (city administrator only), audited as done by the caller through `how`.
pub async fn create(
    db: &Db,
    caller: &Caller,
    input: NewUserInput,
    how: &'static str,
) -> ApiResult<UserSummary> {
    caller.require_role(&[Role::CityAdmin])?;
    let by = caller.user_id.clone();
    let summary = db
        .write(move |conn| {
            let user = validate(conn, &input)?;
            let id = store(conn, &user, Some(&by), how)?;
            let row: UserRow = users::table
                .find(&id)
                .select(UserRow::as_select())
                .first(conn)?;
            let mut list = summaries(conn, vec![row])?;
            list.pop()
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("created user {id} vanished")))
        })
        .await?;
    tracing::info!(by = %caller.user_id, user_id = %summary.id, role = %summary.role, "user created");
    Ok(summary)
}
