//! The 考勤表 (a row per person, a column per day of the month, totals) and the 岗位补贴发放表
//! as XLSX or CSV (UTF-8 with BOM). Counts and amounts are numbers (amounts in yuan with two
//! decimals, computed from integer fen); codes and ID numbers are text.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use chrono::{Datelike, NaiveDate};

use super::attendance::{DayMark, Detailed, PersonAttendance};
use super::subsidies::{SubsidySheet, SubsidyTotal};
use crate::error::ApiResult;
use crate::sheets::{display_width, yuan, Cell, Csv, Layout, Xlsx};

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

/// A table: its sheet name, title, note row (legend or rule), headers and rows.
pub struct Table {
    pub sheet: String,
    pub title: String,
    pub note: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Rows at the end that are totals (bold, outside the autofilter).
    pub totals: usize,
}

impl Table {
    /// Each column as wide as its widest text.
    fn widths(&self) -> Vec<usize> {
        (0..self.headers.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| match r.get(i) {
                        Some(Cell::Text(s) | Cell::Code(s)) => display_width(s),
                        _ => 6,
                    })
                    .max()
                    .unwrap_or(4)
                    .min(40)
            })
            .collect()
    }
}

/// Writes the tables as one workbook, a sheet each.
pub fn xlsx(tables: &[Table], sink: &mut dyn Write) -> ApiResult<()> {
    let mut book = Xlsx::new()?;
    for t in tables {
        let widths = t.widths();
        let mut sheet = book.sheet(Layout {
            name: &t.sheet,
            title: &t.title,
            note: Some(&t.note),
            headers: &t.headers,
            widths: &widths,
        })?;
        let body = t.rows.len().saturating_sub(t.totals);
        for (i, row) in t.rows.iter().enumerate() {
            if i < body {
                sheet.row(row)?;
            } else {
                sheet.total(row)?;
            }
        }
        sheet.finish()?;
    }
    book.finish(sink)
}

/// Writes the tables as one CSV: each table's headers and rows, a blank line between them.
pub fn csv(tables: &[Table], sink: &mut dyn Write) -> ApiResult<()> {
    let mut out: Option<Csv<'_>> = None;
    for t in tables {
        match out.as_mut() {
            None => out = Some(Csv::new(sink, &t.headers)?),
            Some(csv) => {
                csv.blank()?;
                csv.headers(&t.headers)?;
            }
        }
        if let Some(csv) = out.as_mut() {
            for row in &t.rows {
                csv.row(row)?;
            }
        }
    }
    out.map_or(Ok(()), Csv::finish)
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
                Cell::Code(p.worker_id_number.clone().unwrap_or_default()),
            ];
            row.extend(
                days.iter()
                    .map(|day| Cell::Text(mark(marks.get(day)).to_owned())),
            );
            row.extend([
                Cell::Number(p.days_present.into()),
                Cell::Number(p.days_flagged.into()),
                Cell::Number(p.days_dismissed.into()),
                Cell::Number(p.days_required.into()),
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
                Cell::Code(p.village_code.clone()),
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
        totals: 0,
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
                Cell::Code(p.worker_id_number.clone().unwrap_or_default()),
                Cell::Text(p.post.label().to_owned()),
                Cell::Number(p.days_required.into()),
                Cell::Number(p.days_attended.into()),
                Cell::Number(p.days_flagged.into()),
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
                Cell::Code(p.village_code.clone()),
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
            Cell::Code(t.code.clone()),
            Cell::Text(t.name.clone()),
            Cell::Number(t.people.into()),
            Cell::Number(t.no_attendance.into()),
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
            totals: 1,
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
            totals: 0,
        },
    ]
}
