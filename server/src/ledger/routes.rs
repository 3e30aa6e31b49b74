//! The ledger's endpoints: the inventory of a node, months and their close, quotas.

use actix_web::{get, post, put, web};
use chrono::Utc;
use serde::Deserialize;
use utoipa::IntoParams;

use super::inventory::{self, Inventory, Node, CITY};
use super::months::{self, MonthState};
use super::quotas::{self, QuotaRequest, YearQuotas};
use crate::auth::{Caller, ScopeLevel};
use crate::db::write_transaction;
use crate::domain::{DivisionCode, DivisionLevel, Role};
use crate::error::{ApiError, ApiResult, ErrorCode, Problem};
use crate::http::{ApiJson, ApiQuery};
use crate::startup::AppState;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(get_inventory)
        .service(list_months)
        .service(close_month)
        .service(get_quotas)
        .service(put_quotas);
}

fn bad_query(field: &str, detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code: ErrorCode::InvalidQuery,
        detail: format!("{field}: {}", detail.into()),
        field: Some(field.into()),
    }
}

/// The current month in Asia/Shanghai.
pub fn current_month() -> String {
    Utc::now()
        .with_timezone(&crate::surveys::validate::china())
        .format("%Y-%m")
        .to_string()
}

/// Parses a `YYYY-MM` month, not after the current one.
pub fn parse_month(field: &str, value: Option<&str>) -> ApiResult<String> {
    let current = current_month();
    let Some(value) = value else {
        return Ok(current);
    };
    let valid = value.len() == 7
        && chrono::NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d").is_ok()
        && value >= "2015-01";
    if !valid {
        return Err(bad_query(field, "must be YYYY-MM, from 2015-01"));
    }
    if value > current.as_str() {
        return Err(bad_query(
            field,
            format!("{value} has not begun (it is {current})"),
        ));
    }
    Ok(value.to_owned())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NodeQuery {
    /// `city` (default), `county`, `township` or `village`.
    pub level: Option<DivisionLevel>,
    /// 12-digit code of the node (not needed for the city).
    pub code: Option<String>,
    /// `YYYY-MM` (default: the current month, Asia/Shanghai).
    pub month: Option<String>,
}

/// Resolves and authorises the node a caller asks for: county reviewers read their county and
/// what is in it, field users their own villages, the city everything.
pub fn resolve_node(
    conn: &mut crate::db::DbConnection,
    caller: &Caller,
    level: Option<DivisionLevel>,
    code: Option<&str>,
) -> ApiResult<Node> {
    let level = level.unwrap_or(DivisionLevel::City);
    let code = match (level, code) {
        (DivisionLevel::City, None) => CITY.to_owned(),
        (_, Some(code)) => code.to_owned(),
        (_, None) => {
            return Err(bad_query(
                "code",
                format!("a {} node needs its code", level.as_str()),
            ))
        }
    };
    let code = DivisionCode::parse_level(&code, level).map_err(|e| bad_query("code", e.message))?;
    let allowed = match (caller.scope_level(), level) {
        (ScopeLevel::City, _) => true,
        (ScopeLevel::County, DivisionLevel::City) => false,
        (ScopeLevel::County, _) => caller.can_access_county(&code.county()),
        (ScopeLevel::Villages, DivisionLevel::Village) => caller.can_access_village(&code),
        (ScopeLevel::Villages, _) => false,
    };
    if !allowed {
        return Err(ApiError::Forbidden {
            code: ErrorCode::OutOfScope,
            detail: format!("{} {} is outside your scope", level.as_str(), code.as_str()),
        });
    }
    inventory::node(conn, level, &code)
}

/// The ledger (需求台账) of a node for a month: every figure of SPEC §7 from each household's
/// latest approved version as of the month's end, beside the counts including surveys awaiting
/// review and last month's figure; the node's children (counties, townships or villages) with
/// the same figures; quota progress for the city and counties. A closed month is read from its
/// snapshot. County reviewers read their county; field users their own villages.
#[utoipa::path(
    tag = "ledger",
    security(("bearer" = [])),
    params(NodeQuery),
    responses(
        (status = 200, description = "The node's inventory", body = Inventory),
        (status = 400, description = "`invalid_query`: bad level, code or month", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`out_of_scope`: the node is outside the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such node", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/inventory")]
pub async fn get_inventory(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<NodeQuery>,
) -> ApiResult<web::Json<Inventory>> {
    let q = query.0;
    let month = parse_month("month", q.month.as_deref())?;
    let (inventory, fresh) = state
        .db
        .run(move |conn| {
            let node = resolve_node(conn, &caller, q.level, q.code.as_deref())?;
            inventory::inventory(conn, &node, &month)
        })
        .await?;
    if fresh.iter().any(|f| !f.is_empty()) {
        state
            .db
            .write(move |conn| {
                write_transaction(conn, |conn| {
                    for f in &fresh {
                        super::cache::store(conn, f)?;
                    }
                    Ok(())
                })
            })
            .await?;
    }
    Ok(web::Json(inventory))
}

/// Months from the first survey to the current one, newest first, open or closed.
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
    caller: Caller,
) -> ApiResult<web::Json<Vec<MonthState>>> {
    caller.require_role(&[Role::CountyReviewer, Role::CityAdmin])?;
    let current = current_month();
    let list = state
        .db
        .run(move |conn| Ok(months::list(conn, &current)?))
        .await?;
    Ok(web::Json(list))
}

