//! The monthly dispatch (月调度): months and their state, each county's sign-off, the close and
//! the reopen. Modelled on DHIS2's data approval: each county's reviewer signs off the county's
//! month, then the city closes it. Each handler checks the role first (someone who may not act
//! learns nothing from the path), then parses the path and calls `ledger::service`.

use actix_web::{get, post, web};

use super::ledger::path_month;
use crate::domain::{DivisionCode, DivisionLevel, Month};
use crate::error::{ApiError, ApiResult, ErrorCode, Problem};
use crate::http::{ApiJson, Auth};
use crate::ledger::months::{CloseRequest, MonthDetail, MonthState, ReopenRequest};
use crate::ledger::service;
use crate::ledger::signoff::{SignoffRequest, WithdrawRequest};
use crate::state::AppState;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_months)
        .service(get_month)
        .service(sign_off)
        .service(withdraw_signoff)
        .service(close_month)
        .service(reopen_month);
}

/// A sign-off's path: the month, then a 12-digit county code; either bad is 400 `invalid_path`.
fn month_and_county((month, county): (String, String)) -> ApiResult<(Month, DivisionCode)> {
    let county = DivisionCode::parse_level(&county, DivisionLevel::County).map_err(|e| {
        ApiError::BadRequest {
            code: ErrorCode::InvalidPath,
            detail: format!("county：{}", e.message),
            field: Some("county".into()),
        }
    })?;
    Ok((path_month(&month)?, county))
}

/// Months from the first survey to the current one, newest first, open or closed, with the
/// standing snapshot's version and how many closes were made.
#[utoipa::path(
    tag = "ledger",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The months", body = Vec<MonthState>),
        (status = 403, description = "`forbidden_role`: county reviewers and the city", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/months")]
pub async fn list_months(
    state: web::Data<AppState>,
    Auth(caller): Auth,
) -> ApiResult<web::Json<Vec<MonthState>>> {
    service::months(&state.db, &caller).await.map(web::Json)
}

/// A month's dispatch: whether it has ended, each county's sign-off in the current round (not
/// signed; signed by whom, when, with the note; withdrawn) with its surveys awaiting review, and
/// every close with its numbered snapshot and reopen. A county reviewer sees their own county.
#[utoipa::path(
    tag = "ledger",
    security(("bearer" = [])),
    params(("month" = String, Path, description = "`YYYY-MM`, not after the current month")),
    responses(
        (status = 200, description = "The month", body = MonthDetail),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: county reviewers and the city", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/months/{month}")]
pub async fn get_month(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> ApiResult<web::Json<MonthDetail>> {
    caller.require_role(&[
        crate::domain::Role::CountyReviewer,
        crate::domain::Role::CityAdmin,
    ])?;
    let month = path_month(&path.into_inner())?;
    service::month(&state.db, &caller, month)
        .await
        .map(web::Json)
}

/// Signs off the county's month (its county reviewers only; the city does not sign for a
/// county, it closes with a reason instead). Only once the month has ended. Refused with the
/// count (409 `surveys_pending`) while surveys of the month in the county await review
/// (`submitted` or `reopened`), unless `reason` is given (audited with the count). Audited.
#[utoipa::path(
    tag = "ledger",
    security(("bearer" = [])),
    params(
        ("month" = String, Path, description = "`YYYY-MM`, not after the current month"),
        ("county" = String, Path, description = "12-digit county code"),
    ),
    request_body = SignoffRequest,
    responses(
        (status = 200, description = "Signed off: the month as the caller sees it", body = MonthDetail),
        (status = 400, description = "`invalid_path`, `malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: county reviewers only; `out_of_scope`: another county", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such county", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`month_not_ended`, `month_already_closed`, `already_signed_off`, or `surveys_pending` (the detail names the count)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: note or reason too long", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/months/{month}/signoffs/{county}")]
pub async fn sign_off(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<(String, String)>,
    body: ApiJson<SignoffRequest>,
) -> ApiResult<web::Json<MonthDetail>> {
    service::require_signer(&caller)?;
    let (month, county) = month_and_county(path.into_inner())?;
    service::sign_off(&state.db, &caller, month, county, body.0)
        .await
        .map(web::Json)
}

/// Withdraws the county's sign-off before the close (its county reviewers; audited, with an
/// optional reason). The month then needs a new sign-off before it can close.
#[utoipa::path(
    tag = "ledger",
    security(("bearer" = [])),
    params(
        ("month" = String, Path, description = "`YYYY-MM`, not after the current month"),
        ("county" = String, Path, description = "12-digit county code"),
    ),
    request_body = WithdrawRequest,
    responses(
        (status = 200, description = "Withdrawn: the month as the caller sees it", body = MonthDetail),
        (status = 400, description = "`invalid_path`, `malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: county reviewers only; `out_of_scope`: another county", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such county", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`month_already_closed`, or `not_signed_off`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: reason too long", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/months/{month}/signoffs/{county}/withdraw")]
pub async fn withdraw_signoff(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<(String, String)>,
    body: ApiJson<WithdrawRequest>,
) -> ApiResult<web::Json<MonthDetail>> {
    service::require_signer(&caller)?;
    let (month, county) = month_and_county(path.into_inner())?;
    service::withdraw_signoff(&state.db, &caller, month, county, body.0)
        .await
        .map(web::Json)
}

/// Closes a month (city admins): every village's figures as of the month's end are frozen as
/// its next snapshot version; the inventory of a closed month is read from it, and later changes
/// to the month's surveys show from the next month on. Only a month that has ended (Asia/
/// Shanghai; no override). Without every county's sign-off (409 `signoffs_missing`, naming the
/// counties) or with surveys awaiting review (409 `surveys_pending`, with the count) only with a
/// `reason`, audited with what was missing. A closed month is 409 `month_already_closed`.
#[utoipa::path(
    tag = "ledger",
    security(("bearer" = [])),
    params(("month" = String, Path, description = "`YYYY-MM`, not after the current month")),
    request_body = CloseRequest,
    responses(
        (status = 200, description = "Closed", body = MonthDetail),
        (status = 400, description = "`invalid_path`, `malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: city admins only", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`month_not_ended`, `month_already_closed`, `signoffs_missing`, `surveys_pending`, or `conflict` (a sign-off changed meanwhile)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: reason too long", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/months/{month}/close")]
pub async fn close_month(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    body: ApiJson<CloseRequest>,
) -> ApiResult<web::Json<MonthDetail>> {
    service::require_closer(&caller)?;
    let month = path_month(&path.into_inner())?;
    service::close_month(&state.db, &caller, month, body.0)
        .await
        .map(web::Json)
}

/// Reopens a closed month with a reason (city admins; audited). Its snapshot is kept (listed
/// in `closes` as reopened), the figures are live again, the counties must sign off again, and
/// the next close makes the next snapshot version.
#[utoipa::path(
    tag = "ledger",
    security(("bearer" = [])),
    params(("month" = String, Path, description = "`YYYY-MM`, not after the current month")),
    request_body = ReopenRequest,
    responses(
        (status = 200, description = "Reopened", body = MonthDetail),
        (status = 400, description = "`invalid_path`, `malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: city admins only", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`month_not_closed`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: reason missing or too long", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/months/{month}/reopen")]
pub async fn reopen_month(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    body: ApiJson<ReopenRequest>,
) -> ApiResult<web::Json<MonthDetail>> {
    service::require_closer(&caller)?;
    let month = path_month(&path.into_inner())?;
    service::reopen_month(&state.db, &caller, month, body.0)
        .await
        .map(web::Json)
}
