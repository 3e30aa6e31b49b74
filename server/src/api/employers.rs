//! `/employers` (the registry: list, import, template, edit) and `/ledgers/employers` (labourers
//! per employer and an employer's real-name list): the wire shapes of `employers::service`,
//! `employers::import` and `employers::ledger`.

use actix_web::http::header;
use actix_web::{get, post, put, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{area, Area};
use crate::domain::{DivisionLevel, EmployerKind};
use crate::employers::import::{self, ImportReport, SheetFormat};
use crate::employers::ledger::{self, EmployerLedger, EmployerPeople};
use crate::employers::service::{self, Employer, EmployerFilter, EmployerInput, EmployerPage};
use crate::error::{bad_query, ApiError, ApiResult, Problem};
use crate::http::{declared_length, read_limited};
use crate::http::{ApiJson, ApiQuery, Auth};
use crate::ledger::export::{ExportFormat, XLSX};
use crate::state::AppState;

/// Mounted before the ledger's routes: `/ledgers/employers` is not a real-name ledger kind.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_employers)
        .service(import_template)
        .service(import_employers)
        .service(put_employer)
        .service(employer_ledger)
        .service(employer_people);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EmployerQuery {
    /// 12-digit county code.
    pub county: Option<String>,
    /// `leading_enterprise`, `cooperative` or `workshop`.
    pub kind: Option<EmployerKind>,
    /// Part of the name or of the credit code.
    pub q: Option<String>,
    /// Also list inactive employers (default false).
    pub include_inactive: Option<bool>,
    /// From `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–1000 (default 500).
    pub limit: Option<i64>,
}

/// The employer registry (reference data: every signed-in user), in county, kind and name
/// order, active employers only unless `include_inactive=true`.
#[utoipa::path(
    tag = "employers",
    security(("bearer" = [])),
    params(EmployerQuery),
    responses(
        (status = 200, description = "A page of the registry", body = EmployerPage),
        (status = 400, description = "`invalid_query`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/employers")]
pub async fn list_employers(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    query: ApiQuery<EmployerQuery>,
) -> ApiResult<web::Json<EmployerPage>> {
    let q = query.0;
    let offset = match q.cursor.as_deref() {
        None => 0,
        Some(c) => c
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| bad_query("cursor", "不是本服务器给出的翻页游标"))?,
    };
    let text = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if text.is_some_and(|t| t.chars().count() > 50) {
        return Err(bad_query("q", "最多 50 个字符"));
    }
    let filter = EmployerFilter {
        county: area::code("county", q.county.as_deref(), DivisionLevel::County)?,
        kind: q.kind,
        q: text.map(str::to_owned),
        include_inactive: q.include_inactive.unwrap_or(false),
        offset,
        limit: area::limit(q.limit, 500, 1000)?,
    };
    Ok(web::Json(service::list(&state.db, &caller, filter).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Check and report without storing anything (default false).
    pub dry_run: Option<bool>,
}

pub(crate) fn sheet_format(req: &HttpRequest) -> ApiResult<SheetFormat> {
    let value = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match value.as_deref() {
        Some("text/csv") => Ok(SheetFormat::Csv),
        Some(XLSX) => Ok(SheetFormat::Xlsx),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "只接受 CSV（text/csv）或 XLSX（{XLSX}），收到的是 {}",
            other.unwrap_or("没有 Content-Type 的请求")
        ))),
    }
}

