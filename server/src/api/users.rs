//! `/users`: the wire shapes of the accounts service.

use actix_web::{get, post, web, HttpResponse};

use crate::error::{ApiResult, Problem};
use crate::http::ApiJson;
use crate::http::Auth;
use crate::state::AppState;
use crate::users::service::{self, UserList, UserSummary};
use crate::users::NewUserInput;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_users).service(create_user);
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
    Auth(caller): Auth,
) -> ApiResult<web::Json<UserList>> {
    Ok(web::Json(service::list(&state.db, &caller).await?))
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
