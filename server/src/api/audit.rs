//! `GET /api/v1/audit`: the audit log for city admins, as JSON pages or a streamed CSV; the
//! query's instants (RFC 3339) are parsed here into the service's typed filter.

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::audit::service::{self, AuditFilter, AuditPage, PageRequest};
use crate::auth::area;
use crate::error::{bad_query, ApiResult, Problem};
use crate::http::Auth;
use crate::http::{export, ApiQuery};
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

/// An instant from a query parameter, RFC 3339 with any offset.
fn instant(field: &str, value: Option<&str>) -> ApiResult<Option<DateTime<Utc>>> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| bad_query(field, "须为 RFC 3339 时间，如 2020-07-20T09:31:00+08:00"))
        })
        .transpose()
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
    Auth(caller): Auth,
    query: ApiQuery<AuditQuery>,
) -> ApiResult<HttpResponse> {
    service::require_reader(&caller)?;
    let q = query.0;
    let filter = AuditFilter {
        from: instant("from", q.from.as_deref())?,
        to: instant("to", q.to.as_deref())?,
        user: q.user,
        action: q.action,
        subject_type: q.subject_type,
        subject_id: q.subject_id,
    };
    if q.format.unwrap_or_default() == AuditFormat::Csv {
        let csv = service::export(&caller, filter)?;
        return export::stream(
            &state.db,
            "text/csv; charset=utf-8",
            "审计日志.csv",
            "audit.csv",
            move |conn, sink| {
                // Spreadsheet programs read the CSV as UTF-8 only after the byte order mark.
                if !sink.send(export::BOM.to_vec()) {
                    return Ok(());
                }
                csv.write(conn, |chunk| sink.send(chunk))
            },
        );
    }
    let page = PageRequest {
        cursor: q.cursor,
        limit: area::limit(q.limit, 100, 500)?,
    };
    let page: AuditPage = service::list(&state.db, &caller, filter, page).await?;
    Ok(HttpResponse::Ok().json(page))
}
