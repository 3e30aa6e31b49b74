//! The 考勤表 (a row per person, a column per day of the month, totals) and the 岗位补贴发放表
//! as XLSX or CSV (UTF-8 with BOM). Counts and amounts are numbers (amounts in yuan with two
//! decimals, computed from integer fen); codes and ID numbers are text.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use chrono::{Datelike, NaiveDate};
use rust_xlsxwriter::{Format, FormatAlign, FormatBorder, Workbook, Worksheet, XlsxError};

use super::attendance::{DayMark, Detailed, PersonAttendance};
use super::subsidies::{yuan, SubsidySheet, SubsidyTotal};
use crate::error::{ApiError, ApiResult};
use crate::ledger::export::{display_width, BOM};

/// The marks of a day, and the legend that explains them.
pub const PRESENT: &str = "√";
pub const FLAGGED: &str = "疑";
pub const DISMISSED: &str = "×";
pub const LEGEND: &str =
    "图例：√ 出勤（含核实有效的打卡）；疑 有疑点、待核实（不计出勤）；× 核实无效（不计出勤）；空白 未打卡";

fn mark(m: Option<&DayMark>) -> &'static str {
    match m {
        Some(DayMark::Present) => PRESENT,
        Some(DayMark::Flagged) => FLAGGED,
        Some(DayMark::Dismissed) => DISMISSED,
        None => "",
    }
}

fn xlsx_error(e: XlsxError) -> ApiError {
    ApiError::internal(anyhow::anyhow!("writing the spreadsheet: {e}"))
}

/// A cell: text, a count, or an amount in fen shown as yuan.
pub enum Cell {
    Text(String),
    Count(i64),
    Fen(i64),
}

impl Cell {
    fn csv(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Count(n) => n.to_string(),
            Cell::Fen(f) => yuan(*f),
        }
    }
}

struct Formats {
    title: Format,
    header: Format,
    cell: Format,
    money: Format,
    legend: Format,
}

fn formats() -> Formats {
    Formats {
        title: Format::new()
            .set_bold()
            .set_font_size(16)
            .set_align(FormatAlign::Center),
        header: Format::new()
            .set_bold()
            .set_text_wrap()
            .set_align(FormatAlign::Center)
            .set_align(FormatAlign::VerticalCenter)
            .set_border(FormatBorder::Thin)
            .set_background_color(0xDDEBF7),
        cell: Format::new().set_border(FormatBorder::Thin),
        money: Format::new()
            .set_border(FormatBorder::Thin)
            .set_num_format("0.00"),
        legend: Format::new().set_italic(),
    }
}

/// A table: its sheet name, title, note row (legend or rule), headers and rows.
pub struct Table {
    pub sheet: String,
    pub title: String,
    pub note: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

fn write_sheet(sheet: &mut Worksheet, t: &Table, f: &Formats) -> Result<(), XlsxError> {
    sheet.set_name(&t.sheet)?;
    let last = t.headers.len().saturating_sub(1) as u16;
    sheet.merge_range(0, 0, 0, last, &t.title, &f.title)?;
    sheet.merge_range(1, 0, 1, last, &t.note, &f.legend)?;
    sheet.set_row_height(0, 28)?;
    for (i, h) in t.headers.iter().enumerate() {
        sheet.write_string_with_format(2, i as u16, h, &f.header)?;
        let widest = t
            .rows
            .iter()
            .map(|r| match r.get(i) {
                Some(Cell::Text(s)) => display_width(s),
                _ => 6,
            })
            .max()
            .unwrap_or(4)
            .max(display_width(h).min(12));
        sheet.set_column_width(i as u16, (widest as f64 + 2.0).clamp(4.0, 40.0))?;
    }
    sheet.set_freeze_panes(3, 0)?;
    for (r, row) in t.rows.iter().enumerate() {
        let r = r as u32 + 3;
        for (c, cell) in row.iter().enumerate() {
            let c = c as u16;
            match cell {
                Cell::Text(s) => sheet.write_string_with_format(r, c, s, &f.cell)?,
                Cell::Count(n) => sheet.write_number_with_format(r, c, *n as f64, &f.cell)?,
                Cell::Fen(n) => {
                    sheet.write_number_with_format(r, c, *n as f64 / 100.0, &f.money)?
                }
            };
        }
    }
    Ok(())
}

/// Writes the tables as one workbook, a sheet each.
pub fn xlsx(tables: &[Table], sink: &mut dyn Write) -> ApiResult<()> {
    let f = formats();
    let mut workbook = Workbook::new();
    for t in tables {
        write_sheet(workbook.add_worksheet(), t, &f).map_err(xlsx_error)?;
    }
    let bytes = workbook.save_to_buffer().map_err(xlsx_error)?;
    // A client that has gone simply stops the download.
    let _ = sink.write_all(&bytes);
    Ok(())
}

/// Writes the tables as one CSV: each table's headers and rows, a blank line between them.
pub fn csv(tables: &[Table], sink: &mut dyn Write) -> ApiResult<()> {
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(BOM.to_vec());
    for (i, t) in tables.iter().enumerate() {
        if i > 0 {
            writer.write_record([""]).map_err(ApiError::internal)?;
        }
        writer
            .write_record(&t.headers)
            .map_err(ApiError::internal)?;
        for row in &t.rows {
            writer
                .write_record(row.iter().map(Cell::csv))
                .map_err(ApiError::internal)?;
        }
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| ApiError::internal(e.into_error()))?;
    let _ = sink.write_all(&bytes);
    Ok(())
}

/// What a person is on the sheet: their role, post or check-in kind.
fn category(p: &PersonAttendance) -> &'static str {
    match (p.role, p.post) {
        (Some(role), _) => role.label(),
        (None, Some(post)) => post.label(),
        _ => p.kind.label(),
    }
}

