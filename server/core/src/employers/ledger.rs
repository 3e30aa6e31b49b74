//! Labourers employed per employer (what the notice needs to give 优先支持 to those who employ
//! the poor): for the villages of a county (or the city), each household's effective version
//! as of the month's end, approved-only and including pending; and the real-name list of one
//! employer's labourers (approved, as the real-name ledgers are).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::service::{self, Employer, Row};
use crate::auth::Caller;
use crate::db::schema::employers;
use crate::db::{Db, DbConnection};
use crate::domain::{DivisionCode, DivisionLevel, EmployerKind, Month};
use crate::error::{bad_query, ApiError, ApiResult};
use crate::ledger::export::{Download, ExportFormat};
use crate::ledger::figures::{self, Member};
use crate::ledger::node::{self, Node, NodeFilter};
use crate::ledger::roster::{self, RosterEntry};
use crate::privacy::Vault;
use crate::sheets::{self, Cell, Layout};

/// Labourers counted on the two bases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Labourers {
    /// From approved surveys only.
    pub approved: i64,
    /// Including surveys awaiting review.
    pub including_pending: i64,
}

impl Labourers {
    fn add(&mut self, other: Labourers) {
        self.approved += other.approved;
        self.including_pending += other.including_pending;
    }
}

/// One employer's line of the ledger.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EmployerLine {
    pub id: String,
    pub name: String,
    pub kind: EmployerKind,
    pub county_code: String,
    pub credit_code: Option<String>,
    pub active: bool,
    pub labourers: Labourers,
}

/// The ledger of labourers per employer for a county or the city.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmployerLedger {
    pub month: String,
    /// The county read, or the city's code.
    pub code: String,
    pub title: String,
    /// The registry's employers of the county (all of them for the city), and any employer
    /// elsewhere that employs someone living here; in county, kind, name order.
    pub items: Vec<EmployerLine>,
    /// Labourers employed by a workshop, leading enterprise or cooperative whose survey names
    /// no registered employer.
    pub without_employer: Labourers,
    pub total: Labourers,
}

/// The node a county parameter names: the county, else a county reviewer's own county, else
/// the city (scope-checked).
fn resolve(
    conn: &mut DbConnection,
    caller: &Caller,
    county: Option<&DivisionCode>,
) -> ApiResult<Node> {
    let filter = match county.or(caller.county_code.as_ref()) {
        Some(c) => NodeFilter {
            level: DivisionLevel::County,
            code: c.clone(),
        },
        None => NodeFilter::city(),
    };
    node::resolve(conn, caller, &filter)
}

const KINDS: [&str; 3] = ["workshop", "leading_enterprise", "cooperative"];

fn employed(m: &Member) -> bool {
    m.status.as_deref().is_some_and(|s| KINDS.contains(&s))
}

/// Labourers per employer id (none: no employer named) in the villages.
fn count(
    conn: &mut DbConnection,
    villages: &[String],
    month: Month,
) -> QueryResult<HashMap<Option<String>, Labourers>> {
    let mut out: HashMap<Option<String>, Labourers> = HashMap::new();
    for village in villages {
        let [approved, pending] = figures::counted(conn, village, month)?;
        for (m, _) in approved.people.iter().filter(|(m, _)| employed(m)) {
            out.entry(m.employer_id.clone()).or_default().approved += 1;
        }
        for (m, _) in pending.people.iter().filter(|(m, _)| employed(m)) {
            out.entry(m.employer_id.clone())
                .or_default()
                .including_pending += 1;
        }
    }
    Ok(out)
}

