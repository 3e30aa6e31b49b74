//! The import of the households a county already has (建档立卡 lists): a CSV or XLSX sheet, one
//! household a row. Imported households are "known, not yet surveyed": their keys (the head's
//! ID number's keyed hash, the 户编号) go into `household_keys` like a surveyed household's, so
//! the first survey naming either key becomes version 1 of the imported household instead of a
//! new one. Every row is checked first and every broken rule reported by row and column;
//! nothing is stored unless every row passes, in one transaction. A row whose household is
//! already known in its county (by either key) is skipped and counted, so importing the same
//! file again adds nothing.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::identity::KeyKind;
use crate::auth::Caller;
use crate::db::schema::{
    household_imports, household_keys, households, imported_households, people, villages,
};
use crate::db::{write_transaction, Db, DbConnection};
use crate::domain::{DivisionCode, DivisionLevel, IdNumber, Phone, PovertyStatus, Role, Rule};
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError};
use crate::privacy::{Purpose, Vault};
use crate::sheets::{self, SheetFormat};

/// Largest sheet taken, in bytes and in data rows: a whole city's list (about 100,000
/// households) fits in one file.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
pub const MAX_ROWS: usize = 100_000;
/// Row errors listed in a 422 (the problem's `errors_total` counts them all).
pub const MAX_LISTED_ERRORS: usize = 100;
/// Rows per key look-up and per stored batch (within both backends' bind-parameter limits).
const CHUNK: usize = 500;
/// Rows stored by one import past which PostgreSQL's statistics are refreshed.
const ANALYZE_AFTER: usize = 5_000;

/// A column: its header, the field named in errors, other headers lists use for it.
struct Column {
    title: &'static str,
    field: &'static str,
    aliases: &'static [&'static str],
    required: bool,
}

const COLUMNS: [Column; 9] = [
    Column {
        title: "村代码",
        field: "village_code",
        aliases: &["行政村代码", "村(社区)代码", "村级代码"],
        required: true,
    },
    Column {
        title: "户编号",
        field: "household_number",
        aliases: &["户码"],
        required: false,
    },
    Column {
        title: "户主姓名",
        field: "head_name",
        aliases: &["户主"],
        required: true,
    },
    Column {
        title: "户主身份证号",
        field: "head_id_number",
        aliases: &["户主身份证号码", "户主证件号码"],
        required: true,
    },
    Column {
        title: "家庭人口数",
        field: "member_count",
        aliases: &["家庭人口", "人口数"],
        required: true,
    },
    Column {
        title: "联系电话",
        field: "phone",
        aliases: &["联系方式", "手机号"],
        required: false,
    },
    Column {
        title: "贫困户属性",
        field: "poverty_status",
        aliases: &["户类型", "脱贫状态"],
        required: false,
    },
    Column {
        title: "脱贫年度",
        field: "lifted_year",
        aliases: &["脱贫年份"],
        required: false,
    },
    Column {
        title: "是否易地扶贫搬迁户",
        field: "relocated",
        aliases: &["易地扶贫搬迁户", "是否搬迁"],
        required: false,
    },
];

/// What an import did (or, on a dry run, would do).
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct HouseholdImportReport {
    pub dry_run: bool,
    /// The stored import (none on a dry run).
    pub import_id: Option<String>,
    /// SHA-256 of the file as received (hex).
    pub file_sha256: String,
    /// Data rows read (empty rows and rows starting with 示例 skipped).
    pub rows: usize,
    /// Households added as known, not yet surveyed.
    pub created: usize,
    /// Rows whose household is already known in its county (by 户主身份证号 or 户编号): skipped.
    pub known: usize,
    /// Rows repeating an earlier row of the file word for word: skipped.
    pub repeated: usize,
}

/// A header as written, normalised: no spaces, ASCII parentheses.
fn normal(header: &str) -> String {
    header
        .trim()
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '*')
        .map(|c| match c {
            '（' => '(',
            '）' => ')',
            c => c,
        })
        .collect()
}

/// A row as read: its sheet row number and its cells (trimmed, empty as none).
struct RawRow {
    number: usize,
    cells: Cells,
}

/// A row's cells in the order of [`COLUMNS`], blank ones `None`.
type Cells = [Option<String>; 9];

