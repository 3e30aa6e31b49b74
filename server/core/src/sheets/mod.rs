//! Spreadsheets: those uploaded by staff (CSV or XLSX), read into rows of text cells within
//! bounds, and those handed out ([`write`]).
//!
//! An XLSX file is a zip archive, and a few kilobytes of deflate can expand to gigabytes, so the
//! archive is inflated once into a sink, counting, before the reader sees it: more than
//! [`MAX_INFLATED`] bytes in all, or an entry that inflates past its declared size, is refused.
//! The reader then inflates the same bytes and gets the same output, so its memory is bounded too.

use std::io::{Cursor, Read};

use crate::domain::Rule;
use crate::error::{ApiError, ApiResult};

mod write;
pub use write::{
    display_width, one_table, yuan, Cell, Csv, Layout, RowSink, Sheet, Template, Xlsx, CSV, XLSX,
};

/// Largest total size of an XLSX archive's entries once inflated.
pub const MAX_INFLATED: u64 = 64 * 1024 * 1024;
/// Most entries an XLSX archive may hold (a workbook has a dozen or so).
pub const MAX_ENTRIES: usize = 1000;

/// The sheet's format, from the request's Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SheetFormat {
    Csv,
    Xlsx,
}

/// A sheet as read: each row's sheet number (1-based) and its cells as text.
pub type Rows = Vec<(usize, Vec<String>)>;

/// UTF-8's byte-order mark, which Excel writes (and needs) at the head of a CSV file.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

fn unreadable(what: String) -> ApiError {
    ApiError::field("body", Rule::Invalid, what)
}

/// Reads the first worksheet (or the CSV) into at most `max_rows` rows; the caller refuses a
/// sheet that fills them all.
pub fn read(bytes: &[u8], format: SheetFormat, max_rows: usize) -> ApiResult<Rows> {
    match format {
        SheetFormat::Csv => {
            let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(bytes);
            let mut out = Vec::new();
            for (i, record) in reader.records().enumerate() {
                let record = record.map_err(|e| unreadable(format!("CSV 无法读取：{e}")))?;
                out.push((i + 1, record.iter().map(unquoted).collect()));
                if out.len() >= max_rows {
                    break;
                }
            }
            Ok(out)
        }
        SheetFormat::Xlsx => {
            use calamine::Reader;
            check_archive(bytes)?;
            let mut book: calamine::Xlsx<_> = calamine::Xlsx::new(Cursor::new(bytes))
                .map_err(|e| unreadable(format!("XLSX 无法读取：{e}")))?;
            let range = book
                .worksheet_range_at(0)
                .ok_or_else(|| unreadable("XLSX 没有工作表".into()))?
                .map_err(|e| unreadable(format!("XLSX 无法读取：{e}")))?;
            let first = range.start().map(|(r, _)| r as usize).unwrap_or(0);
            Ok(range
                .rows()
                .take(max_rows)
                .enumerate()
                .map(|(i, cells)| {
                    let cells = cells.iter().map(|c| c.to_string()).collect();
                    (first + i + 1, cells)
                })
                .collect())
        }
    }
}

/// A CSV field as typed: a code written as `="…"` (as the exports write them, see [`write`])
/// is read as the code itself.
fn unquoted(field: &str) -> String {
    field
        .strip_prefix("=\"")
        .and_then(|f| f.strip_suffix('"'))
        .filter(|inner| !inner.contains('"'))
        .unwrap_or(field)
        .to_owned()
}

/// Inflates every entry into a sink, refusing an archive that expands past the bounds.
fn check_archive(bytes: &[u8]) -> ApiResult<()> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| unreadable(format!("XLSX 无法读取：{e}")))?;
    if archive.len() > MAX_ENTRIES {
        return Err(ApiError::field(
            "body",
            Rule::TooMany,
            format!(
                "XLSX 文件内含 {} 个部件，超过 {MAX_ENTRIES} 个",
                archive.len()
            ),
        ));
    }
    let bomb = || {
        ApiError::field(
            "body",
            Rule::ImplausibleCompression,
            format!(
                "XLSX 文件解压后超过 {} MiB，或部件解压后大于其声明的大小",
                MAX_INFLATED / 1024 / 1024
            ),
        )
    };
    let mut total = 0u64;
    for i in 0..archive.len() {
        let entry = archive
            .by_index(i)
            .map_err(|e| unreadable(format!("XLSX 无法读取：{e}")))?;
        let declared = entry.size();
        if declared > MAX_INFLATED - total {
            return Err(bomb());
        }
        // One byte past the declared size is enough to catch a header that lies.
        let n = std::io::copy(&mut entry.take(declared + 1), &mut std::io::sink())
            .map_err(|e| unreadable(format!("XLSX 无法读取：{e}")))?;
        if n > declared {
            return Err(bomb());
        }
        total += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            out.start_file(*name, options).unwrap();
            out.write_all(data).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    #[test]
    fn an_archive_that_inflates_past_the_bound_is_refused() {
        // 65 MiB of zeros deflate to about 64 KB.
        let zeros = vec![0u8; (MAX_INFLATED + 1024 * 1024) as usize];
        let bytes = archive(&[("xl/worksheets/sheet1.xml", &zeros)]);
        assert!(bytes.len() < 1024 * 1024, "{} bytes", bytes.len());
        let err = read(&bytes, SheetFormat::Xlsx, 10).unwrap_err();
        assert!(
            format!("{err:?}").contains("ImplausibleCompression"),
            "{err:?}"
        );
    }

    #[test]
    fn an_entry_that_lies_about_its_size_is_refused() {
        let data = vec![b'a'; 100_000];
        let mut bytes = archive(&[("a.xml", &data)]);
        // Rewrite the declared uncompressed size (local header at 22, central directory at 24
        // past its signature) to 10 bytes.
        let lie = 10u32.to_le_bytes();
        bytes[22..26].copy_from_slice(&lie);
        let central = bytes
            .windows(4)
            .rposition(|w| w == b"PK\x01\x02")
            .expect("central directory");
        bytes[central + 24..central + 28].copy_from_slice(&lie);
        assert!(read(&bytes, SheetFormat::Xlsx, 10).is_err());
        assert!(check_archive(&bytes).is_err());
    }

    #[test]
    fn codes_written_for_spreadsheets_read_back_bare() {
        let csv = "村代码,姓名\n=\"220802100201\",张三\n=\"a\"b\",李四\n";
        let rows = read(csv.as_bytes(), SheetFormat::Csv, 10).unwrap();
        assert_eq!(rows[1].1, ["220802100201", "张三"]);
        assert_eq!(rows[2].1, ["=\"a\"b\"", "李四"]);
    }

    #[test]
    fn an_ordinary_archive_passes_the_check() {
        let bytes = archive(&[("a.xml", b"<a/>"), ("b.xml", &[b'x'; 5000])]);
        check_archive(&bytes).unwrap();
    }

    #[test]
    fn too_many_entries_are_refused() {
        let names: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("{i}.xml")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        let err = check_archive(&archive(&entries)).unwrap_err();
        assert!(format!("{err:?}").contains("TooMany"), "{err:?}");
    }
}