/// Closes a month (city admins): every village's figures as of the month's end are frozen as
/// its snapshot; the inventory of a closed month is read from it, and later changes to the
/// month's surveys show from the next month on. Closing twice is 409 `illegal_transition`.
#[utoipa::path(
    tag = "ledger",
    security(("bearer" = [])),
    params(("month" = String, Path, description = "`YYYY-MM`, not after the current month")),
    responses(
        (status = 200, description = "Closed", body = MonthState),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: city admins only", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`illegal_transition`: already closed", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/months/{month}/close")]
pub async fn close_month(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<web::Json<MonthState>> {
    caller.require_role(&[Role::CityAdmin])?;
    let month = parse_month("month", Some(&path.into_inner())).map_err(|e| match e {
        ApiError::BadRequest { detail, field, .. } => ApiError::BadRequest {
            code: ErrorCode::InvalidPath,
            detail,
            field,
        },
        other => other,
    })?;
    let now = Utc::now();
    let closed = state
        .db
        .write(move |conn| {
            write_transaction(conn, |conn| {
                months::close(conn, &month, &caller.user_id, now)
            })
        })
        .await?;
    Ok(web::Json(closed))
}

fn parse_year(raw: &str) -> ApiResult<i32> {
    raw.parse::<i32>()
        .ok()
        .filter(|y| (2015..=2100).contains(y))
        .ok_or_else(|| ApiError::BadRequest {
            code: ErrorCode::InvalidPath,
            detail: "year: a year from 2015 to 2100".into(),
            field: Some("year".into()),
        })
}

/// The year's post quotas per county (county reviewers and the city).
#[utoipa::path(
    tag = "ledger",
    security(("bearer" = [])),
    params(("year" = i32, Path, description = "e.g. 2020")),
    responses(
        (status = 200, description = "The quotas set for the year", body = YearQuotas),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/quotas/{year}")]
pub async fn get_quotas(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<web::Json<YearQuotas>> {
    caller.require_role(&[Role::CountyReviewer, Role::CityAdmin])?;
    let year = parse_year(&path.into_inner())?;
    let quotas = state
        .db
        .run(move |conn| Ok(quotas::year(conn, year)?))
        .await?;
    Ok(web::Json(quotas))
}

/// Sets the year's post quotas of the named counties (city admins; audited). The seed's city
/// totals are 2,592 special posts and 620 temporary posts at 800 yuan a month.
#[utoipa::path(
    tag = "ledger",
    security(("bearer" = [])),
    params(("year" = i32, Path, description = "e.g. 2020")),
    request_body = QuotaRequest,
    responses(
        (status = 200, description = "The year's quotas after the change", body = YearQuotas),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: city admins only", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: unknown county, negative count …", body = Problem, content_type = "application/problem+json"),
    )
)]
#[put("/quotas/{year}")]
pub async fn put_quotas(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: ApiJson<QuotaRequest>,
) -> ApiResult<web::Json<YearQuotas>> {
    caller.require_role(&[Role::CityAdmin])?;
    let year = parse_year(&path.into_inner())?;
    let request = body.0;
    let now = Utc::now();
    let quotas = state
        .db
        .write(move |conn| {
            write_transaction(conn, |conn| {
                quotas::validate(conn, year, &request)?;
                quotas::set(conn, year, &request, &caller.user_id, now)?;
                Ok(quotas::year(conn, year)?)
            })
        })
        .await?;
    Ok(web::Json(quotas))
}
