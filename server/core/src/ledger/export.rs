//! Ledger exports in the usual Chinese ledger layout. XLSX: a title row across the table,
//! Chinese headers, the header frozen, widths that fit, a totals row; written in constant-memory
//! mode (rows go to a temporary file as they are written) and then streamed. CSV: UTF-8 with a
//! BOM, streamed batch by batch. Both write to any `std::io::Write` (the HTTP layer adapts its
//! download channel to one), so the ledger knows nothing of HTTP.

use std::io::{Read, Write};

use rust_xlsxwriter::{Format, FormatAlign, FormatBorder, Workbook, Worksheet, XlsxError};

use crate::db::DbConnection;
use crate::error::{ApiError, ApiResult};

/// UTF-8 byte order mark: spreadsheet programs read a CSV as UTF-8 only when it starts with it.
pub use crate::sheets::BOM;

pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
pub const CSV: &str = "text/csv; charset=utf-8";

fn xlsx_error(e: XlsxError) -> ApiError {
    ApiError::internal(anyhow::anyhow!("writing the spreadsheet: {e}"))
}

/// Display width of a cell's text: CJK characters take two columns.
pub fn display_width(text: &str) -> usize {
    text.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum()
}

/// A workbook being written, one sheet at a time.
pub struct Xlsx {
    workbook: Workbook,
    title: Format,
    header: Format,
    cell: Format,
    total: Format,
}

/// A sheet being written: rows after the title and header.
pub struct Sheet<'a> {
    sheet: &'a mut Worksheet,
    row: u32,
    cell: &'a Format,
    total: &'a Format,
}

impl Xlsx {
    pub fn new() -> ApiResult<Self> {
        let mut workbook = Workbook::new();
        workbook
            .set_tempdir(std::env::temp_dir())
            .map_err(xlsx_error)?;
        Ok(Xlsx {
            workbook,
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
            total: Format::new().set_bold().set_border(FormatBorder::Thin),
        })
    }

    /// Starts a sheet: its title across the columns, the headers, the panes frozen below them,
    /// and each column as wide as the widest of its header and `widths` (in characters).
    pub fn sheet(
        &mut self,
        name: &str,
        title: &str,
        headers: &[&str],
        widths: &[usize],
    ) -> ApiResult<Sheet<'_>> {
        let sheet = self
            .workbook
            .add_worksheet_with_constant_memory()
            .map_err(xlsx_error)?;
        sheet.set_name(name).map_err(xlsx_error)?;
        for (i, h) in headers.iter().enumerate() {
            let longest_word = h
                .split(['（', '）', '：'])
                .map(display_width)
                .max()
                .unwrap_or(4);
            // Long headers wrap (the header row is tall), so they widen a column only so far.
            let width = widths
                .get(i)
                .copied()
                .unwrap_or(8)
                .max(longest_word.min(14))
                .clamp(6, 60);
            sheet
                .set_column_width(i as u16, width as f64 + 2.0)
                .map_err(xlsx_error)?;
        }
        let last = headers.len().saturating_sub(1) as u16;
        sheet
            .merge_range(0, 0, 0, last, title, &self.title)
            .map_err(xlsx_error)?;
        sheet.set_row_height(0, 28).map_err(xlsx_error)?;
        sheet.set_row_height(1, 48).map_err(xlsx_error)?;
        for (i, h) in headers.iter().enumerate() {
            sheet
                .write_string_with_format(1, i as u16, *h, &self.header)
                .map_err(xlsx_error)?;
        }
        sheet.set_freeze_panes(2, 0).map_err(xlsx_error)?;
        Ok(Sheet {
            sheet,
            row: 2,
            cell: &self.cell,
            total: &self.total,
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

/// A cell value: text or a number.
pub enum Cell<'a> {
    Text(&'a str),
    Number(i64),
}

impl Sheet<'_> {
    fn write(&mut self, cells: &[Cell<'_>], format_total: bool) -> ApiResult<()> {
        let format = if format_total { self.total } else { self.cell };
        for (i, c) in cells.iter().enumerate() {
            match c {
                Cell::Text(t) => self
                    .sheet
                    .write_string_with_format(self.row, i as u16, *t, format),
                Cell::Number(n) => self
                    .sheet
                    .write_number_with_format(self.row, i as u16, *n as f64, format),
            }
            .map_err(xlsx_error)?;
        }
        self.row += 1;
        Ok(())
    }

    pub fn row(&mut self, cells: &[Cell<'_>]) -> ApiResult<()> {
        self.write(cells, false)
    }

    /// The totals row, in bold.
    pub fn total(&mut self, cells: &[Cell<'_>]) -> ApiResult<()> {
        self.write(cells, true)
    }
}

/// A CSV being streamed: rows are buffered and sent every `flush_rows`.
pub struct Csv<'a> {
    writer: csv::Writer<Vec<u8>>,
    sink: &'a mut dyn Write,
    pending: usize,
    pub gone: bool,
}

impl<'a> Csv<'a> {
    pub fn new(sink: &'a mut dyn Write, headers: &[&str]) -> ApiResult<Self> {
        // Flexible: the totals row is shorter than the others.
        let mut writer = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(BOM.to_vec());
        writer.write_record(headers).map_err(ApiError::internal)?;
        Ok(Csv {
            writer,
            sink,
            pending: 0,
            gone: false,
        })
    }

    pub fn row<I, S>(&mut self, cells: I) -> ApiResult<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.writer
            .write_record(cells)
            .map_err(ApiError::internal)?;
        self.pending += 1;
        if self.pending >= 1000 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> ApiResult<()> {
        let next = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(Vec::new());
        let writer = std::mem::replace(&mut self.writer, next);
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

// The formats of the ledger's answers: JSON pages, or the whole ledger as a file. (No doc
// comment: it would become the schema's description.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    #[default]
    Json,
    /// UTF-8 with BOM, Chinese headers, a totals row; streamed.
    Csv,
    /// The usual ledger layout: title row, Chinese headers (frozen), totals row.
    Xlsx,
}

impl ExportFormat {
    /// The file name's extension (`json` is never a file).
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Json => "json",
            ExportFormat::Csv => "csv",
            ExportFormat::Xlsx => "xlsx",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Json => "application/json",
            ExportFormat::Csv => CSV,
            ExportFormat::Xlsx => XLSX,
        }
    }
}

/// What writes a download: run on a database connection of its own, writing to the client.
pub type Writer = Box<dyn FnOnce(&mut DbConnection, &mut dyn Write) -> ApiResult<()> + Send>;

/// A file the ledger hands out: its type and names, and what writes it. The HTTP layer streams
/// it (`http::export::stream`).
pub struct Download {
    pub content_type: &'static str,
    /// The Chinese file name.
    pub file_name: String,
    /// An ASCII name for clients that cannot read the Chinese one.
    pub fallback: String,
    pub write: Writer,
}