fn cell_text(value: Option<&String>) -> Option<String> {
    value
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Finds the header row (the first of the first five naming 户主身份证号) and each column.
fn columns(sheet: sheets::Rows) -> ApiResult<Vec<RawRow>> {
    let is_header = |cells: &[String]| {
        cells.iter().any(|c| {
            let c = normal(c);
            c == COLUMNS[3].title || COLUMNS[3].aliases.contains(&c.as_str())
        })
    };
    let header_at = sheet
        .iter()
        .take(5)
        .position(|(_, cells)| is_header(cells))
        .ok_or_else(|| {
            ApiError::field(
                "columns.户主身份证号",
                Rule::Required,
                "找不到表头：须有“村代码”“户主姓名”“户主身份证号”“家庭人口数”等列",
            )
        })?;
    let headers: Vec<String> = sheet[header_at].1.iter().map(|h| normal(h)).collect();
    let mut index = [None; 9];
    let mut errors = Vec::new();
    for (c, column) in COLUMNS.iter().enumerate() {
        index[c] = headers
            .iter()
            .position(|h| h == column.title || column.aliases.contains(&h.as_str()));
        if index[c].is_none() && column.required {
            errors.push(FieldError::new(
                format!("columns.{}", column.title),
                Rule::Required,
                format!("缺少“{}”列", column.title),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(sheet
        .into_iter()
        .skip(header_at + 1)
        .map(|(number, cells)| RawRow {
            number,
            cells: index.map(|i| i.and_then(|i| cell_text(cells.get(i)))),
        })
        .filter(|r| r.cells.iter().any(Option::is_some))
        // The template's example row, and any row a county marks the same way.
        .filter(|r| {
            !r.cells
                .iter()
                .flatten()
                .next()
                .is_some_and(|c| c.starts_with("示例"))
        })
        .collect())
}

/// A row that passed its own checks.
#[derive(Debug, Clone, PartialEq)]
struct Parsed {
    number: usize,
    village: DivisionCode,
    household_number: Option<String>,
    head_name: String,
    head_id: IdNumber,
    member_count: i32,
    phone: Option<Phone>,
    poverty: Option<PovertyStatus>,
    lifted_year: Option<i32>,
    relocated: Option<bool>,
}

impl Parsed {
    /// What the row says, for telling a repeat from a conflict.
    fn same_content(&self, other: &Parsed) -> bool {
        (
            &self.village,
            &self.household_number,
            super::validate::normalise_name(&self.head_name),
            self.member_count,
            &self.phone,
            self.poverty,
            self.lifted_year,
            self.relocated,
        ) == (
            &other.village,
            &other.household_number,
            super::validate::normalise_name(&other.head_name),
            other.member_count,
            &other.phone,
            other.poverty,
            other.lifted_year,
            other.relocated,
        )
    }
}

fn poverty_of(text: &str) -> Option<PovertyStatus> {
    if let Some(p) = PovertyStatus::parse(text) {
        return Some(p);
    }
    match text {
        "脱贫户" | "已脱贫" | "已脱贫户" | "脱贫" => Some(PovertyStatus::Lifted),
        "未脱贫户" | "未脱贫" | "贫困户" => Some(PovertyStatus::NotLifted),
        "监测户"
        | "监测对象"
        | "防返贫监测户"
        | "边缘易致贫户"
        | "脱贫不稳定户"
        | "突发严重困难户" => Some(PovertyStatus::Monitored),
        _ => None,
    }
}

fn yes_no(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "是" | "y" | "yes" | "true" | "1" => Some(true),
        "否" | "n" | "no" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// A whole number as a sheet writes it (`4`, or `4.0` from a numeric cell).
fn whole(text: &str) -> Option<i64> {
    let text = text.strip_suffix(".0").unwrap_or(text);
    text.parse::<i64>().ok()
}

/// Checks one row on its own: the parsed row, or every broken rule by column.
fn check_row(row: &RawRow, errors: &mut Vec<FieldError>) -> Option<Parsed> {
    let n = row.number;
    let before = errors.len();
    let mut bad = |c: usize, rule: Rule, detail: String| {
        let column = &COLUMNS[c];
        errors.push(FieldError::new(
            format!("rows[{n}].{}", column.field),
            rule,
            format!("第 {n} 行“{}”：{detail}", column.title),
        ));
    };
    for (c, cell) in row.cells.iter().enumerate() {
        if cell
            .as_ref()
            .is_some_and(|t| t.chars().any(char::is_control))
        {
            bad(c, Rule::ControlCharacter, "含有控制字符".into());
        }
    }
    let (village, household_number, head_name, head_id) = identity(&row.cells, &mut bad);
    let details = details(&row.cells, &mut bad);
    if errors.len() > before {
        return None;
    }
    Some(Parsed {
        number: n,
        village: village?,
        household_number,
        head_name: head_name?,
        head_id: head_id?,
        member_count: details.member_count?,
        phone: details.phone,
        poverty: details.poverty,
        lifted_year: details.lifted_year,
        relocated: details.relocated,
    })
}

/// Reports a cell's error: the column, the rule and the detail.
type Bad<'a> = dyn FnMut(usize, Rule, String) + 'a;

/// Who the household is: the village, the 户编号, the head's name and ID number.
fn identity(
    cells: &Cells,
    bad: &mut Bad<'_>,
) -> (
    Option<DivisionCode>,
    Option<String>,
    Option<String>,
    Option<IdNumber>,
) {
    let [village, number, name, id, ..] = cells;
    let village = match village.as_deref().map(DivisionCode::parse) {
        None => {
            bad(0, Rule::Required, "须填写 12 位村代码".into());
            None
        }
        Some(Err(e)) => {
            bad(
                0,
                e.rule,
                format!("{}（须以文本保存 12 位代码）", e.message),
            );
            None
        }
        Some(Ok(code)) if code.level() != DivisionLevel::Village => {
            bad(0, Rule::DivisionLevel, format!("{code} 不是村级代码"));
            None
        }
        Some(Ok(code)) => Some(code),
    };
    let household_number = match number {
        Some(n) if n.len() > 32 || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => {
            bad(
                1,
                Rule::HouseholdNumberFormat,
                "须为 1 至 32 位字母、数字或连字符".into(),
            );
            None
        }
        other => other.clone(),
    };
    let head_name = match name {
        None => {
            bad(2, Rule::Required, "须填写".into());
            None
        }
        Some(t) if t.chars().count() > 30 => {
            bad(2, Rule::Length, "最多 30 个字符".into());
            None
        }
        Some(t) => Some(t.clone()),
    };
    let head_id = match id.as_deref().map(IdNumber::parse) {
        None => {
            bad(3, Rule::Required, "须填写 18 位身份证号".into());
            None
        }
        Some(Err(e)) => {
            bad(3, e.rule, format!("{}（须以文本保存）", e.message));
            None
        }
        Some(Ok(id)) => Some(id),
    };
    (village, household_number, head_name, head_id)
}

/// The rest of a row: size, phone, poverty status and year, relocation.
struct Details {
    member_count: Option<i32>,
    phone: Option<Phone>,
    poverty: Option<PovertyStatus>,
    lifted_year: Option<i32>,
    relocated: Option<bool>,
}

fn details(cells: &Cells, bad: &mut Bad<'_>) -> Details {
    let [_, _, _, _, count, phone, poverty, year, relocated] = cells;
    let max = super::validate::MAX_MEMBERS as i64;
    let member_count = match count.as_deref().map(whole) {
        None => {
            bad(4, Rule::Required, "须填写".into());
            None
        }
        Some(Some(c)) if (1..=max).contains(&c) => Some(c as i32),
        Some(_) => {
            bad(4, Rule::Range, format!("须为 1 至 {max} 的整数"));
            None
        }
    };
    let phone = match phone.as_deref().map(Phone::parse) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            bad(5, e.rule, e.message);
            None
        }
    };
    let mut poverty_status = match poverty.as_deref() {
        None => None,
        Some(t) => {
            let p = poverty_of(t);
            if p.is_none() {
                bad(
                    6,
                    Rule::UnknownValue,
                    "须为 脱贫户、未脱贫户 或 监测户".into(),
                );
            }
            p
        }
    };
    let lifted_year = match year.as_deref() {
        None => None,
        Some(t) => match whole(t.trim_end_matches('年')) {
            Some(y) if (2013..=2100).contains(&y) => Some(y as i32),
            _ => {
                bad(7, Rule::Range, "须为 2013 至 2100 的年份".into());
                None
            }
        },
    };
    if lifted_year.is_some() && poverty_status.is_none() && poverty.is_none() {
        // A lifting year says the household was lifted.
        poverty_status = Some(PovertyStatus::Lifted);
    }
    let relocated = match relocated.as_deref() {
        None => None,
        Some(t) => {
            let r = yes_no(t);
            if r.is_none() {
                bad(8, Rule::UnknownValue, "须为 是 或 否".into());
            }
            r
        }
    };
    Details {
        member_count,
        phone,
        poverty: poverty_status,
        lifted_year,
        relocated,
    }
}

fn row_error(n: usize, c: usize, rule: Rule, detail: String) -> FieldError {
    let column = &COLUMNS[c];
    FieldError::new(
        format!("rows[{n}].{}", column.field),
        rule,
        format!("第 {n} 行“{}”：{detail}", column.title),
    )
}

/// The rows that remain once repeats are dropped, with their heads' keyed hashes; a second
/// row with the same head's ID number or, in one county, the same 户编号 but other content is
/// an error.
fn drop_repeats(
    vault: &Vault,
    rows: Vec<Parsed>,
    errors: &mut Vec<FieldError>,
) -> (Vec<(Parsed, String)>, usize) {
    let mut by_head: HashMap<String, usize> = HashMap::new();
    let mut by_number: HashMap<(DivisionCode, String), usize> = HashMap::new();
    let mut kept: Vec<(Parsed, String)> = Vec::with_capacity(rows.len());
    let mut repeated = 0;
    for row in rows {
        let hash = vault.index_id(&row.head_id);
        if let Some(&first) = by_head.get(&hash) {
            if kept[first].0.same_content(&row) {
                repeated += 1;
            } else {
                errors.push(row_error(
                    row.number,
                    3,
                    Rule::Duplicate,
                    format!(
                        "与第 {} 行的户主身份证号相同，其他内容却不同",
                        kept[first].0.number
                    ),
                ));
            }
            continue;
        }
        if let Some(number) = &row.household_number {
            let key = (row.village.county(), number.clone());
            if let Some(&first) = by_number.get(&key) {
                errors.push(row_error(
                    row.number,
                    1,
                    Rule::Duplicate,
                    format!(
                        "与第 {} 行的户编号相同，户主身份证号却不同",
                        kept[first].0.number
                    ),
                ));
                continue;
            }
            by_number.insert(key, kept.len());
        }
        by_head.insert(hash.clone(), kept.len());
        kept.push((row, hash));
    }
    (kept, repeated)
}

/// The villages named, checked: each must exist and be in the caller's scope.
fn check_villages(
    conn: &mut DbConnection,
    caller: &Caller,
    rows: &[(Parsed, String)],
    errors: &mut Vec<FieldError>,
) -> QueryResult<()> {
    let named: BTreeSet<&str> = rows.iter().map(|(r, _)| r.village.as_str()).collect();
    let named: Vec<&str> = named.into_iter().collect();
    let mut known: HashSet<String> = HashSet::new();
    for chunk in named.chunks(CHUNK) {
        known.extend(
            villages::table
                .filter(villages::code.eq_any(chunk))
                .select(villages::code)
                .load::<String>(conn)?,
        );
    }
    for (r, _) in rows {
        if !known.contains(r.village.as_str()) {
            errors.push(row_error(
                r.number,
                0,
                Rule::UnknownVillage,
                format!("村 {} 不存在", r.village),
            ));
        } else if !caller.can_access_village(&r.village) {
            errors.push(row_error(
                r.number,
                0,
                Rule::OutOfScope,
                format!("村 {} 不在您的管辖范围内", r.village),
            ));
        }
    }
    Ok(())
}

/// The keys of a kind already held in each county, among those given.
fn held(
    conn: &mut DbConnection,
    kind: KeyKind,
    wanted: &HashMap<String, Vec<String>>,
) -> QueryResult<HashSet<(String, String)>> {
    let mut out = HashSet::new();
    for (county, values) in wanted {
        for chunk in values.chunks(CHUNK) {
            let found: Vec<String> = household_keys::table
                .filter(household_keys::county_code.eq(county))
                .filter(household_keys::kind.eq(kind.as_str()))
                .filter(household_keys::value.eq_any(chunk))
                .select(household_keys::value)
                .load(conn)?;
            out.extend(found.into_iter().map(|v| (county.clone(), v)));
        }
    }
    Ok(out)
}

/// The rows whose household is not yet known in its county, and how many were.
fn unknown_rows(
    conn: &mut DbConnection,
    rows: Vec<(Parsed, String)>,
) -> QueryResult<(Vec<(Parsed, String)>, usize)> {
    let mut heads: HashMap<String, Vec<String>> = HashMap::new();
    let mut numbers: HashMap<String, Vec<String>> = HashMap::new();
    for (r, hash) in &rows {
        let county = r.village.county().as_str().to_owned();
        heads.entry(county.clone()).or_default().push(hash.clone());
        if let Some(n) = &r.household_number {
            numbers.entry(county).or_default().push(n.clone());
        }
    }
    let held_heads = held(conn, KeyKind::HeadId, &heads)?;
    let held_numbers = held(conn, KeyKind::HouseholdNumber, &numbers)?;
    let before = rows.len();
    let fresh: Vec<(Parsed, String)> = rows
        .into_iter()
        .filter(|(r, hash)| {
            let county = r.village.county().as_str().to_owned();
            let by_number = r
                .household_number
                .as_ref()
                .is_some_and(|n| held_numbers.contains(&(county.clone(), n.clone())));
            !by_number && !held_heads.contains(&(county, hash.clone()))
        })
        .collect();
    let known = before - fresh.len();
    Ok((fresh, known))
}

/// Everything an import stores, besides the rows.
struct Batch<'a> {
    import_id: &'a str,
    user: &'a str,
    now: DateTime<Utc>,
    sha256: &'a str,
    format: SheetFormat,
}

/// Stores the new households, their keys, their heads and the import, stamps the villages
/// and audits the import.
fn store(
    conn: &mut DbConnection,
    vault: &Vault,
    batch: &Batch<'_>,
    fresh: &[(Parsed, String)],
    report: &HouseholdImportReport,
) -> QueryResult<()> {
    let now = batch.now.naive_utc();
    diesel::insert_into(household_imports::table)
        .values((
            household_imports::id.eq(batch.import_id),
            household_imports::imported_by.eq(batch.user),
            household_imports::imported_at.eq(now),
            household_imports::file_sha256.eq(batch.sha256),
            household_imports::format.eq(match batch.format {
                SheetFormat::Csv => "csv",
                SheetFormat::Xlsx => "xlsx",
            }),
            household_imports::rows.eq(report.rows as i32),
            household_imports::created.eq(report.created as i32),
            household_imports::known.eq(report.known as i32),
            household_imports::repeated.eq(report.repeated as i32),
        ))
        .execute(conn)?;
    let villages: BTreeSet<String> = fresh
        .iter()
        .map(|(r, _)| r.village.as_str().to_owned())
        .collect();
    let stamps = crate::changes::households_added(conn, &villages)?;
    for chunk in fresh.chunks(CHUNK) {
        store_chunk(conn, vault, batch, chunk, &stamps)?;
    }
    // PostgreSQL plans by its statistics, and until autovacuum has analyzed a table grown by a
    // bulk load it plans the key look-ups as if it were small: the next import then scanned
    // all of a county's keys for every chunk of 500 (57 ms a chunk at 100,000 households
    // against 4 ms analyzed). Refresh them in the same transaction.
    if fresh.len() >= ANALYZE_AFTER && matches!(conn, DbConnection::Postgresql(_)) {
        conn.batch_execute("ANALYZE households, household_keys, people, imported_households")?;
    }
    let detail = format!(
        "导入建档立卡户：文件 SHA-256 {}（{}），共 {} 行，新增 {} 户，已知跳过 {} 户，文件内重复 {} 行，涉及 {} 个村",
        batch.sha256,
        match batch.format {
            SheetFormat::Csv => "CSV",
            SheetFormat::Xlsx => "XLSX",
        },
        report.rows,
        report.created,
        report.known,
        report.repeated,
        villages.len()
    );
    crate::audit::append(
        conn,
        &crate::audit::Entry {
            user_id: batch.user,
            action: "import_households",
            subject_type: "household_import",
            subject_id: batch.import_id,
            detail: Some(&detail),
            ..Default::default()
        },
    )
}

fn store_chunk(
    conn: &mut DbConnection,
    vault: &Vault,
    batch: &Batch<'_>,
    chunk: &[(Parsed, String)],
    stamps: &HashMap<String, i64>,
) -> QueryResult<()> {
    let now = batch.now.naive_utc();
    let ids: Vec<String> = chunk
        .iter()
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let homes: Vec<_> = chunk
        .iter()
        .zip(&ids)
        .map(|((r, _), id)| {
            (
                households::id.eq(id.as_str()),
                households::village_code.eq(r.village.as_str()),
                households::created_at.eq(now),
                households::sync_seq.eq(stamps.get(r.village.as_str()).copied().unwrap_or(0)),
            )
        })
        .collect();
    // One row a statement: diesel's multi-row insert is not available over both backends.
    for row in homes {
        diesel::insert_into(households::table)
            .values(row)
            .execute(conn)?;
    }
    let mut keys = Vec::with_capacity(chunk.len() * 2);
    for ((r, hash), id) in chunk.iter().zip(&ids) {
        let county = r.village.county().as_str().to_owned();
        keys.push((
            household_keys::county_code.eq(county.clone()),
            household_keys::kind.eq(KeyKind::HeadId.as_str()),
            household_keys::value.eq(hash.clone()),
            household_keys::household_id.eq(id.clone()),
        ));
        if let Some(n) = &r.household_number {
            keys.push((
                household_keys::county_code.eq(county),
                household_keys::kind.eq(KeyKind::HouseholdNumber.as_str()),
                household_keys::value.eq(n.clone()),
                household_keys::household_id.eq(id.clone()),
            ));
        }
    }
    for row in keys {
        diesel::insert_into(household_keys::table)
            .values(row)
            .execute(conn)?;
    }
    let sealed: Vec<String> = chunk
        .iter()
        .map(|(r, _)| vault.seal_id(&r.head_id))
        .collect();
    // The heads become people (as a survey's members do), unless already known.
    let hashes: Vec<&str> = chunk.iter().map(|(_, h)| h.as_str()).collect();
    let stored: HashSet<String> = people::table
        .filter(people::id_hash.eq_any(&hashes))
        .select(people::id_hash)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    let heads: Vec<_> = chunk
        .iter()
        .zip(&sealed)
        .filter(|((_, h), _)| !stored.contains(h))
        .map(|((r, h), s)| {
            (
                people::id_hash.eq(h.as_str()),
                people::id_sealed.eq(Some(s.as_str())),
                people::sex.eq(r.head_id.sex().as_str()),
                people::birth_date.eq(r.head_id.birth_date()),
            )
        })
        .collect();
    {
        for row in heads {
            diesel::insert_into(people::table)
                .values(row)
                .execute(conn)?;
        }
    }
    let rows: Vec<_> = chunk
        .iter()
        .zip(&ids)
        .zip(&sealed)
        .map(|(((r, hash), id), sealed)| {
            (
                imported_households::household_id.eq(id.as_str()),
                imported_households::import_id.eq(batch.import_id),
                imported_households::imported_at.eq(now),
                imported_households::village_code.eq(r.village.as_str()),
                imported_households::household_number.eq(r.household_number.as_deref()),
                imported_households::head_name.eq(r.head_name.as_str()),
                imported_households::head_id_hash.eq(hash.as_str()),
                imported_households::head_id_sealed.eq(sealed.as_str()),
                imported_households::member_count.eq(r.member_count),
                imported_households::phone_sealed.eq(r
                    .phone
                    .as_ref()
                    .map(|p| vault.seal(Purpose::Phone, p.as_str().as_bytes()))),
                imported_households::poverty_status.eq(r.poverty.map(|p| p.as_str())),
                imported_households::lifted_year.eq(r.lifted_year),
                imported_households::relocated.eq(r.relocated),
            )
        })
        .collect();
    for row in rows {
        diesel::insert_into(imported_households::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// 422 with the first [`MAX_LISTED_ERRORS`] errors and how many there were.
fn refused(mut errors: Vec<FieldError>) -> ApiError {
    let total = errors.len();
    if total > MAX_LISTED_ERRORS {
        errors.truncate(MAX_LISTED_ERRORS);
        ApiError::ValidationTruncated { errors, total }
    } else {
        ApiError::Validation(errors)
    }
}

/// A key another writer stored meanwhile: the import can simply be sent again.
fn conflict_or(error: diesel::result::Error) -> ApiError {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => ApiError::Conflict {
            code: ErrorCode::Conflict,
            detail: "导入期间另有调查登记了其中的户：请重新导入（已登记的户会被跳过）".into(),
        },
        other => other.into(),
    }
}

/// Who may import: the city, and county reviewers (their county's villages only).
pub fn require_importer(caller: &Caller) -> ApiResult<()> {
    caller.require_role(&[Role::CityAdmin, Role::CountyReviewer])
}

/// Imports a 建档立卡 list. With `dry_run`, checks and reports and stores nothing.
pub async fn import(
    db: &Db,
    vault: &Vault,
    caller: &Caller,
    body: Vec<u8>,
    format: SheetFormat,
    dry_run: bool,
) -> ApiResult<HouseholdImportReport> {
    require_importer(caller)?;
    let vault = vault.clone();
    // Parsing, checking and hashing are CPU work: off the async worker, before the writer's turn.
    let (sha256, parsed, mut errors) = tokio::task::spawn_blocking({
        let vault = vault.clone();
        move || -> ApiResult<_> {
            let sha256 = hex::encode(Sha256::digest(&body));
            // The header may sit below a title or two; a sheet that fills the read is too long.
            let limit = MAX_ROWS + 6;
            let sheet = sheets::read(&body, format, limit)?;
            if sheet.len() >= limit {
                return Err(ApiError::field(
                    "body",
                    Rule::TooMany,
                    format!("一次最多导入 {MAX_ROWS} 行"),
                ));
            }
            let raw = columns(sheet)?;
            let mut errors = Vec::new();
            let rows: Vec<Parsed> = raw
                .iter()
                .filter_map(|r| check_row(r, &mut errors))
                .collect();
            let read = raw.len();
            let (kept, repeated) = drop_repeats(&vault, rows, &mut errors);
            Ok((sha256, (kept, repeated, read), errors))
        }
    })
    .await
    .map_err(ApiError::internal)??;
    let (kept, repeated, read) = parsed;
    let caller = caller.clone();
    db.run_as(!dry_run, move |conn| {
        let work = |conn: &mut DbConnection| -> ApiResult<HouseholdImportReport> {
            check_villages(conn, &caller, &kept, &mut errors)?;
            if !errors.is_empty() {
                errors.sort_by_key(|e| {
                    let n: usize = e
                        .field
                        .strip_prefix("rows[")
                        .and_then(|f| f.split(']').next())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    n
                });
                return Err(refused(errors));
            }
            let (fresh, known) = unknown_rows(conn, kept)?;
            let import_id = uuid::Uuid::now_v7().to_string();
            let mut report = HouseholdImportReport {
                dry_run,
                import_id: (!dry_run).then(|| import_id.clone()),
                file_sha256: sha256.clone(),
                rows: read,
                created: fresh.len(),
                known,
                repeated,
            };
            if !dry_run {
                let batch = Batch {
                    import_id: &import_id,
                    user: &caller.user_id,
                    now: Utc::now(),
                    sha256: &sha256,
                    format,
                };
                store(conn, &vault, &batch, &fresh, &report).map_err(conflict_or)?;
            } else {
                report.import_id = None;
            }
            Ok(report)
        };
        if dry_run {
            conn.transaction(work)
        } else {
            write_transaction(conn, work)
        }
    })
    .await
}

/// The import's headers, for the template.
pub fn headers() -> Vec<&'static str> {
    COLUMNS.iter().map(|c| c.title).collect()
}

const EXAMPLE: [&str; 9] = [
    "示例（导入前请删除本行）",
    "2208021002010001",
    "张三",
    "220802199001011236",
    "4",
    "13900000000",
    "脱贫户",
    "2019",
    "否",
];

/// What each column takes, for the template's instructions.
const NOTES: [&str; 9] = [
    "必填。12 位村级区划代码，以文本保存（例如 220802100201）",
    "选填。全国扶贫开发信息系统的户编号：1 至 32 位字母、数字或连字符",
    "必填。最多 30 个字",
    "必填。18 位身份证号，以文本保存（数值格式会丢失末几位）",
    "必填。1 至 30 的整数",
    "选填。11 位手机号",
    "选填。脱贫户、未脱贫户 或 监测户",
    "选填。如 2019；只填年度时视为脱贫户",
    "选填。是 或 否",
];

/// The template: CSV (UTF-8 with BOM) or XLSX with the headers, one example row (skipped on
/// import: it starts with 示例) and, in the XLSX, a sheet of instructions.
pub fn template(format: SheetFormat) -> ApiResult<Vec<u8>> {
    sheets::Template {
        sheet: "建档立卡户",
        headers: &headers(),
        example: &EXAMPLE,
        width: 20.0,
        notes: Some((
            &NOTES,
            "只读取第一个工作表；以“示例”开头的行不导入；已登记的户（户主身份证号或户编号相同）跳过不重复登记。",
        )),
    }
    .write(format)
}
