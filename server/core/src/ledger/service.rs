//! The ledger's operations, for the JSON API and the console alike: the inventory of a node,
//! the months and their close, quotas, real-name ledgers and the downloads. Each takes typed
//! filters and does its own role and scope checks.

use std::io::Write;

use chrono::Utc;

use super::cache;
use super::export::{Download, ExportFormat};
use super::inventory::{self, Inventory};
use super::months::{self, CloseRequest, MonthDetail, MonthState, ReopenRequest};
use super::node::{self, Node, NodeFilter};
use super::quotas::{self, QuotaRequest, YearQuotas};
use super::roster::{self, RosterCursor, RosterEntry, RosterKind};
use super::signoff::{self, SignoffRequest, WithdrawRequest};
use crate::auth::Caller;
use crate::db::{Db, DbConnection};
use crate::domain::{DivisionCode, Month, Role};
use crate::error::{bad_query, ApiResult};
use crate::privacy::Vault;
use crate::sheets::{self, Layout};

/// Villages recomputed per month and round by the background warmer.
const WARM_BATCH: i64 = 100;

/// Stores figures a read computed, so the next reader finds them cached.
async fn store_fresh(db: &Db, fresh: Vec<cache::Fresh>) -> ApiResult<()> {
    if fresh.iter().all(|f| f.is_empty()) {
        return Ok(());
    }
    db.transaction(move |conn| {
        for f in &fresh {
            cache::store(conn, f)?;
        }
        Ok(())
    })
    .await
}

/// The ledger (需求台账) of a node for a month, for a caller who may read the node.
pub async fn inventory(
    db: &Db,
    caller: &Caller,
    filter: NodeFilter,
    month: Month,
) -> ApiResult<Inventory> {
    let caller = caller.clone();
    let (inventory, fresh) = db
        .run(move |conn| {
            let node = node::resolve(conn, &caller, &filter)?;
            inventory::inventory(conn, &node, month)
        })
        .await?;
    store_fresh(db, fresh).await?;
    Ok(inventory)
}

/// Computes and caches a node's figures for a month and the month before (the seed does it
/// for the city, so that the first reader does not wait).
pub fn cache_inventory(
    conn: &mut DbConnection,
    filter: &NodeFilter,
    month: Month,
) -> ApiResult<()> {
    let node = node::node(conn, filter.level, &filter.code)?;
    let (_, fresh) = inventory::inventory(conn, &node, month)?;
    for f in &fresh {
        cache::store(conn, f)?;
    }
    Ok(())
}

/// Months from the first survey to the current one, newest first (county reviewers and the
/// city).
pub async fn months(db: &Db, caller: &Caller) -> ApiResult<Vec<MonthState>> {
    caller.require_role(&[Role::CountyReviewer, Role::CityAdmin])?;
    let current = Month::current();
    db.run(move |conn| Ok(months::list(conn, current)?)).await
}

/// A month's dispatch: each county's sign-off (a county reviewer sees their own county), the
/// surveys awaiting review and every close (county reviewers and the city).
pub async fn month(db: &Db, caller: &Caller, month: Month) -> ApiResult<MonthDetail> {
    caller.require_role(&[Role::CountyReviewer, Role::CityAdmin])?;
    let caller = caller.clone();
    let now = Utc::now();
    db.run(move |conn| months::detail(conn, &caller, month, now))
        .await
}

/// Who may close and reopen a month: city admins.
pub fn require_closer(caller: &Caller) -> ApiResult<()> {
    caller.require_role(&[Role::CityAdmin])
}

/// Who may sign off a county's month: its county reviewers (the city closes with a reason
/// instead of signing on a county's behalf).
pub fn require_signer(caller: &Caller) -> ApiResult<()> {
    caller.require_role(&[Role::CountyReviewer])
}

