//! The ledger's JSON endpoints: the inventory of a node, months and their close, quotas,
//! real-name ledgers and downloads. Each turns its query into typed filters and calls
//! `ledger::service`.

use actix_web::{get, put, web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::area;
use crate::domain::{DivisionLevel, Month};
use crate::error::{bad_query, ApiError, ApiResult, ErrorCode, Problem};
use crate::http::Auth;
use crate::http::{ApiJson, ApiQuery};
use crate::ledger::export::{Download, ExportFormat};
use crate::ledger::inventory::Inventory;
use crate::ledger::node::NodeFilter;
use crate::ledger::quotas::{QuotaRequest, YearQuotas};
use crate::ledger::roster::{self, RosterKind};
use crate::ledger::service::{self, RosterFilter};
use crate::state::AppState;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(get_inventory)
        .service(get_quotas)
        .service(put_quotas)
        .service(get_roster)
        .service(export_inventory);
}

/// Streams a download the ledger hands out.
pub fn stream(state: &AppState, download: Download) -> ApiResult<HttpResponse> {
    crate::http::export::download(&state.db, download)
}

/// A path's month: as a query's, but a bad one is 400 `invalid_path`.
pub fn path_month(raw: &str) -> ApiResult<Month> {
    area::month("month", Some(raw)).map_err(|e| match e {
        ApiError::BadRequest { detail, field, .. } => ApiError::BadRequest {
            code: ErrorCode::InvalidPath,
            detail,
            field,
        },
        other => other,
    })
}

/// A year from a path: 2015 to 2100, else 400 `invalid_path`.
fn parse_year(raw: &str) -> ApiResult<i32> {
    raw.parse::<i32>()
        .ok()
        .filter(|y| (2015..=2100).contains(y))
        .ok_or_else(|| ApiError::BadRequest {
            code: ErrorCode::InvalidPath,
            detail: "year：须为 2015 至 2100 之间的年份".into(),
            field: Some("year".into()),
        })
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
    Auth(caller): Auth,
    query: ApiQuery<NodeQuery>,
) -> ApiResult<web::Json<Inventory>> {
    let q = query.0;
    let month = area::month("month", q.month.as_deref())?;
    let node = NodeFilter::parse(q.level, q.code.as_deref())?;
    service::inventory(&state.db, &caller, node, month)
        .await
        .map(web::Json)
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
    Auth(caller): Auth,
    path: web::Path<String>,
) -> ApiResult<web::Json<YearQuotas>> {
    service::require_quota_reader(&caller)?;
    let year = parse_year(&path.into_inner())?;
    service::quotas(&state.db, &caller, year)
        .await
        .map(web::Json)
}

