//! The ledger's downloads: the formats it answers in and the file it hands the HTTP layer.
//! The spreadsheets themselves are written by [`crate::sheets`].

use std::io::Write;

use crate::db::DbConnection;
use crate::error::ApiResult;
pub use crate::sheets::{CSV, XLSX};

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