/// One dispatch step of a month by the caller (see [`months::dispatch_step`]), then the month
/// as it stands after it.
async fn dispatch<F>(
    db: &Db,
    caller: &Caller,
    month: Month,
    now: chrono::DateTime<Utc>,
    step: F,
) -> ApiResult<MonthDetail>
where
    F: FnOnce(&mut DbConnection, &str) -> ApiResult<()> + Send + 'static,
{
    let caller = caller.clone();
    db.write(move |conn| {
        months::dispatch_step(conn, month, |conn| {
            step(conn, &caller.user_id)?;
            months::detail(conn, &caller, month, now)
        })
    })
    .await
}

/// Closes a month (city admins): once it has ended, every county signed off and nothing awaits
/// review, or with a reason; every village's figures as of its end become its next snapshot.
pub async fn close_month(
    db: &Db,
    caller: &Caller,
    month: Month,
    request: CloseRequest,
) -> ApiResult<MonthDetail> {
    require_closer(caller)?;
    let reason = months::checked_text("reason", request.reason.as_deref(), false)?;
    let now = Utc::now();
    dispatch(db, caller, month, now, move |conn, user| {
        months::close(conn, month, user, now, reason).map(drop)
    })
    .await
}

/// Reopens a closed month with a reason (city admins): its snapshot is kept, the counties sign
/// off again, and the next close makes the next snapshot version.
pub async fn reopen_month(
    db: &Db,
    caller: &Caller,
    month: Month,
    request: ReopenRequest,
) -> ApiResult<MonthDetail> {
    require_closer(caller)?;
    let reason = months::checked_text("reason", request.reason.as_deref(), true)?;
    let reason = reason.unwrap_or_default();
    let now = Utc::now();
    dispatch(db, caller, month, now, move |conn, user| {
        months::reopen(conn, month, user, now, &reason).map(drop)
    })
    .await
}

/// Signs off a county's month (its county reviewers), with a note; a reason while surveys
/// await review.
pub async fn sign_off(
    db: &Db,
    caller: &Caller,
    month: Month,
    county: DivisionCode,
    request: SignoffRequest,
) -> ApiResult<MonthDetail> {
    require_signer(caller)?;
    caller.require_county(&county)?;
    let note = months::checked_text("note", request.note.as_deref(), false)?;
    let reason = months::checked_text("reason", request.reason.as_deref(), false)?;
    let now = Utc::now();
    dispatch(db, caller, month, now, move |conn, user| {
        signoff::sign_off(conn, month, &county, user, now, note, reason)
    })
    .await
}

/// Withdraws a county's sign-off of an open month (its county reviewers).
pub async fn withdraw_signoff(
    db: &Db,
    caller: &Caller,
    month: Month,
    county: DivisionCode,
    request: WithdrawRequest,
) -> ApiResult<MonthDetail> {
    require_signer(caller)?;
    caller.require_county(&county)?;
    let reason = months::checked_text("reason", request.reason.as_deref(), false)?;
    let now = Utc::now();
    dispatch(db, caller, month, now, move |conn, user| {
        signoff::withdraw(conn, month, &county, user, now, reason)
    })
    .await
}

/// Who may read quotas: county reviewers and the city.
pub fn require_quota_reader(caller: &Caller) -> ApiResult<()> {
    caller.require_role(&[Role::CountyReviewer, Role::CityAdmin])
}

/// The year's post quotas per county (county reviewers and the city).
pub async fn quotas(db: &Db, caller: &Caller, year: i32) -> ApiResult<YearQuotas> {
    require_quota_reader(caller)?;
    db.run(move |conn| Ok(quotas::year(conn, year)?)).await
}

/// Sets the year's quotas of the named counties (city admins; audited), and returns the year's.
pub async fn set_quotas(
    db: &Db,
    caller: &Caller,
    year: i32,
    request: QuotaRequest,
) -> ApiResult<YearQuotas> {
    require_closer(caller)?;
    let now = Utc::now();
    let user = caller.user_id.clone();
    db.transaction(move |conn| {
        quotas::validate(conn, year, &request)?;
        quotas::set(conn, year, &request, &user, now)?;
        Ok(quotas::year(conn, year)?)
    })
    .await
}