/// The 考勤表 of a month: a row per person, a column per day.
pub fn attendance_table(d: &Detailed, names: &HashMap<String, String>) -> Table {
    let month = d.attendance.month;
    let days: Vec<NaiveDate> = month
        .first_day()
        .iter_days()
        .take_while(|day| *day <= month.last_day())
        .collect();
    let mut headers: Vec<String> = ["行政村", "姓名", "类别", "身份证号"]
        .map(str::to_owned)
        .to_vec();
    headers.extend(days.iter().map(|day| format!("{}日", day.day())));
    headers.extend(
        [
            "出勤天数",
            "待核实天数",
            "核实无效天数",
            "应出勤天数",
            "是否达标",
            "村代码",
        ]
        .map(str::to_owned),
    );
    let empty = BTreeMap::new();
    let rows = d
        .attendance
        .people
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let marks = d.days.get(i).unwrap_or(&empty);
            let mut row = vec![
                Cell::Text(names.get(&p.village_code).cloned().unwrap_or_default()),
                Cell::Text(p.name.clone().unwrap_or_default()),
                Cell::Text(category(p).to_owned()),
                Cell::Text(p.worker_id_number.clone().unwrap_or_default()),
            ];
            row.extend(
                days.iter()
                    .map(|day| Cell::Text(mark(marks.get(day)).to_owned())),
            );
            row.extend([
                Cell::Count(p.days_present.into()),
                Cell::Count(p.days_flagged.into()),
                Cell::Count(p.days_dismissed.into()),
                Cell::Count(p.days_required.into()),
                Cell::Text(
                    if p.no_checkins {
                        "未打卡"
                    } else if p.requirement_met {
                        "达标"
                    } else {
                        "未达标"
                    }
                    .to_owned(),
                ),
                Cell::Text(p.village_code.clone()),
            ]);
            row
        })
        .collect();
    Table {
        sheet: "考勤表".into(),
        title: format!("{month} 驻村考勤表"),
        note: LEGEND.into(),
        headers,
        rows,
    }
}

/// Headers of the subsidy sheet's lines.
pub const SUBSIDY_HEADERS: [&str; 14] = [
    "县（市、区）",
    "乡镇（街道）",
    "行政村",
    "姓名",
    "身份证号",
    "岗位类别",
    "应出勤天数",
    "实际出勤天数",
    "待核实天数",
    "月补贴标准（元）",
    "应发金额（元）",
    "备注",
    "村代码",
    "签领",
];

/// The 岗位补贴发放表: the lines with a totals row, then the totals per county, township and
/// village.
pub fn subsidy_tables(s: &SubsidySheet) -> [Table; 2] {
    let note = format!(
        "计发办法：{}；临时公益岗月标准 {} 元，扶贫特岗月标准 {} 元，应出勤 {} 天；待核实的打卡经核实有效后才计出勤",
        s.rule.method.label(),
        yuan(s.rule.temporary_post_monthly_fen),
        yuan(s.rule.special_post_monthly_fen),
        s.rule.days_required
    );
    let mut rows: Vec<Vec<Cell>> = s
        .people
        .iter()
        .map(|p| {
            vec![
                Cell::Text(p.county_name.clone()),
                Cell::Text(p.township_name.clone()),
                Cell::Text(p.village_name.clone()),
                Cell::Text(p.name.clone().unwrap_or_default()),
                Cell::Text(p.worker_id_number.clone().unwrap_or_default()),
                Cell::Text(p.post.label().to_owned()),
                Cell::Count(p.days_required.into()),
                Cell::Count(p.days_attended.into()),
                Cell::Count(p.days_flagged.into()),
                Cell::Fen(p.monthly_fen),
                Cell::Fen(p.due_fen),
                Cell::Text(
                    if p.no_attendance {
                        "本月无出勤"
                    } else {
                        ""
                    }
                    .to_owned(),
                ),
                Cell::Text(p.village_code.clone()),
                Cell::Text(String::new()),
            ]
        })
        .collect();
    let mut total = vec![
        Cell::Text(format!("{} 合计", s.name)),
        Cell::Text(String::new()),
        Cell::Text(String::new()),
        Cell::Text(format!("{} 人", s.total_people)),
    ];
    total.extend((0..6).map(|_| Cell::Text(String::new())));
    total.push(Cell::Fen(s.total_due_fen));
    rows.push(total);
    let line = |t: &SubsidyTotal| {
        vec![
            Cell::Text(t.level.label().to_owned()),
            Cell::Text(t.code.clone()),
            Cell::Text(t.name.clone()),
            Cell::Count(t.people.into()),
            Cell::Count(t.no_attendance.into()),
            Cell::Fen(t.due_fen),
        ]
    };
    let totals = s
        .counties
        .iter()
        .chain(&s.townships)
        .chain(&s.villages)
        .map(line)
        .collect();
    [
        Table {
            sheet: "发放表".into(),
            title: format!("{} {} 岗位补贴发放表", s.month, s.name),
            note: note.clone(),
            headers: SUBSIDY_HEADERS.map(str::to_owned).to_vec(),
            rows,
        },
        Table {
            sheet: "汇总".into(),
            title: format!("{} {} 岗位补贴汇总", s.month, s.name),
            note,
            headers: [
                "级别",
                "区划代码",
                "名称",
                "人数",
                "无出勤人数",
                "应发金额（元）",
            ]
            .map(str::to_owned)
            .to_vec(),
            rows: totals,
        },
    ]
}
