use std::collections::BTreeMap;

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::{create, validate, NewUserInput};
use crate::auth::{Caller, ScopeLevel};
use crate::db::schema::{user_villages, users};
use crate::db::DbConnection;
use crate::domain::Role;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::ApiJson;
use crate::state::AppState;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_users).service(create_user);
}

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

type Row = (
    String,
    String,
    String,
    String,
    Option<String>,
    bool,
    NaiveDateTime,
);
type RowColumns = (
    users::id,
    users::phone,
    users::name,
    users::role,
    users::county_code,
    users::active,
    users::created_at,
);
const ROW: RowColumns = (
    users::id,
    users::phone,
    users::name,
    users::role,
    users::county_code,
    users::active,
    users::created_at,
);

fn summaries(conn: &mut DbConnection, rows: Vec<Row>) -> ApiResult<Vec<UserSummary>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let mut villages: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (user, village) in user_villages::table
        .filter(user_villages::user_id.eq_any(&ids))
        .order((user_villages::user_id, user_villages::village_code))
        .load::<(String, String)>(conn)?
    {
        villages.entry(user).or_default().push(village);
    }
    rows.into_iter()
        .map(|(id, phone, name, role, county_code, active, created_at)| {
            let role = Role::parse(&role)
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("user {id} has role {role}")))?;
            Ok(UserSummary {
                village_codes: villages.remove(&id).unwrap_or_default(),
                id,
                phone,
                name,
                role,
                role_label: role.label().to_owned(),
                county_code,
                active,
                created_at: created_at.and_utc(),
            })
        })
        .collect()
}

/// Lists accounts: all of them for the city administrator, the county's for a county reviewer.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Accounts ordered by phone number", body = UserList),
        (status = 403, description = "`forbidden_role`: field users cannot list accounts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    caller: Caller,
) -> ApiResult<web::Json<UserList>> {
    caller.require_role(&[Role::CityAdmin, Role::CountyReviewer])?;
    let list = state
        .db
        .run(move |conn| {
            let mut query = users::table.select(ROW).order(users::phone).into_boxed();
            if caller.scope_level() == ScopeLevel::County {
                let county = caller.county_code.as_ref().map(|c| c.as_str().to_owned());
                query = query.filter(users::county_code.eq(county));
            }
            let rows: Vec<Row> = query.load(conn)?;
            summaries(conn, rows)
        })
        .await?;
    Ok(web::Json(UserList {
        count: list.len(),
        users: list,
    }))
}

/// Creates an account (city administrator only).
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    request_body = NewUserInput,
    responses(
        (status = 201, description = "Created", body = UserSummary),
        (status = 403, description = "`forbidden_role`: only the city administrator creates accounts", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the phone number is already registered", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<NewUserInput>,
) -> ApiResult<HttpResponse> {
    caller.require_role(&[Role::CityAdmin])?;
    let input = body.0;
    let by = caller.user_id.clone();
    let summary = state
        .db
        .write(move |conn| {
            let user = validate(conn, &input)?;
            let id = create(conn, &user, Some(&by), "POST /api/v1/users")?;
            let row: Row = users::table.find(&id).select(ROW).first(conn)?;
            let mut list = summaries(conn, vec![row])?;
            list.pop()
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("created user {id} vanished")))
        })
        .await?;
    tracing::info!(by = %caller.user_id, user_id = %summary.id, role = %summary.role, "user created");
    Ok(HttpResponse::Created().json(summary))
}
