//! Spreadsheets handed out (XLSX and CSV) in the usual Chinese ledger layout: a title row across
//! the table, an optional note row (a legend or the rule applied), Chinese headers with an
//! autofilter, the panes frozen below them, widths that fit, a totals row in bold, and a print
//! setup (A4 landscape, one page wide, title and headers repeated on every page, page numbers).
//!
//! Cells are typed, so that both formats keep what they hold: counts and amounts are numbers
//! (Excel can sum them), codes and ID numbers are text. XLSX says so in the file; CSV cannot, and
//! Excel and WPS read a 12- or 18-digit field as a number (`2.20802E+11`), so a code made only
//! of digits is written as the formula `="220802100201"`, which both show as the text itself.
//! [`super::read`] reads that form back as the bare code.
//!
//! XLSX is written in constant-memory mode (rows go to a temporary file as they are written),
//! then streamed; CSV is UTF-8 with a BOM, streamed batch by batch. Both write to any
//! `std::io::Write`, so the capabilities that use them know nothing of HTTP.

use std::borrow::Cow;
use std::io::{Read, Write};

use rust_xlsxwriter::{Format, FormatAlign, FormatBorder, Workbook, Worksheet, XlsxError};

use super::BOM;
use crate::error::{ApiError, ApiResult};

pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
pub const CSV: &str = "text/csv; charset=utf-8";

/// A cell's value, typed so that each format keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Text(String),
    /// A code or an ID number: text that a spreadsheet must not read as a number.
    Code(String),
    Number(i64),
    /// An amount in fen, shown as yuan with two decimals.
    Fen(i64),
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    pub fn code(s: impl Into<String>) -> Cell {
        Cell::Code(s.into())
    }

    pub fn empty() -> Cell {
        Cell::Text(String::new())
    }

    /// The cell as a CSV field.
    pub fn csv(&self) -> Cow<'_, str> {
        match self {
            Cell::Text(t) => Cow::Borrowed(t),
            Cell::Code(c) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) => {
                Cow::Owned(format!("=\"{c}\""))
            }
            Cell::Code(c) => Cow::Borrowed(c),
            Cell::Number(n) => Cow::Owned(n.to_string()),
            Cell::Fen(f) => Cow::Owned(yuan(*f)),
        }
    }
}

/// An amount in fen as yuan with two decimals (`26666` → `266.66`).
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.abs() / 100, fen.abs() % 100)
}

fn xlsx_error(e: XlsxError) -> ApiError {
    ApiError::internal(anyhow::anyhow!("writing the spreadsheet: {e}"))
}

/// Display width of a cell's text: CJK characters take two columns.
pub fn display_width(text: &str) -> usize {
    text.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum()
}

struct Formats {
    title: Format,
    note: Format,
    header: Format,
    cell: Format,
    money: Format,
    total: Format,
    total_money: Format,
}

/// A workbook being written, one sheet at a time.
pub struct Xlsx {
    workbook: Workbook,
    formats: Formats,
}

/// What a sheet shows above its rows.
pub struct Layout<'a, S: AsRef<str>> {
    /// The tab's name (at most 31 characters).
    pub name: &'a str,
    pub title: &'a str,
    /// A row under the title: a legend or the rule applied.
    pub note: Option<&'a str>,
    pub headers: &'a [S],
    /// Each column's width in characters (the header's longest word widens it).
    pub widths: &'a [usize],
}

/// A sheet being written: rows after the title, the note and the headers.
pub struct Sheet<'a> {
    sheet: &'a mut Worksheet,
    formats: &'a Formats,
    header_row: u32,
    row: u32,
    last_col: u16,
    /// The last row the autofilter covers: the data, not the totals.
    data_end: u32,
}