/// Imports employers from a sheet (city admins; audited): CSV (UTF-8) or XLSX, first sheet,
/// with the columns 名称, 类型 (龙头企业/合作社/扶贫车间 or the wire value), 统一社会信用代码
/// (optional), 所在县（市、区） (code or name), 所在村 (village code, optional), 地址 (optional).
/// Every row is checked first: any broken rule answers 422 listing each by `rows[<row
/// number>].<field>` and stores nothing. A row whose credit code (or, without one, county and
/// name) is registered updates that employer; else it is added. At most 5,000 rows, 4 MiB.
#[utoipa::path(
    tag = "employers",
    security(("bearer" = [])),
    params(ImportQuery),
    request_body(description = "The sheet", content(
        (inline(crate::domain::Binary) = "text/csv"),
        (inline(crate::domain::Binary) = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    )),
    responses(
        (status = 200, description = "What was (or, on a dry run, would be) created, updated and left unchanged", body = ImportReport),
        (status = 403, description = "`forbidden_role`: city admins only", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: neither CSV nor XLSX", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: every bad row by `rows[n].name|kind|credit_code|county|village|address` (rules `required`, `unknown_value`, `credit_code_format`, `duplicate`, `unknown_county`, `unknown_village`, `out_of_scope`, `length`), a missing column (`columns.<header>`), or an unreadable sheet / too many rows (`body`)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/employers/import")]
pub async fn import_employers(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
    query: ApiQuery<ImportQuery>,
    payload: web::Payload,
) -> ApiResult<web::Json<ImportReport>> {
    service::require_editor(&caller)?;
    let format = sheet_format(&req)?;
    let mut payload = payload;
    let body = read_limited(&mut payload, import::MAX_BYTES, declared_length(&req)).await?;
    let dry_run = query.0.dry_run.unwrap_or(false);
    import::import(&state.db, &caller, body.to_vec(), format, dry_run)
        .await
        .map(web::Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TemplateQuery {
    /// `xlsx` (default) or `csv`.
    pub format: Option<ExportFormat>,
}

/// The import template: the headers and one example row.
#[utoipa::path(
    tag = "employers",
    security(("bearer" = [])),
    params(TemplateQuery),
    responses(
        (status = 200, description = "The template", content(
            (inline(crate::domain::Binary) = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (inline(String) = "text/csv"),
        )),
        (status = 400, description = "`invalid_query`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/employers/import/template")]
pub async fn import_template(
    Auth(_caller): Auth,
    query: ApiQuery<TemplateQuery>,
) -> ApiResult<HttpResponse> {
    crate::http::export::template(
        query.0.format,
        "用工主体导入模板",
        "employers-template",
        import::template,
    )
}

/// Edits an employer (city admins; audited): name, kind, county, village, address, active. An
/// inactive employer stays listed with `include_inactive=true`; new surveys may not name it.
#[utoipa::path(
    tag = "employers",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The employer's id")),
    request_body = EmployerInput,
    responses(
        (status = 200, description = "The employer after the edit", body = Employer),
        (status = 403, description = "`forbidden_role`: city admins only", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such employer", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `name` (`required`, `length`), `county_code` (`division_code_format`, `division_level`, `unknown_county`), `village_code` (`unknown_village`, `out_of_scope`), `address` (`length`)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[put("/employers/{id}")]
pub async fn put_employer(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    body: ApiJson<EmployerInput>,
) -> ApiResult<web::Json<Employer>> {
    service::require_editor(&caller)?;
    service::update(&state.db, &caller, path.into_inner(), body.0)
        .await
        .map(web::Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EmployerLedgerQuery {
    /// `YYYY-MM` (default: the current month).
    pub month: Option<String>,
    /// 12-digit county code (default: a county reviewer's county, else the city).
    pub county: Option<String>,
    /// `json` (default), `xlsx` or `csv`.
    pub format: Option<ExportFormat>,
}

fn ledger_area(
    caller: &crate::auth::Caller,
    q: &EmployerLedgerQuery,
) -> ApiResult<Option<crate::domain::DivisionCode>> {
    Ok(Area::parse(caller, None, None, q.county.as_deref())?.county)
}

/// Labourers employed per employer (for 优先支持): for the villages of a county (or the city),
/// each household's effective version as of the month's end, approved-only and including
/// pending; every registered employer of the county, and those elsewhere employing someone
/// living here. County reviewers read their county, the city any; `format=xlsx|csv` downloads it.
#[utoipa::path(
    tag = "ledger",
    security(("bearer" = [])),
    params(EmployerLedgerQuery),
    responses(
        (status = 200, description = "The ledger (`format=json`), or the file", content(
            (EmployerLedger = "application/json"),
            (inline(String) = "text/csv"),
            (inline(crate::domain::Binary) = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        )),
        (status = 400, description = "`invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`out_of_scope`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/ledgers/employers")]
pub async fn employer_ledger(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    query: ApiQuery<EmployerLedgerQuery>,
) -> ApiResult<HttpResponse> {
    let q = query.0;
    let month = area::month("month", q.month.as_deref())?;
    let county = ledger_area(&caller, &q)?;
    match q.format.unwrap_or_default() {
        ExportFormat::Json => {
            let ledger = ledger::ledger(&state.db, &caller, county, month).await?;
            Ok(HttpResponse::Ok().json(ledger))
        }
        format => {
            let download = ledger::ledger_export(&state.db, &caller, county, month, format).await?;
            super::ledger::stream(&state, download)
        }
    }
}

/// The real-name list of one employer's labourers living in a county (or the city), as of the
/// month's end (approved surveys; ID numbers masked); `format=xlsx|csv` downloads it.
#[utoipa::path(
    tag = "ledger",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The employer's id"), EmployerLedgerQuery),
    responses(
        (status = 200, description = "The list (`format=json`), or the file", content(
            (EmployerPeople = "application/json"),
            (inline(String) = "text/csv"),
            (inline(crate::domain::Binary) = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        )),
        (status = 400, description = "`invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`out_of_scope`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such employer", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/ledgers/employers/{id}/people")]
pub async fn employer_people(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    query: ApiQuery<EmployerLedgerQuery>,
) -> ApiResult<HttpResponse> {
    let q = query.0;
    let month = area::month("month", q.month.as_deref())?;
    let county = ledger_area(&caller, &q)?;
    let id = path.into_inner();
    match q.format.unwrap_or_default() {
        ExportFormat::Json => {
            let list: EmployerPeople =
                ledger::people(&state.db, &state.vault, &caller, id, county, month).await?;
            Ok(HttpResponse::Ok().json(list))
        }
        format => {
            let download =
                ledger::people_export(&state.db, &state.vault, &caller, id, county, month, format)
                    .await?;
            super::ledger::stream(&state, download)
        }
    }
}
