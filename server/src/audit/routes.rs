//! `GET /api/v1/audit`: the audit log for city admins, as JSON pages or a streamed CSV.

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Stored;
use crate::auth::Caller;
use crate::db::schema::{audit_log, users};
use crate::db::DbConnection;
use crate::domain::Role;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::export;
use crate::http::{bad_query, ApiQuery};
use crate::state::AppState;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_audit);
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditFormat {
    #[default]
    Json,
    /// UTF-8 with BOM, Chinese headers, every matching entry oldest first (no paging).
    Csv,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries at or after this moment (RFC 3339).
    pub from: Option<String>,
    /// Entries before this moment (RFC 3339).
    pub to: Option<String>,
    /// User id of who acted.
    pub user: Option<String>,
    /// e.g. `approve`, `reject`, `merge`, `reveal_personal_data`, `create_user`.
    pub action: Option<String>,
    /// e.g. `household_survey`, `household`, `household_pair`, `user`.
    pub subject_type: Option<String>,
    pub subject_id: Option<String>,
    /// JSON pages run newest first: pass `next_cursor` for the next (older) page.
    pub cursor: Option<i64>,
    /// Page size, 1–500 (default 100).
    pub limit: Option<i64>,
    pub format: Option<AuditFormat>,
}

/// One entry as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: i64,
    pub id: String,
    pub at: DateTime<Utc>,
    pub user_id: String,
    pub user_name: Option<String>,
    pub action: String,
    pub subject_type: String,
    pub subject_id: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub request_id: Option<String>,
    /// SHA-256 of the entry before (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 of this entry's fields and `prev_hash`.
    pub hash: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<i64>,
}

struct Filter {
    from: Option<NaiveDateTime>,
    to: Option<NaiveDateTime>,
    user: Option<String>,
    action: Option<String>,
    subject_type: Option<String>,
    subject_id: Option<String>,
}

fn instant(field: &str, value: Option<&str>) -> ApiResult<Option<NaiveDateTime>> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc).naive_utc())
                .map_err(|_| bad_query(field, "须为 RFC 3339 时间，如 2020-07-20T09:31:00+08:00"))
        })
        .transpose()
}

fn filtered<'a>(
    filter: &Filter,
) -> audit_log::BoxedQuery<'a, <DbConnection as diesel::Connection>::Backend> {
    let mut q = audit_log::table.into_boxed();
    if let Some(from) = filter.from {
        q = q.filter(audit_log::at.ge(from));
    }
    if let Some(to) = filter.to {
        q = q.filter(audit_log::at.lt(to));
    }
    if let Some(user) = &filter.user {
        q = q.filter(audit_log::user_id.eq(user.clone()));
    }
    if let Some(action) = &filter.action {
        q = q.filter(audit_log::action.eq(action.clone()));
    }
    if let Some(t) = &filter.subject_type {
        q = q.filter(audit_log::subject_type.eq(t.clone()));
    }
    if let Some(id) = &filter.subject_id {
        q = q.filter(audit_log::subject_id.eq(id.clone()));
    }
    q
}

fn with_names(conn: &mut DbConnection, rows: Vec<Stored>) -> QueryResult<Vec<AuditEntry>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.user_id.as_str()).collect();
    let names: std::collections::HashMap<String, String> = users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(|r| AuditEntry {
            user_name: names.get(&r.user_id).cloned(),
            seq: r.seq,
            id: r.id,
            at: r.at.and_utc(),
            user_id: r.user_id,
            action: r.action,
            subject_type: r.subject_type,
            subject_id: r.subject_id,
            from_state: r.from_state,
            to_state: r.to_state,
            reason: r.reason,
            detail: r.detail,
            request_id: r.request_id,
            prev_hash: r.prev_hash,
            hash: r.hash,
        })
        .collect())
}

const CSV_HEADERS: [&str; 14] = [
    "序号",
    "时间（北京时间）",
    "操作人编号",
    "操作人",
    "操作",
    "对象类型",
    "对象编号",
    "原状态",
    "新状态",
    "原因",
    "详情",
    "请求编号",
    "前一条哈希",
    "本条哈希",
];

/// Rows per database read while exporting.
const EXPORT_BATCH: i64 = 2_000;

