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
use crate::http::{bad_query, ApiJson, ApiQuery};
use crate::state::AppState;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(get_inventory)
        .service(list_months)
        .service(close_month)
        .service(get_quotas)
        .service(put_quotas)
        .service(get_roster)
        .service(export_inventory);
}

/// The current month in Asia/Shanghai.
pub fn current_month() -> String {
    Utc::now()
        .with_timezone(&crate::domain::time::china())
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
        return Err(bad_query(field, "须为 2015-01 以后、YYYY-MM 格式的月份"));
    }
    if value > current.as_str() {
        return Err(bad_query(
            field,
            format!("{value} 尚未开始（当前为 {current}）"),
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
                format!("查询{}级须给出区划代码", level.label()),
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
            detail: format!("{} {} 不在您的管辖范围内", level.label(), code.as_str()),
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
    inventory_of_node(state, caller, query).await.map(web::Json)
}

/// [`get_inventory`] as a function, for the console.
pub async fn inventory_of_node(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<NodeQuery>,
) -> ApiResult<Inventory> {
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
    Ok(inventory)
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
    months_list(state, caller).await.map(web::Json)
}

/// [`list_months`] as a function, for the console.
pub async fn months_list(state: web::Data<AppState>, caller: Caller) -> ApiResult<Vec<MonthState>> {
    caller.require_role(&[Role::CountyReviewer, Role::CityAdmin])?;
    let current = current_month();
    let list = state
        .db
        .run(move |conn| Ok(months::list(conn, &current)?))
        .await?;
    Ok(list)
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
    close_month_now(state, caller, path).await.map(web::Json)
}

/// [`close_month`] as a function, for the console.
pub async fn close_month_now(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<MonthState> {
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
    Ok(closed)
}

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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    #[default]
    Json,
    /// UTF-8 with BOM, Chinese headers, a totals row; streamed.
    Csv,
    /// The usual ledger layout: title row, Chinese headers (frozen), totals row.
    Xlsx,
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
    /// Why the ID numbers are needed (for the audit log, at most 200 characters).
    pub reason: Option<String>,
    /// `json` (default, paged), `csv` or `xlsx` (the whole ledger, streamed).
    pub format: Option<ExportFormat>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RosterPage {
    pub kind: super::roster::RosterKind,
    /// The ledger's Chinese title.
    pub title: String,
    pub month: String,
    pub revealed: bool,
    pub items: Vec<super::roster::RosterEntry>,
    pub next_cursor: Option<String>,
}

fn encode_roster_cursor(village: &str, offset: usize) -> String {
    format!("{village}.{offset}")
}

fn decode_roster_cursor(cursor: &str) -> ApiResult<(String, usize)> {
    let bad = || bad_query("cursor", "不是本服务器给出的翻页游标");
    let (village, offset) = cursor.split_once('.').ok_or_else(bad)?;
    DivisionCode::parse_level(village, DivisionLevel::Village).map_err(|_| bad())?;
    Ok((village.to_owned(), offset.parse().map_err(|_| bad())?))
}

fn audit_reveal(
    conn: &mut crate::db::DbConnection,
    caller: &Caller,
    subject: &str,
    reason: Option<&str>,
    detail: &str,
) -> ApiResult<()> {
    crate::audit::append(
        conn,
        &crate::audit::Entry {
            user_id: &caller.user_id,
            action: "reveal_personal_data",
            subject_type: "ledger",
            subject_id: subject,
            reason,
            detail: Some(detail),
            ..Default::default()
        },
    )?;
    Ok(())
}

fn month_title(month: &str) -> String {
    let (y, m) = month.split_at(4);
    format!(
        "{y}年{}月",
        m.trim_start_matches('-').trim_start_matches('0')
    )
}

/// A real-name ledger (实名制台账): the people behind one of the ledger's counts in a node, as
/// of the month's end (each household's latest approved version), village by village. ID
/// numbers are masked unless a county reviewer or the city asks with `reveal=true` (audited).
/// `format=csv` or `xlsx` downloads the whole ledger, streamed. The list is computed from the
/// current review states, also for a closed month (whose counts are frozen).
#[utoipa::path(
    tag = "ledger",
    security(("bearer" = [])),
    params(("kind" = super::roster::RosterKind, Path, description = "Which ledger"), RosterQuery),
    responses(
        (status = 200, description = "A page of people (`format=json`), or the whole ledger as CSV (UTF-8 with BOM) or XLSX", content(
            (RosterPage = "application/json"),
            (inline(String) = "text/csv"),
            (inline(crate::openapi::Binary) = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        )),
        (status = 400, description = "`invalid_path` or `invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`out_of_scope`, or `forbidden_role` to reveal", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such node", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/ledgers/{kind}")]
pub async fn get_roster(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: ApiQuery<RosterQuery>,
) -> ApiResult<actix_web::HttpResponse> {
    use super::roster::{self, RosterKind};
    let raw = path.into_inner();
    let kind = RosterKind::parse(&raw).ok_or_else(|| ApiError::BadRequest {
        code: ErrorCode::InvalidPath,
        detail: format!(
            "kind：须为 {} 之一",
            RosterKind::ALL.map(|k| k.as_str()).join("、")
        ),
        field: Some("kind".into()),
    })?;
    let q = query.0;
    let month = parse_month("month", q.month.as_deref())?;
    let reveal = crate::auth::reveal_allowed(&caller, q.reveal, q.reason.as_deref())?;
    let format = q.format.unwrap_or_default();
    let after = q.cursor.as_deref().map(decode_roster_cursor).transpose()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(bad_query("limit", "须为 1 至 500"));
    }
    let (node, villages) = state
        .db
        .run({
            let caller = caller.clone();
            move |conn| {
                let node = resolve_node(conn, &caller, q.level, q.code.as_deref())?;
                let villages = inventory::villages_of(conn, &node)?;
                Ok((node, villages))
            }
        })
        .await?;
    let subject = format!(
        "{}/{}/{}/{}",
        kind.as_str(),
        node.level.as_str(),
        node.code,
        month
    );
    let title = format!("{}{}{}", node.name, month_title(&month), kind.label());
    if format != ExportFormat::Json {
        if reveal {
            let (subject, reason) = (subject.clone(), q.reason.clone());
            let caller = caller.clone();
            state
                .db
                .write(move |conn| {
                    write_transaction(conn, |conn| {
                        audit_reveal(conn, &caller, &subject, reason.as_deref(), "导出全部")
                    })
                })
                .await?;
        }
        let vault = state.vault.clone();
        let file = format!(
            "{title}.{}",
            if format == ExportFormat::Csv {
                "csv"
            } else {
                "xlsx"
            }
        );
        let fallback = format!(
            "{}-{month}.{}",
            kind.as_str(),
            if format == ExportFormat::Csv {
                "csv"
            } else {
                "xlsx"
            }
        );
        let content_type = if format == ExportFormat::Csv {
            super::export::CSV
        } else {
            super::export::XLSX
        };
        return crate::http::export::stream(
            &state.db,
            content_type,
            &file,
            &fallback,
            move |conn, sink| {
                let mut count = 0i64;
                if format == ExportFormat::Csv {
                    let mut csv = super::export::Csv::new(sink, &roster::HEADERS)?;
                    for village in &villages {
                        for e in
                            roster::village_entries(conn, &vault, village, &month, kind, reveal)?
                        {
                            let mut cells = roster::cells(&e);
                            if reveal {
                                // A leading tab keeps spreadsheet programs from turning an
                                // 18-digit number into 2.20802E+17.
                                cells[7] = format!("\t{}", cells[7]);
                            }
                            csv.row(cells)?;
                            count += 1;
                        }
                        if csv.gone {
                            return Ok(());
                        }
                    }
                    csv.row(["合计".to_owned(), format!("{count} 人")])?;
                    csv.finish()
                } else {
                    let mut book = super::export::Xlsx::new()?;
                    {
                        let widths = [
                            8, 10, 12, 8, 8, 4, 10, 18, 10, 10, 12, 10, 8, 10, 6, 16, 16, 12,
                        ];
                        let mut sheet = book.sheet(
                            kind.label().trim_end_matches("实名制台账"),
                            &title,
                            &roster::HEADERS,
                            &widths,
                        )?;
                        for village in &villages {
                            for e in roster::village_entries(
                                conn, &vault, village, &month, kind, reveal,
                            )? {
                                let cells = roster::cells(&e);
                                let row: Vec<super::export::Cell<'_>> =
                                    cells.iter().map(|c| super::export::Cell::Text(c)).collect();
                                sheet.row(&row)?;
                                count += 1;
                            }
                        }
                        sheet.total(&[
                            super::export::Cell::Text("合计"),
                            super::export::Cell::Number(count),
                            super::export::Cell::Text("人"),
                        ])?;
                    }
                    book.finish(sink)
                }
            },
        );
    }
    let vault = state.vault.clone();
    let reason = q.reason.clone();
    let page = state
        .db
        .run_as(reveal, move |conn| {
            let (items, next) = roster::page(
                conn,
                &vault,
                roster::PageRequest {
                    villages: &villages,
                    month: &month,
                    kind,
                    reveal,
                    after,
                    limit,
                },
            )?;
            if reveal && !items.is_empty() {
                audit_reveal(
                    conn,
                    &caller,
                    &subject,
                    reason.as_deref(),
                    &format!("{} 人", items.len()),
                )?;
            }
            Ok(RosterPage {
                kind,
                title,
                month,
                revealed: reveal,
                items,
                next_cursor: next.map(|(v, n)| encode_roster_cursor(&v, n)),
            })
        })
        .await?;
    Ok(actix_web::HttpResponse::Ok().json(page))
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
            (inline(crate::openapi::Binary) = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
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
    caller: Caller,
    query: ApiQuery<InventoryExportQuery>,
) -> ApiResult<actix_web::HttpResponse> {
    inventory_export(state, caller, query).await
}

/// [`export_inventory`] as a function, for the console.
pub async fn inventory_export(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<InventoryExportQuery>,
) -> ApiResult<actix_web::HttpResponse> {
    let q = query.0;
    let month = parse_month("month", q.month.as_deref())?;
    let format = match q.format.unwrap_or(ExportFormat::Xlsx) {
        ExportFormat::Json => return Err(bad_query("format", "须为 xlsx 或 csv")),
        f => f,
    };
    let (node, places, fresh) = state
        .db
        .run({
            let month = month.clone();
            move |conn| {
                let node = resolve_node(conn, &caller, q.level, q.code.as_deref())?;
                let (places, fresh) = super::inventory::places(conn, &node, &month)?;
                Ok((node, places, fresh))
            }
        })
        .await?;
    if !fresh.is_empty() {
        state
            .db
            .write(move |conn| {
                write_transaction(conn, |conn| Ok(super::cache::store(conn, &fresh)?))
            })
            .await?;
    }
    let title = format!("{}{}需求台账", node.name, month_title(&month));
    let ext = if format == ExportFormat::Csv {
        "csv"
    } else {
        "xlsx"
    };
    let file = format!("{title}.{ext}");
    let fallback = format!("ledger-{}-{month}.{ext}", node.code);
    let content_type = if format == ExportFormat::Csv {
        super::export::CSV
    } else {
        super::export::XLSX
    };
    crate::http::export::stream(
        &state.db,
        content_type,
        &file,
        &fallback,
        move |_conn, sink| {
            super::inventory::write_export(
                &node,
                &title,
                &places,
                format == ExportFormat::Csv,
                sink,
            )
        },
    )
}