/// Sets the year's post quotas (city admins; audited): the city's totals (`city`; 2020's are
/// preloaded from the notice: 2,592 special posts 扶贫特岗, 620 temporary posts 临时公益岗) and
/// the named counties' shares, which together may not exceed the city's totals (422
/// `quota_exceeded` on `counties`). Temporary posts at 800 yuan a month by default.
#[utoipa::path(
    tag = "ledger",
    security(("bearer" = [])),
    params(("year" = i32, Path, description = "e.g. 2020")),
    request_body = QuotaRequest,
    responses(
        (status = 200, description = "The year's quotas after the change", body = YearQuotas),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: city admins only", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: unknown county, negative count, shares over the city's totals (`quota_exceeded`) …", body = Problem, content_type = "application/problem+json"),
    )
)]
#[put("/quotas/{year}")]
pub async fn put_quotas(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    body: ApiJson<QuotaRequest>,
) -> ApiResult<web::Json<YearQuotas>> {
    service::require_closer(&caller)?;
    let year = parse_year(&path.into_inner())?;
    service::set_quotas(&state.db, &caller, year, body.0)
        .await
        .map(web::Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RosterQuery {
    /// `city` (default), `county`, `township` or `village`.
    pub level: Option<DivisionLevel>,
    /// 12-digit code of the node (not needed for the city).
    pub code: Option<String>,
    /// `YYYY-MM` (default: the current month).
    pub month: Option<String>,
    /// From `next_cursor` of the previous page (JSON only).
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 100; JSON only).
    pub limit: Option<usize>,
    /// Show ID numbers in full (county reviewers and the city; recorded in the audit log).
    pub reveal: Option<bool>,
    /// Why the ID numbers are needed: required with `reveal=true` (400 `invalid_query`
    /// naming `reason` without one), at most 200 characters, written to the audit log.
    pub reason: Option<String>,
    /// `json` (default, paged), `csv` or `xlsx` (the whole ledger, streamed).
    pub format: Option<ExportFormat>,
}

/// The roster's kind from its path: 400 `invalid_path` naming the kinds.
fn roster_kind(raw: &str) -> ApiResult<RosterKind> {
    RosterKind::parse(raw).ok_or_else(|| ApiError::BadRequest {
        code: ErrorCode::InvalidPath,
        detail: format!(
            "kind：须为 {} 之一",
            RosterKind::ALL.map(|k| k.as_str()).join("、")
        ),
        field: Some("kind".into()),
    })
}

/// A real-name ledger (实名制台账): the people behind one of the ledger's counts in a node, as
/// of the month's end (each household's latest approved version), village by village. ID
/// numbers are masked unless a county reviewer or the city asks with `reveal=true` (audited).
/// `format=csv` or `xlsx` downloads the whole ledger, streamed. The list is computed from the
/// current review states, also for a closed month (whose counts are frozen).
#[utoipa::path(
    tag = "ledger",
    security(("bearer" = [])),
    params(("kind" = crate::ledger::roster::RosterKind, Path, description = "Which ledger"), RosterQuery),
    responses(
        (status = 200, description = "A page of people (`format=json`), or the whole ledger as CSV (UTF-8 with BOM) or XLSX", content(
            (crate::ledger::service::RosterPage = "application/json"),
            (inline(String) = "text/csv"),
            (inline(crate::domain::Binary) = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        )),
        (status = 400, description = "`invalid_path` or `invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`out_of_scope`, or `forbidden_role` to reveal", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such node", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/ledgers/{kind}")]
pub async fn get_roster(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    query: ApiQuery<RosterQuery>,
) -> ApiResult<HttpResponse> {
    let kind = roster_kind(&path.into_inner())?;
    let q = query.0;
    let month = area::month("month", q.month.as_deref())?;
    let reveal = crate::auth::reveal_allowed(&caller, q.reveal, q.reason.as_deref())?;
    let format = q.format.unwrap_or_default();
    let after = q.cursor.as_deref().map(roster::decode_cursor).transpose()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(bad_query("limit", "须为 1 至 500"));
    }
    let filter = RosterFilter {
        kind,
        node: NodeFilter::parse(q.level, q.code.as_deref())?,
        month,
        reveal,
        reason: q.reason,
        after,
        limit,
    };
    if format != ExportFormat::Json {
        let download =
            service::roster_export(&state.db, &state.vault, &caller, filter, format).await?;
        return stream(&state, download);
    }
    let page = service::roster_page(&state.db, &state.vault, &caller, filter).await?;
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InventoryExportQuery {
    /// `city` (default), `county`, `township` or `village`.
    pub level: Option<DivisionLevel>,
    /// 12-digit code of the node (not needed for the city).
    pub code: Option<String>,
    /// `YYYY-MM` (default: the current month).
    pub month: Option<String>,
    /// `xlsx` (default) or `csv`.
    pub format: Option<ExportFormat>,
}

/// The ledger of a node as a spreadsheet: XLSX with one sheet per level below the node (counties,
/// townships, villages), each with its title row, Chinese headers (frozen), a row per place and
/// the node's totals row; or CSV of the villages with a totals row. Approved figures as of the
/// month's end (a closed month's from its snapshot).
#[utoipa::path(
    tag = "ledger",
    security(("bearer" = [])),
    params(InventoryExportQuery),
    responses(
        (status = 200, description = "The file: XLSX (`format=xlsx`, the default) or CSV (UTF-8 with BOM)", content(
            (inline(crate::domain::Binary) = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (inline(String) = "text/csv"),
        )),
        (status = 400, description = "`invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`out_of_scope`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such node", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/inventory/export")]
pub async fn export_inventory(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    query: ApiQuery<InventoryExportQuery>,
) -> ApiResult<HttpResponse> {
    let q = query.0;
    let month = area::month("month", q.month.as_deref())?;
    let format = q.format.unwrap_or(ExportFormat::Xlsx);
    let node = NodeFilter::parse(q.level, q.code.as_deref())?;
    let download = service::inventory_export(&state.db, &caller, node, month, format).await?;
    stream(&state, download)
}