fn write_csv(conn: &mut DbConnection, filter: &Filter, sink: &mut export::Sink) -> ApiResult<()> {
    let beijing = crate::domain::time::china();
    let mut out = csv::Writer::from_writer(export::BOM.to_vec());
    out.write_record(CSV_HEADERS).map_err(ApiError::internal)?;
    let mut after = 0i64;
    loop {
        let rows: Vec<Stored> = filtered(filter)
            .filter(audit_log::seq.gt(after))
            .order(audit_log::seq)
            .limit(EXPORT_BATCH)
            .select(Stored::as_select())
            .load(conn)?;
        let done = (rows.len() as i64) < EXPORT_BATCH;
        if let Some(last) = rows.last() {
            after = last.seq;
        }
        for e in with_names(conn, rows)? {
            let opt = |v: &Option<String>| v.clone().unwrap_or_default();
            out.write_record([
                e.seq.to_string(),
                e.at.with_timezone(&beijing)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string(),
                e.user_id.clone(),
                opt(&e.user_name),
                action_label(&e.action).to_owned(),
                e.subject_type.clone(),
                e.subject_id.clone(),
                opt(&e.from_state),
                opt(&e.to_state),
                opt(&e.reason),
                opt(&e.detail),
                opt(&e.request_id),
                e.prev_hash.clone(),
                e.hash.clone(),
            ])
            .map_err(ApiError::internal)?;
        }
        let chunk = out
            .into_inner()
            .map_err(|e| ApiError::internal(e.into_error()))?;
        if !sink.send(chunk) || done {
            return Ok(());
        }
        out = csv::Writer::from_writer(Vec::new());
    }
}

/// The Chinese name of an action, for the CSV (the API keeps the English value).
pub fn action_label(action: &str) -> &str {
    match action {
        "approve" => "审核通过",
        "reject" => "退回（不通过）",
        "request_revision" => "要求修改",
        "reopen" => "重新打开",
        "supersede" => "被更正版本取代",
        "merge" => "合并重复户",
        "unmerge" => "撤销合并",
        "keep_apart" => "确认非重复户",
        "confirm_transfer" => "确认跨县（市、区）迁移",
        "confirm_key_mistake" => "确认跨县（市、区）户编号或身份证号录入错误",
        "undo_transfer" => "撤销跨县（市、区）迁移",
        "reveal_personal_data" => "查看完整身份证号",
        "create_user" => "创建用户",
        other => other,
    }
}

/// The audit log (city admins): every state change, merge, user change and view of an
/// unmasked ID number, with who, when, what, from → to, why and the request id. JSON pages run
/// newest first; `format=csv` streams every matching entry oldest first as a spreadsheet-ready
/// CSV with Chinese headers.
#[utoipa::path(
    tag = "audit",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries (`format=json`), or every matching entry as CSV (UTF-8 with BOM)", content(
            (AuditPage = "application/json"),
            (inline(String) = "text/csv"),
        )),
        (status = 400, description = "`invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: city admins only", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/audit")]
pub async fn list_audit(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<AuditQuery>,
) -> ApiResult<HttpResponse> {
    caller.require_role(&[Role::CityAdmin])?;
    let q = query.0;
    let filter = Filter {
        from: instant("from", q.from.as_deref())?,
        to: instant("to", q.to.as_deref())?,
        user: q.user,
        action: q.action,
        subject_type: q.subject_type,
        subject_id: q.subject_id,
    };
    if q.format.unwrap_or_default() == AuditFormat::Csv {
        return export::stream(
            &state.db,
            "text/csv; charset=utf-8",
            "审计日志.csv",
            "audit.csv",
            move |conn, sink| write_csv(conn, &filter, sink),
        );
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(bad_query("limit", "须为 1 至 500"));
    }
    let cursor = q.cursor;
    let page = state
        .db
        .run(move |conn| {
            let mut select = filtered(&filter);
            if let Some(before) = cursor {
                select = select.filter(audit_log::seq.lt(before));
            }
            let mut rows: Vec<Stored> = select
                .order(audit_log::seq.desc())
                .limit(limit + 1)
                .select(Stored::as_select())
                .load(conn)?;
            let more = rows.len() as i64 > limit;
            rows.truncate(limit as usize);
            let next_cursor = more.then(|| rows.last().map(|r| r.seq)).flatten();
            Ok(AuditPage {
                items: with_names(conn, rows)?,
                next_cursor,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}
