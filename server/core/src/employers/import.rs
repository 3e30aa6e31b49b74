//! The registry's import (`POST /employers/import`): a CSV or XLSX sheet with Chinese column
//! headers, one employer a row. Every row is checked first and every broken rule reported by
//! row number and column; nothing is stored unless every row passes. A row whose credit code
//! (or, without one, whose county and name) is registered updates that employer, else it adds
//! one; an unchanged row writes nothing.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::service::{self, Fields, Row};
use crate::auth::Caller;
use crate::db::schema::{divisions, employers};
use crate::db::{write_transaction, Db, DbConnection};
use crate::domain::{DivisionLevel, EmployerKind, Rule};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::sheets;

/// Largest sheet taken, in bytes and in rows.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_ROWS: usize = 5000;

pub use crate::sheets::SheetFormat;

/// The columns, as their Chinese headers say.
const COLUMNS: [(&str, &str); 6] = [
    ("名称", "name"),
    ("类型", "kind"),
    ("统一社会信用代码", "credit_code"),
    ("所在县(市、区)", "county"),
    ("所在村", "village"),
    ("地址", "address"),
];
const REQUIRED: [usize; 3] = [0, 1, 3];

/// What an import did (or, on a dry run, would do).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ImportReport {
    pub dry_run: bool,
    /// Data rows read (empty rows skipped).
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// A header as written, normalised: no spaces, ASCII parentheses.
fn normal(header: &str) -> String {
    header
        .trim()
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '（' => '(',
            '）' => ')',
            c => c,
        })
        .collect()
}

/// A row as read: its sheet row number and its six cells (trimmed, empty as none).
struct RawRow {
    number: usize,
    cells: [Option<String>; 6],
}