/// A node's ledger as a spreadsheet: XLSX with a sheet per level below it, or CSV of its
/// villages. `format` is `xlsx` or `csv`.
pub async fn inventory_export(
    db: &Db,
    caller: &Caller,
    filter: NodeFilter,
    month: Month,
    format: ExportFormat,
) -> ApiResult<Download> {
    if format == ExportFormat::Json {
        return Err(bad_query("format", "须为 xlsx 或 csv"));
    }
    let caller = caller.clone();
    let (node, places, fresh) = db
        .run(move |conn| {
            let node = node::resolve(conn, &caller, &filter)?;
            let (places, fresh) = inventory::places(conn, &node, month)?;
            Ok((node, places, fresh))
        })
        .await?;
    store_fresh(db, vec![fresh]).await?;
    let title = format!("{}{}需求台账", node.name, month.title());
    let ext = format.extension();
    Ok(Download {
        content_type: format.content_type(),
        file_name: format!("{title}.{ext}"),
        fallback: format!("ledger-{}-{month}.{ext}", node.code),
        write: Box::new(move |_conn, sink| {
            inventory::write_export(&node, &title, &places, format == ExportFormat::Csv, sink)
        }),
    })
}

/// Which real-name ledger, of which node and month, and which part of it.
#[derive(Debug, Clone)]
pub struct RosterFilter {
    pub kind: RosterKind,
    pub node: NodeFilter,
    pub month: Month,
    /// ID numbers in full: the caller's reveal request, already allowed.
    pub reveal: bool,
    /// Why (for the audit log).
    pub reason: Option<String>,
    /// Where the page starts (JSON pages only).
    pub after: Option<RosterCursor>,
    /// Page size, 1–500 (JSON pages only).
    pub limit: usize,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RosterPage {
    pub kind: RosterKind,
    /// The ledger's Chinese title.
    pub title: String,
    pub month: String,
    pub revealed: bool,
    pub items: Vec<RosterEntry>,
    pub next_cursor: Option<String>,
}

/// The node a roster names, checked against the caller's scope, its villages, its title and
/// the audit subject of a reveal.
struct RosterScope {
    villages: Vec<String>,
    title: String,
    subject: String,
}

async fn roster_scope(db: &Db, caller: &Caller, filter: &RosterFilter) -> ApiResult<RosterScope> {
    let (caller, node_filter) = (caller.clone(), filter.node.clone());
    let (node, villages): (Node, Vec<String>) = db
        .run(move |conn| {
            let node = node::resolve(conn, &caller, &node_filter)?;
            let villages = node::villages_of(conn, &node)?;
            Ok((node, villages))
        })
        .await?;
    let (kind, month) = (filter.kind, filter.month);
    Ok(RosterScope {
        villages,
        title: format!("{}{}{}", node.name, month.title(), kind.label()),
        subject: format!(
            "{}/{}/{}/{}",
            kind.as_str(),
            node.level.as_str(),
            node.code,
            month
        ),
    })
}

fn audit_reveal(
    conn: &mut DbConnection,
    user_id: &str,
    subject: &str,
    reason: Option<&str>,
    detail: &str,
) -> ApiResult<()> {
    crate::audit::append(
        conn,
        &crate::audit::Entry {
            user_id,
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

/// A page of a real-name ledger (实名制台账); a reveal is audited with the page's size.
pub async fn roster_page(
    db: &Db,
    vault: &Vault,
    caller: &Caller,
    filter: RosterFilter,
) -> ApiResult<RosterPage> {
    let scope = roster_scope(db, caller, &filter).await?;
    let (vault, user) = (vault.clone(), caller.user_id.clone());
    let reveal = filter.reveal;
    db.run_as(reveal, move |conn| {
        let (items, next) = roster::page(
            conn,
            &vault,
            roster::PageRequest {
                villages: &scope.villages,
                month: filter.month,
                kind: filter.kind,
                reveal,
                after: filter.after,
                limit: filter.limit,
            },
        )?;
        if reveal && !items.is_empty() {
            let detail = format!("{} 人", items.len());
            audit_reveal(
                conn,
                &user,
                &scope.subject,
                filter.reason.as_deref(),
                &detail,
            )?;
        }
        Ok(RosterPage {
            kind: filter.kind,
            title: scope.title,
            month: filter.month.to_string(),
            revealed: reveal,
            items,
            next_cursor: next.map(|(v, n)| roster::encode_cursor(&v, n)),
        })
    })
    .await
}

/// A whole real-name ledger as CSV or XLSX; a reveal is audited before the download starts.
pub async fn roster_export(
    db: &Db,
    vault: &Vault,
    caller: &Caller,
    filter: RosterFilter,
    format: ExportFormat,
) -> ApiResult<Download> {
    if format == ExportFormat::Json {
        return Err(bad_query("format", "须为 xlsx 或 csv"));
    }
    let scope = roster_scope(db, caller, &filter).await?;
    if filter.reveal {
        let (subject, reason) = (scope.subject.clone(), filter.reason.clone());
        let user = caller.user_id.clone();
        db.transaction(move |conn| {
            audit_reveal(conn, &user, &subject, reason.as_deref(), "导出全部")
        })
        .await?;
    }
    let ext = format.extension();
    let vault = vault.clone();
    let (file_name, fallback) = (
        format!("{}.{ext}", scope.title),
        format!("{}-{}.{ext}", filter.kind.as_str(), filter.month),
    );
    Ok(Download {
        content_type: format.content_type(),
        file_name,
        fallback,
        write: Box::new(move |conn, sink| {
            let rows = RosterRows {
                vault: &vault,
                villages: &scope.villages,
                filter: &filter,
            };
            rows.write(conn, format == ExportFormat::Csv, sink, &scope.title)
        }),
    })
}

/// The people of a whole real-name ledger, village by village, for a download.
struct RosterRows<'a> {
    vault: &'a Vault,
    villages: &'a [String],
    filter: &'a RosterFilter,
}

impl RosterRows<'_> {
    fn village(&self, conn: &mut DbConnection, village: &str) -> ApiResult<Vec<RosterEntry>> {
        let f = self.filter;
        roster::village_entries(conn, self.vault, village, f.month, f.kind, f.reveal)
    }

    fn write(
        &self,
        conn: &mut DbConnection,
        csv: bool,
        sink: &mut dyn Write,
        title: &str,
    ) -> ApiResult<()> {
        let layout = Layout {
            name: self.filter.kind.label().trim_end_matches("实名制台账"),
            title,
            note: None,
            headers: &roster::HEADERS,
            widths: &roster::WIDTHS,
        };
        sheets::one_table(csv, sink, layout, |out| {
            let mut count = 0i64;
            for village in self.villages {
                for e in self.village(conn, village)? {
                    out.row(&roster::cells(&e))?;
                    count += 1;
                }
                if out.gone() {
                    return Ok(());
                }
            }
            out.total(&roster::total(count))
        })
    }
}

/// One round of the background warmer over the current and the previous month: recomputes
/// and stores up to a batch of stale villages each. Returns whether nothing was stale.
pub async fn warm(db: &Db) -> ApiResult<bool> {
    let current = Month::current();
    let months = [current, current.previous()];
    let fresh = db
        .run(move |conn| cache::warm(conn, &months, WARM_BATCH))
        .await?;
    if fresh.iter().all(|f| f.is_empty()) {
        return Ok(true);
    }
    store_fresh(db, fresh).await?;
    Ok(false)
}

/// How many villages' cached figures await recomputation, for the current and the previous
/// month (what `/metrics` reports as the ledger's backlog).
pub fn stale_villages(conn: &mut DbConnection) -> ApiResult<[i64; 2]> {
    let current = Month::current();
    Ok([
        cache::stale_count(conn, current)?,
        cache::stale_count(conn, current.previous())?,
    ])
}