impl Xlsx {
    pub fn new() -> ApiResult<Self> {
        let mut workbook = Workbook::new();
        workbook
            .set_tempdir(std::env::temp_dir())
            .map_err(xlsx_error)?;
        let cell = Format::new().set_border(FormatBorder::Thin);
        let total = cell.clone().set_bold();
        Ok(Xlsx {
            workbook,
            formats: Formats {
                title: Format::new()
                    .set_bold()
                    .set_font_size(16)
                    .set_align(FormatAlign::Center),
                note: Format::new().set_italic().set_text_wrap(),
                header: Format::new()
                    .set_bold()
                    .set_text_wrap()
                    .set_align(FormatAlign::Center)
                    .set_align(FormatAlign::VerticalCenter)
                    .set_border(FormatBorder::Thin)
                    .set_background_color(0xDDEBF7),
                money: cell.clone().set_num_format("0.00"),
                total_money: total.clone().set_num_format("0.00"),
                cell,
                total,
            },
        })
    }

    /// Starts a sheet with its title, note and headers, the autofilter's header row, the
    /// frozen panes and the print setup.
    pub fn sheet<S: AsRef<str>>(&mut self, layout: Layout<'_, S>) -> ApiResult<Sheet<'_>> {
        let f = &self.formats;
        let sheet = self
            .workbook
            .add_worksheet_with_constant_memory()
            .map_err(xlsx_error)?;
        sheet.set_name(layout.name).map_err(xlsx_error)?;
        let headers = layout.headers;
        for (i, h) in headers.iter().enumerate() {
            let longest_word = h
                .as_ref()
                .split(['（', '）', '：'])
                .map(display_width)
                .max()
                .unwrap_or(4);
            // Long headers wrap (the header row is tall), so they widen a column only so far;
            // two more for the autofilter's button.
            let width = layout
                .widths
                .get(i)
                .copied()
                .unwrap_or(8)
                .max(longest_word.min(14))
                .clamp(4, 60);
            sheet
                .set_column_width(i as u16, width as f64 + 3.0)
                .map_err(xlsx_error)?;
        }
        let last_col = headers.len().saturating_sub(1) as u16;
        sheet
            .merge_range(0, 0, 0, last_col, layout.title, &f.title)
            .map_err(xlsx_error)?;
        sheet.set_row_height(0, 28).map_err(xlsx_error)?;
        let mut header_row = 1;
        if let Some(note) = layout.note {
            sheet
                .merge_range(1, 0, 1, last_col, note, &f.note)
                .map_err(xlsx_error)?;
            header_row = 2;
        }
        sheet.set_row_height(header_row, 48).map_err(xlsx_error)?;
        for (i, h) in headers.iter().enumerate() {
            sheet
                .write_string_with_format(header_row, i as u16, h.as_ref(), &f.header)
                .map_err(xlsx_error)?;
        }
        sheet
            .set_freeze_panes(header_row + 1, 0)
            .map_err(xlsx_error)?;
        sheet
            .set_landscape()
            .set_paper_size(9) // A4
            .set_print_fit_to_pages(1, 0)
            .set_footer("&C第 &P 页，共 &N 页");
        sheet.set_repeat_rows(0, header_row).map_err(xlsx_error)?;
        Ok(Sheet {
            sheet,
            formats: f,
            header_row,
            row: header_row + 1,
            last_col,
            data_end: header_row,
        })
    }

    /// Writes the workbook to a temporary file and streams it; a reader that has gone ends it.
    pub fn finish(mut self, sink: &mut dyn Write) -> ApiResult<()> {
        let file = tempfile::NamedTempFile::new().map_err(ApiError::internal)?;
        self.workbook.save(file.path()).map_err(xlsx_error)?;
        let mut reader = std::fs::File::open(file.path()).map_err(ApiError::internal)?;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buffer).map_err(ApiError::internal)?;
            if n == 0 || sink.write_all(&buffer[..n]).is_err() {
                return Ok(());
            }
        }
    }
}

