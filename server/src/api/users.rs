//! `/users`: the wire shapes of the accounts service (who may do what: `users::manage`).

use actix_web::{get, patch, post, web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::area;
use crate::domain::{DivisionLevel, Role};
use crate::error::{bad_query, ApiResult, Problem};
use crate::http::Auth;
use crate::http::{ApiJson, ApiQuery};
use crate::state::AppState;
use crate::users::manage::UserChanges;
use crate::users::service::{self, PasswordReset, UserFilter, UserList, UserSummary};
use crate::users::NewUserInput;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_users)
        .service(create_user)
        .service(get_user)
        .service(patch_user)
        .service(reset_password);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// 12-digit county code (a county reviewer's own only).
    pub county: Option<String>,
    /// `enumerator`, `first_secretary`, `county_reviewer` or `city_admin`.
    pub role: Option<String>,
    /// `true`: active accounts only; `false`: deactivated ones only.
    pub active: Option<bool>,
}

impl UserQuery {
    pub fn filter(&self) -> ApiResult<UserFilter> {
        let role = self
            .role
            .as_deref()
            .map(|r| {
                Role::parse(r).ok_or_else(|| {
                    bad_query(
                        "role",
                        "须为 enumerator、first_secretary、county_reviewer 或 city_admin",
                    )
                })
            })
            .transpose()?;
        Ok(UserFilter {
            county: area::code("county", self.county.as_deref(), DivisionLevel::County)?,
            role,
            active: self.active,
        })
    }
}

/// Lists accounts: all of them for the city administrator, the county's for a county reviewer;
/// narrowed by county, role and whether active.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(UserQuery),
    responses(
        (status = 200, description = "Accounts ordered by phone number", body = UserList),
        (status = 403, description = "`forbidden_role`: field users cannot list accounts; `out_of_scope`: another county", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    query: ApiQuery<UserQuery>,
) -> ApiResult<web::Json<UserList>> {
    let filter = query.0.filter()?;
    Ok(web::Json(service::list(&state.db, &caller, filter).await?))
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
    Auth(caller): Auth,
    body: ApiJson<NewUserInput>,
) -> ApiResult<HttpResponse> {
    let summary = service::create(&state.db, &caller, body.0, "POST /api/v1/users").await?;
    Ok(HttpResponse::Created().json(summary))
}

/// One account: for the city administrator, or a county reviewer of its county.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The account", body = UserSummary),
        (status = 403, description = "`forbidden_role`: field users; `out_of_scope`: an account of another county", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/users/{id}")]
pub async fn get_user(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> ApiResult<web::Json<UserSummary>> {
    Ok(web::Json(
        service::get(&state.db, &caller, path.into_inner()).await?,
    ))
}

/// Edits an account: name, villages, county, active (absent fields stay as they are).
///
/// The city administrator edits every account, but never deactivates their own. A county
/// reviewer edits the enumerators and first secretaries of their county (name, villages in the
/// county, active) and never changes a county. Deactivating ends every session of the account
/// at once: its access and refresh tokens answer 401 `account_disabled` from the next request.
/// Giving a user a village another user of the same role holds hands it over (the previous
/// holder loses it; their surveys, check-ins and audit entries stay theirs).
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id")),
    request_body = UserChanges,
    responses(
        (status = 200, description = "The account after the edit", body = UserSummary),
        (status = 403, description = "`forbidden_role`: field users; a county reviewer changing a county, a reviewer or an administrator; `out_of_scope`: an account of another county", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `name` (`length`), `villages` (`required`, `one_village`, `one_county`, `scope_mismatch`), `villages[i]` (`division_code_format`, `division_level`, `unknown_village`, `out_of_scope`), `county` (`division_code_format`, `division_level`, `unknown_county`, `scope_mismatch`), `active` (`own_account`), `reason` (`length`)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/users/{id}")]
pub async fn patch_user(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    body: ApiJson<UserChanges>,
) -> ApiResult<web::Json<UserSummary>> {
    let how = "PATCH /api/v1/users/{id}";
    Ok(web::Json(
        service::update(&state.db, &caller, path.into_inner(), body.0, how).await?,
    ))
}

/// Resets an account's password (city administrator): answers a one-time password to give the
/// user, ends every session of the account, and makes the next login change the password.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The one-time password, shown this once", body = PasswordReset),
        (status = 403, description = "`forbidden_role`: the city administrator only", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `id` (`own_account`): your own password is changed with `POST /api/v1/me/password`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/users/{id}/password-reset")]
pub async fn reset_password(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> ApiResult<web::Json<PasswordReset>> {
    let how = "POST /api/v1/users/{id}/password-reset";
    Ok(web::Json(
        service::reset_password(&state.db, &caller, path.into_inner(), how).await?,
    ))
}