fn compute(
    conn: &mut DbConnection,
    caller: &Caller,
    county: Option<&DivisionCode>,
    month: Month,
) -> ApiResult<EmployerLedger> {
    let node = resolve(conn, caller, county)?;
    let villages = node::villages_of(conn, &node)?;
    let mut counts = count(conn, &villages, month)?;
    let without_employer = counts.remove(&None).unwrap_or_default();
    let named: Vec<String> = counts.keys().flatten().cloned().collect();
    let mut q = employers::table.into_boxed();
    if node.level == DivisionLevel::County {
        q = q.filter(
            employers::county_code
                .eq(node.code.as_str().to_owned())
                .or(employers::id.eq_any(named)),
        );
    }
    let rows: Vec<Row> = q.select(Row::as_select()).load(conn)?;
    let mut lines: BTreeMap<(String, &'static str, String, String), EmployerLine> = BTreeMap::new();
    let mut total = without_employer;
    for row in rows {
        let e = row.employer()?;
        let labourers = counts.get(&Some(e.id.clone())).copied().unwrap_or_default();
        total.add(labourers);
        lines.insert(
            (
                e.county_code.clone(),
                e.kind.as_str(),
                e.name.clone(),
                e.id.clone(),
            ),
            EmployerLine {
                id: e.id,
                name: e.name,
                kind: e.kind,
                county_code: e.county_code,
                credit_code: e.credit_code,
                active: e.active,
                labourers,
            },
        );
    }
    Ok(EmployerLedger {
        month: month.to_string(),
        code: node.code.as_str().to_owned(),
        title: format!("{}{}用工主体吸纳就业台账", node.name, month.title()),
        items: lines.into_values().collect(),
        without_employer,
        total,
    })
}

/// The ledger of labourers per employer (county reviewers for their county, the city for any).
pub async fn ledger(
    db: &Db,
    caller: &Caller,
    county: Option<DivisionCode>,
    month: Month,
) -> ApiResult<EmployerLedger> {
    let caller = caller.clone();
    db.run(move |conn| compute(conn, &caller, county.as_ref(), month))
        .await
}

const HEADERS: [&str; 8] = [
    "县（市、区）代码",
    "用工主体",
    "类型",
    "统一社会信用代码",
    "状态",
    "吸纳就业人数（已审核）",
    "吸纳就业人数（含待审核）",
    "用工主体编号",
];

fn line_cells(l: &EmployerLine) -> [Cell; 8] {
    [
        Cell::code(&l.county_code),
        Cell::text(&l.name),
        Cell::text(l.kind.label()),
        Cell::code(l.credit_code.clone().unwrap_or_default()),
        Cell::text(if l.active { "在用" } else { "已停用" }),
        Cell::Number(l.labourers.approved),
        Cell::Number(l.labourers.including_pending),
        Cell::code(&l.id),
    ]
}

fn write_ledger(ledger: &EmployerLedger, csv: bool, sink: &mut dyn Write) -> ApiResult<()> {
    let layout = Layout {
        name: "用工主体",
        title: &ledger.title,
        note: None,
        headers: &HEADERS,
        widths: &[14, 30, 10, 20, 6, 10, 10, 38],
    };
    sheets::one_table(csv, sink, layout, |out| {
        for l in &ledger.items {
            out.row(&line_cells(l))?;
        }
        let line = |label: &str, n: &Labourers| {
            let mut cells = vec![Cell::empty(), Cell::text(label)];
            cells.extend((0..3).map(|_| Cell::empty()));
            cells.extend([Cell::Number(n.approved), Cell::Number(n.including_pending)]);
            cells
        };
        out.row(&line("未登记用工主体", &ledger.without_employer))?;
        out.total(&line("合计", &ledger.total))
    })
}

fn require_file(format: ExportFormat) -> ApiResult<()> {
    if format == ExportFormat::Json {
        return Err(bad_query("format", "须为 xlsx 或 csv"));
    }
    Ok(())
}

/// The ledger as XLSX or CSV: the usual layout, codes as text, counts as numbers.
pub async fn ledger_export(
    db: &Db,
    caller: &Caller,
    county: Option<DivisionCode>,
    month: Month,
    format: ExportFormat,
) -> ApiResult<Download> {
    require_file(format)?;
    let ledger = ledger(db, caller, county, month).await?;
    let ext = format.extension();
    Ok(Download {
        content_type: format.content_type(),
        file_name: format!("{}.{ext}", ledger.title),
        fallback: format!("employers-{}-{month}.{ext}", ledger.code),
        write: Box::new(move |_conn, sink| {
            write_ledger(&ledger, format == ExportFormat::Csv, sink)
        }),
    })
}

/// One employer's labourers, as of the month's end (approved; ID numbers masked).
#[derive(Debug, Serialize, ToSchema)]
pub struct EmployerPeople {
    pub employer: Employer,
    pub month: String,
    /// The county read, or the city's code.
    pub code: String,
    pub title: String,
    pub items: Vec<RosterEntry>,
}

fn people_of(
    conn: &mut DbConnection,
    vault: &Vault,
    caller: &Caller,
    id: &str,
    county: Option<&DivisionCode>,
    month: Month,
) -> ApiResult<EmployerPeople> {
    let node = resolve(conn, caller, county)?;
    let employer =
        service::find(conn, id)?.ok_or_else(|| ApiError::NotFound(format!("no employer {id}")))?;
    let mut items = Vec::new();
    for village in node::villages_of(conn, &node)? {
        items.extend(roster::entries_where(
            conn,
            vault,
            &village,
            month,
            false,
            |m, _| employed(m) && m.employer_id.as_deref() == Some(id),
        )?);
    }
    Ok(EmployerPeople {
        title: format!(
            "{}{}{}吸纳就业人员实名制台账",
            node.name,
            month.title(),
            employer.name
        ),
        employer,
        month: month.to_string(),
        code: node.code.as_str().to_owned(),
        items,
    })
}

/// The real-name list of an employer's labourers living in a county (or the city).
pub async fn people(
    db: &Db,
    vault: &Vault,
    caller: &Caller,
    id: String,
    county: Option<DivisionCode>,
    month: Month,
) -> ApiResult<EmployerPeople> {
    let (caller, vault) = (caller.clone(), vault.clone());
    db.run(move |conn| people_of(conn, &vault, &caller, &id, county.as_ref(), month))
        .await
}

fn write_people(list: &EmployerPeople, csv: bool, sink: &mut dyn Write) -> ApiResult<()> {
    let layout = Layout {
        name: "吸纳就业人员",
        title: &list.title,
        note: None,
        headers: &roster::HEADERS,
        widths: &roster::WIDTHS,
    };
    sheets::one_table(csv, sink, layout, |out| {
        for e in &list.items {
            out.row(&roster::cells(e))?;
        }
        out.total(&roster::total(list.items.len() as i64))
    })
}

/// The real-name list as XLSX or CSV.
pub async fn people_export(
    db: &Db,
    vault: &Vault,
    caller: &Caller,
    id: String,
    county: Option<DivisionCode>,
    month: Month,
    format: ExportFormat,
) -> ApiResult<Download> {
    require_file(format)?;
    let list = people(db, vault, caller, id, county, month).await?;
    let ext = format.extension();
    Ok(Download {
        content_type: format.content_type(),
        file_name: format!("{}.{ext}", list.title),
        fallback: format!("employer-{}-{month}.{ext}", list.employer.id),
        write: Box::new(move |_conn, sink| write_people(&list, format == ExportFormat::Csv, sink)),
    })
}