/// Finds the header row (the first whose cells include 名称) and each column under it.
fn columns(sheet: sheets::Rows) -> ApiResult<Vec<RawRow>> {
    let header_at = sheet
        .iter()
        .take(5)
        .position(|(_, cells)| cells.iter().any(|c| normal(c) == "名称"))
        .ok_or_else(|| {
            ApiError::field(
                "columns.名称",
                Rule::Required,
                "找不到表头：须有“名称”“类型”“所在县（市、区）”等列",
            )
        })?;
    let headers: Vec<String> = sheet[header_at].1.iter().map(|h| normal(h)).collect();
    let mut index = [None; 6];
    let mut errors = Vec::new();
    for (c, (title, _)) in COLUMNS.iter().enumerate() {
        let found = headers
            .iter()
            .position(|h| h == title || (c == 3 && (h == "所在县" || h == "县(市、区)")));
        index[c] = found;
        if found.is_none() && REQUIRED.contains(&c) {
            errors.push(FieldError::new(
                format!("columns.{title}"),
                Rule::Required,
                format!("缺少“{title}”列"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let rows: Vec<RawRow> = sheet
        .into_iter()
        .skip(header_at + 1)
        .map(|(number, cells)| RawRow {
            number,
            cells: index.map(|i| i.and_then(|i| service::text(cells.get(i).map(String::as_str)))),
        })
        .filter(|r| r.cells.iter().any(Option::is_some))
        .collect();
    if rows.len() > MAX_ROWS {
        return Err(ApiError::field(
            "body",
            Rule::TooMany,
            format!("一次最多导入 {MAX_ROWS} 行"),
        ));
    }
    Ok(rows)
}

const CODE_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
const CODE_WEIGHTS: [usize; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

fn code_check(values: &[usize]) -> usize {
    let sum: usize = values.iter().zip(CODE_WEIGHTS).map(|(v, w)| v * w).sum();
    (31 - sum % 31) % 31
}

/// A 统一社会信用代码 from its first 17 characters (digits and capitals of the code's
/// alphabet): the 17 and their check character; none if a character is not of the alphabet.
pub fn credit_code_with_check(first: &str) -> Option<String> {
    let values: Vec<usize> = first
        .chars()
        .filter_map(|c| CODE_ALPHABET.find(c))
        .collect();
    if values.len() != 17 || first.chars().count() != 17 {
        return None;
    }
    let check = CODE_ALPHABET.chars().nth(code_check(&values))?;
    Some(format!("{first}{check}"))
}

/// Whether a 统一社会信用代码 is well formed (GB 32100-2015: 18 characters, no I, O, S, V, Z).
pub fn credit_code_ok(code: &str) -> bool {
    let values: Vec<usize> = code.chars().filter_map(|c| CODE_ALPHABET.find(c)).collect();
    if code.chars().count() != 18 || values.len() != 18 {
        return false;
    }
    code_check(&values[..17]) == values[17]
}

/// The counties by code and by name.
struct Places {
    counties: HashMap<String, String>,
    villages: HashMap<String, String>,
}

impl Places {
    fn load(conn: &mut DbConnection) -> QueryResult<Places> {
        let counties: Vec<(String, String)> = divisions::table
            .filter(divisions::level.eq(DivisionLevel::County.as_str()))
            .select((divisions::code, divisions::name))
            .load(conn)?;
        let villages: Vec<(String, String)> = crate::db::schema::villages::table
            .select((
                crate::db::schema::villages::code,
                crate::db::schema::villages::county_code,
            ))
            .load(conn)?;
        Ok(Places {
            counties: counties.into_iter().collect(),
            villages: villages.into_iter().collect(),
        })
    }

    fn county(&self, text: &str) -> Option<String> {
        if self.counties.contains_key(text) {
            return Some(text.to_owned());
        }
        self.counties
            .iter()
            .find(|(_, name)| name.as_str() == text)
            .map(|(code, _)| code.clone())
    }
}

/// Checks every row: the employers' fields, or every broken rule by row and column.
fn check_rows(places: &Places, rows: &[RawRow]) -> Result<Vec<(usize, Fields)>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    let mut codes: HashMap<String, usize> = HashMap::new();
    for row in rows {
        let n = row.number;
        let mut bad = |c: usize, rule: Rule, detail: String| {
            let (title, field) = COLUMNS[c];
            errors.push(FieldError::new(
                format!("rows[{n}].{field}"),
                rule,
                format!("第 {n} 行“{title}”：{detail}"),
            ));
        };
        let [name, kind, code, county, village, address] = &row.cells;
        let name = match name {
            None => {
                bad(0, Rule::Required, "须填写".into());
                None
            }
            Some(n) if n.chars().count() > 100 => {
                bad(0, Rule::Length, "最多 100 个字符".into());
                None
            }
            Some(n) => Some(n.clone()),
        };
        let kind = match kind.as_deref().map(EmployerKind::parse_label) {
            None => {
                bad(1, Rule::Required, "须填写".into());
                None
            }
            Some(None) => {
                bad(
                    1,
                    Rule::UnknownValue,
                    "须为 龙头企业、合作社 或 扶贫车间".into(),
                );
                None
            }
            Some(k) => k,
        };
        let code = code.as_ref().map(|c| c.to_uppercase());
        if let Some(c) = &code {
            if !credit_code_ok(c) {
                bad(
                    2,
                    Rule::CreditCodeFormat,
                    format!("{c} 不是有效的 18 位代码"),
                );
            } else if let Some(first) = codes.insert(c.clone(), n) {
                bad(2, Rule::Duplicate, format!("与第 {first} 行重复"));
            }
        }
        let county = match county.as_deref() {
            None => {
                bad(3, Rule::Required, "须填写县（市、区）代码或名称".into());
                None
            }
            Some(text) => {
                let found = places.county(text);
                if found.is_none() {
                    bad(
                        3,
                        Rule::UnknownCounty,
                        format!("{text} 不是本市的县（市、区）"),
                    );
                }
                found
            }
        };
        if let Some(v) = village {
            match (places.villages.get(v), &county) {
                (None, _) => bad(4, Rule::UnknownVillage, format!("村 {v} 不存在")),
                (Some(c), Some(county)) if c != county => {
                    bad(4, Rule::OutOfScope, "村不在所填的县（市、区）内".into())
                }
                _ => {}
            }
        }
        if address.as_ref().is_some_and(|a| a.chars().count() > 200) {
            bad(5, Rule::Length, "最多 200 个字符".into());
        }
        if let (Some(name), Some(kind), Some(county_code)) = (name, kind, county) {
            out.push((
                n,
                Fields {
                    kind,
                    name,
                    credit_code: code,
                    county_code,
                    village_code: village.clone(),
                    address: address.clone(),
                    active: true,
                },
            ));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// What becomes of each row: the employer it updates (if any) and whether it changes it.
enum Plan {
    Create(Fields),
    Update(String, Fields),
    Unchanged,
}

fn plan(conn: &mut DbConnection, rows: Vec<(usize, Fields)>) -> ApiResult<Vec<Plan>> {
    let registered: Vec<Row> = employers::table.select(Row::as_select()).load(conn)?;
    let mut by_code: HashMap<String, service::Employer> = HashMap::new();
    let mut by_name: HashMap<(String, String), service::Employer> = HashMap::new();
    for r in registered {
        let e = r.employer()?;
        match &e.credit_code {
            Some(c) => {
                by_code.insert(c.clone(), e);
            }
            None => {
                by_name.insert((e.county_code.clone(), e.name.clone()), e);
            }
        }
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for (_, fields) in rows {
        let existing = match &fields.credit_code {
            Some(c) => by_code.get(c),
            None => by_name.get(&(fields.county_code.clone(), fields.name.clone())),
        };
        out.push(match existing {
            // A second row naming the same code-less employer adds nothing more.
            Some(e) if !seen.insert(e.id.clone()) => Plan::Unchanged,
            Some(e) if Fields::of(e) == fields => Plan::Unchanged,
            Some(e) => Plan::Update(e.id.clone(), fields),
            None => Plan::Create(fields),
        });
    }
    Ok(out)
}

/// Imports a sheet (city admins). With `dry_run`, reports what it would do and stores nothing.
pub async fn import(
    db: &Db,
    caller: &Caller,
    body: Vec<u8>,
    format: SheetFormat,
    dry_run: bool,
) -> ApiResult<ImportReport> {
    service::require_editor(caller)?;
    // Parsing is CPU work: off the async worker, and before the writer's turn.
    let sheet = tokio::task::spawn_blocking(move || sheets::read(&body, format, MAX_ROWS + 2))
        .await
        .map_err(ApiError::internal)??;
    let rows = columns(sheet)?;
    let user = caller.user_id.clone();
    let now = Utc::now();
    db.run_as(!dry_run, move |conn| {
        write_transaction(conn, |conn| {
            let places = Places::load(conn)?;
            let fields = check_rows(&places, &rows).map_err(ApiError::Validation)?;
            let mut report = ImportReport {
                dry_run,
                rows: fields.len(),
                ..Default::default()
            };
            for p in plan(conn, fields)? {
                match p {
                    Plan::Create(f) => {
                        report.created += 1;
                        if !dry_run {
                            let id = uuid::Uuid::now_v7().to_string();
                            service::store(conn, &id, &f, &user, now, true)?;
                        }
                    }
                    Plan::Update(id, f) => {
                        report.updated += 1;
                        if !dry_run {
                            service::store(conn, &id, &f, &user, now, false)?;
                        }
                    }
                    Plan::Unchanged => report.unchanged += 1,
                }
            }
            Ok(report)
        })
    })
    .await
}

/// The import's headers, for the template.
pub fn headers() -> Vec<&'static str> {
    vec![
        "名称",
        "类型",
        "统一社会信用代码",
        "所在县（市、区）",
        "所在村",
        "地址",
    ]
}

const EXAMPLE: [&str; 6] = [
    "洮北区丰收农业专业合作社",
    "合作社",
    "",
    "220802000000",
    "",
    "洮北区平安镇",
];

/// The template: CSV (UTF-8 with BOM) or XLSX with the headers and one example row.
pub fn template(format: SheetFormat) -> ApiResult<Vec<u8>> {
    sheets::Template {
        sheet: "用工主体",
        headers: &headers(),
        example: &EXAMPLE,
        width: 24.0,
        notes: None,
    }
    .write(format)
}