impl Sheet<'_> {
    fn write(&mut self, cells: &[Cell], total: bool) -> ApiResult<()> {
        let f = self.formats;
        let (plain, money) = if total {
            (&f.total, &f.total_money)
        } else {
            (&f.cell, &f.money)
        };
        for (i, c) in cells.iter().enumerate() {
            let (row, col) = (self.row, i as u16);
            match c {
                Cell::Text(t) | Cell::Code(t) => {
                    self.sheet.write_string_with_format(row, col, t, plain)
                }
                Cell::Number(n) => self
                    .sheet
                    .write_number_with_format(row, col, *n as f64, plain),
                Cell::Fen(n) => {
                    self.sheet
                        .write_number_with_format(row, col, *n as f64 / 100.0, money)
                }
            }
            .map_err(xlsx_error)?;
        }
        self.row += 1;
        Ok(())
    }

    pub fn row(&mut self, cells: &[Cell]) -> ApiResult<()> {
        self.write(cells, false)?;
        self.data_end = self.row - 1;
        Ok(())
    }

    /// A totals row, in bold, outside the autofilter.
    pub fn total(&mut self, cells: &[Cell]) -> ApiResult<()> {
        self.write(cells, true)
    }

    /// Ends the sheet: the autofilter over the headers and the data rows.
    pub fn finish(self) -> ApiResult<()> {
        self.sheet
            .autofilter(self.header_row, 0, self.data_end, self.last_col)
            .map_err(xlsx_error)?;
        Ok(())
    }
}

/// A CSV being streamed: rows are buffered and sent every thousand.
pub struct Csv<'a> {
    writer: csv::Writer<Vec<u8>>,
    sink: &'a mut dyn Write,
    pending: usize,
    /// The client has gone: the caller may stop producing rows.
    pub gone: bool,
}

fn csv_writer(head: Vec<u8>) -> csv::Writer<Vec<u8>> {
    // Flexible: a totals row is shorter than the others.
    csv::WriterBuilder::new().flexible(true).from_writer(head)
}

impl<'a> Csv<'a> {
    pub fn new<S: AsRef<str>>(sink: &'a mut dyn Write, headers: &[S]) -> ApiResult<Self> {
        let mut csv = Csv {
            writer: csv_writer(BOM.to_vec()),
            sink,
            pending: 0,
            gone: false,
        };
        csv.headers(headers)?;
        Ok(csv)
    }

    /// A header line (a CSV holding several tables has one per table).
    pub fn headers<S: AsRef<str>>(&mut self, headers: &[S]) -> ApiResult<()> {
        self.record(headers.iter().map(|h| h.as_ref()))
    }

    /// An empty line between two tables.
    pub fn blank(&mut self) -> ApiResult<()> {
        self.record([""])
    }

    pub fn row(&mut self, cells: &[Cell]) -> ApiResult<()> {
        let fields: Vec<Cow<'_, str>> = cells.iter().map(Cell::csv).collect();
        self.record(fields.iter().map(|f| f.as_bytes()))
    }

    fn record<I, S>(&mut self, fields: I) -> ApiResult<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.writer
            .write_record(fields)
            .map_err(ApiError::internal)?;
        self.pending += 1;
        if self.pending >= 1000 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> ApiResult<()> {
        let writer = std::mem::replace(&mut self.writer, csv_writer(Vec::new()));
        let chunk = writer
            .into_inner()
            .map_err(|e| ApiError::internal(e.into_error()))?;
        self.pending = 0;
        if !chunk.is_empty() && self.sink.write_all(&chunk).is_err() {
            self.gone = true;
        }
        Ok(())
    }

    pub fn finish(mut self) -> ApiResult<()> {
        self.flush()
    }
}

/// Where a one-table download's rows go: a CSV or an XLSX sheet.
pub trait RowSink {
    fn row(&mut self, cells: &[Cell]) -> ApiResult<()>;
    /// A totals row (bold in XLSX, a plain line in CSV).
    fn total(&mut self, cells: &[Cell]) -> ApiResult<()>;
    /// The client has gone: stop producing rows.
    fn gone(&self) -> bool;
}

impl RowSink for Csv<'_> {
    fn row(&mut self, cells: &[Cell]) -> ApiResult<()> {
        Csv::row(self, cells)
    }
    fn total(&mut self, cells: &[Cell]) -> ApiResult<()> {
        Csv::row(self, cells)
    }
    fn gone(&self) -> bool {
        self.gone
    }
}

impl RowSink for Sheet<'_> {
    fn row(&mut self, cells: &[Cell]) -> ApiResult<()> {
        Sheet::row(self, cells)
    }
    fn total(&mut self, cells: &[Cell]) -> ApiResult<()> {
        Sheet::total(self, cells)
    }
    fn gone(&self) -> bool {
        false
    }
}

