//! Reading the audit log (city administrators): newest-first pages and the CSV export, both
//! narrowed by one typed filter.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::Stored;
use crate::auth::Caller;
use crate::db::schema::{audit_log, users};
use crate::db::{Db, DbConnection};
use crate::domain::Role;
use crate::error::{ApiError, ApiResult};

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

/// Which entries to read; absent parts admit every entry.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// At or after this moment.
    pub from: Option<DateTime<Utc>>,
    /// Before this moment.
    pub to: Option<DateTime<Utc>>,
    /// Who acted (user id).
    pub user: Option<String>,
    pub action: Option<String>,
    pub subject_type: Option<String>,
    pub subject_id: Option<String>,
}

/// A page of a newest-first list: entries before `cursor` (a `seq`), at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub cursor: Option<i64>,
    pub limit: i64,
}

/// Who may read the log: the city administrator (403 for everyone else). Every read checks
/// it; handlers may ask first, to refuse before they read the query.
pub fn require_reader(caller: &Caller) -> ApiResult<()> {
    caller.require_role(&[Role::CityAdmin])
}

/// A page of the entries the filter admits, newest first.
pub async fn list(
    db: &Db,
    caller: &Caller,
    filter: AuditFilter,
    page: PageRequest,
) -> ApiResult<AuditPage> {
    require_reader(caller)?;
    let PageRequest { cursor, limit } = page;
    db.run(move |conn| {
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
    .await
}

/// An export the caller may run: made by [`export`], which checks the role, and written by
/// whoever streams it.
pub struct CsvExport {
    filter: AuditFilter,
}

/// The CSV export of the entries the filter admits (city administrators only).
pub fn export(caller: &Caller, filter: AuditFilter) -> ApiResult<CsvExport> {
    require_reader(caller)?;
    Ok(CsvExport { filter })
}

impl CsvExport {
    /// Writes the export in chunks to `send`, which answers false once nobody is reading.
    pub fn write(
        &self,
        conn: &mut DbConnection,
        mut send: impl FnMut(Vec<u8>) -> bool,
    ) -> ApiResult<()> {
        write_csv(conn, &self.filter, &mut send)
    }
}

fn filtered<'a>(
    filter: &AuditFilter,
) -> audit_log::BoxedQuery<'a, <DbConnection as diesel::Connection>::Backend> {
    let mut q = audit_log::table.into_boxed();
    if let Some(from) = filter.from {
        q = q.filter(audit_log::at.ge(from.naive_utc()));
    }
    if let Some(to) = filter.to {
        q = q.filter(audit_log::at.lt(to.naive_utc()));
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

/// Every entry the filter admits, oldest first, as CSV with Chinese headers (without the byte
/// order mark), in chunks given to `send` until it answers false (the client went away).
fn write_csv(
    conn: &mut DbConnection,
    filter: &AuditFilter,
    send: &mut dyn FnMut(Vec<u8>) -> bool,
) -> ApiResult<()> {
    let beijing = crate::domain::time::china();
    let mut out = csv::Writer::from_writer(Vec::new());
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
        if !send(chunk) || done {
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
        "update_user" => "修改用户",
        "deactivate_user" => "停用用户",
        "reactivate_user" => "重新启用用户",
        "hand_over_village" => "移交负责村",
        "reset_password" => "重置密码",
        "change_password" => "修改本人密码",
        "import_households" => "导入建档立卡户",
        other => other,
    }
}