/// Writes one table as CSV (headers, rows) or as an XLSX workbook of one sheet (`layout`);
/// `fill` writes the rows.
pub fn one_table<S: AsRef<str>>(
    csv: bool,
    sink: &mut dyn Write,
    layout: Layout<'_, S>,
    fill: impl FnOnce(&mut dyn RowSink) -> ApiResult<()>,
) -> ApiResult<()> {
    if csv {
        let mut out = Csv::new(sink, layout.headers)?;
        fill(&mut out)?;
        return out.finish();
    }
    let mut book = Xlsx::new()?;
    {
        let mut sheet = book.sheet(layout)?;
        fill(&mut sheet)?;
        sheet.finish()?;
    }
    book.finish(sink)
}

/// An import's template: the headers in bold over one example row, every column text (codes
/// and ID numbers must not become numbers in a spreadsheet); in the XLSX, optionally a second
/// sheet saying what each column takes.
pub struct Template<'a> {
    /// The first sheet's name.
    pub sheet: &'a str,
    pub headers: &'a [&'a str],
    pub example: &'a [&'a str],
    /// Column width, in characters.
    pub width: f64,
    /// One note per header, and a closing remark, for the instructions sheet (填写说明).
    pub notes: Option<(&'a [&'a str], &'a str)>,
}

impl Template<'_> {
    /// CSV (UTF-8 with BOM) or XLSX.
    pub fn write(&self, format: super::SheetFormat) -> ApiResult<Vec<u8>> {
        match format {
            super::SheetFormat::Csv => {
                let mut writer = csv::Writer::from_writer(BOM.to_vec());
                writer
                    .write_record(self.headers)
                    .map_err(ApiError::internal)?;
                writer
                    .write_record(self.example)
                    .map_err(ApiError::internal)?;
                writer
                    .into_inner()
                    .map_err(|e| ApiError::internal(e.into_error()))
            }
            super::SheetFormat::Xlsx => self.xlsx().map_err(xlsx_error),
        }
    }

    fn xlsx(&self) -> Result<Vec<u8>, XlsxError> {
        let mut book = Workbook::new();
        let bold = Format::new().set_bold();
        let text = Format::new().set_num_format("@");
        let sheet = book.add_worksheet();
        sheet.set_name(self.sheet)?;
        for (c, h) in self.headers.iter().enumerate() {
            let c = c as u16;
            sheet.set_column_width(c, self.width)?;
            sheet.set_column_format(c, &text)?;
            sheet.write_string_with_format(0, c, *h, &bold)?;
            let example = self.example.get(usize::from(c)).copied().unwrap_or("");
            sheet.write_string_with_format(1, c, example, &text)?;
        }
        if let Some((notes, remark)) = self.notes {
            let sheet = book.add_worksheet();
            sheet.set_name("填写说明")?;
            sheet.set_column_width(0, 20)?;
            sheet.set_column_width(1, 70)?;
            sheet.write_string_with_format(0, 0, "列", &bold)?;
            sheet.write_string_with_format(0, 1, "说明", &bold)?;
            for (i, (h, note)) in self.headers.iter().zip(notes).enumerate() {
                let r = i as u32 + 1;
                sheet.write_string(r, 0, *h)?;
                sheet.write_string(r, 1, *note)?;
            }
            sheet.write_string(notes.len() as u32 + 2, 0, remark)?;
        }
        book.save_to_buffer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_digits_stay_text_in_csv() {
        assert_eq!(Cell::code("220802100201").csv(), "=\"220802100201\"");
        assert_eq!(Cell::code("2208**********123X").csv(), "2208**********123X");
        assert_eq!(Cell::code("").csv(), "");
        assert_eq!(Cell::Number(1200).csv(), "1200");
        assert_eq!(Cell::text("平安村").csv(), "平安村");
    }

    #[test]
    fn fen_read_as_yuan() {
        assert_eq!(yuan(80_000), "800.00");
        assert_eq!(yuan(26_666), "266.66");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(yuan(-150), "-1.50");
        assert_eq!(Cell::Fen(26_666).csv(), "266.66");
    }
}
