//! The test kit's server and client helpers, and the macros that declare a test once per
//! database and photo store.

pub use taizhang_testkit::app::*;

/// Declares each listed test twice: once on SQLite, once on PostgreSQL.
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )+
        }
    };
}
pub(crate) use both_backends;

/// Declares each listed test four times: SQLite and PostgreSQL, each with photos on disk and
/// in S3-compatible storage.
macro_rules! every_backend_and_store {
    ($($name:ident),+ $(,)?) => {
        mod sqlite_disk {
            $( #[actix_web::test] async fn $name() { super::$name($crate::helpers::Backend::Sqlite, $crate::helpers::Store::Disk).await } )+
        }
        mod postgres_disk {
            $( #[actix_web::test] async fn $name() { super::$name($crate::helpers::Backend::Postgres, $crate::helpers::Store::Disk).await } )+
        }
        mod sqlite_s3 {
            $( #[actix_web::test] async fn $name() { super::$name($crate::helpers::Backend::Sqlite, $crate::helpers::Store::S3).await } )+
        }
        mod postgres_s3 {
            $( #[actix_web::test] async fn $name() { super::$name($crate::helpers::Backend::Postgres, $crate::helpers::Store::S3).await } )+
        }
    };
}
pub(crate) use every_backend_and_store;

/// An XLSX as a spreadsheet program reads it (openpyxl): per sheet, its first `rows` rows
/// (numbers stay numbers), its autofilter, frozen panes and print setup.
pub fn openpyxl_book(bytes: &[u8], rows: usize) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("sheet.xlsx");
    std::fs::write(&path, bytes).expect("write");
    const SCRIPT: &str = r#"
import json, sys, openpyxl
wb = openpyxl.load_workbook(sys.argv[1])
limit = int(sys.argv[2])
def sheet(ws):
    rows = [list(r) for r in ws.iter_rows(max_row=limit, values_only=True)]
    setup, props = ws.page_setup, ws.sheet_properties.pageSetUpPr
    return {
        "rows": [r for r in rows if any(c is not None for c in r)],
        "autofilter": ws.auto_filter.ref, "freeze": ws.freeze_panes,
        "orientation": setup.orientation, "paper": setup.paperSize,
        "fit_width": setup.fitToWidth, "fit_height": setup.fitToHeight,
        "fit_to_page": bool(props is not None and props.fitToPage),
        "title_rows": ws.print_title_rows,
    }
print(json.dumps({ws.title: sheet(ws) for ws in wb.worksheets}, ensure_ascii=False, default=str))
"#;
    let script = SCRIPT;
    let rows = rows.to_string();
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .arg(&rows)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "openpyxl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// A village's households counted (surveys pending included) in its ledger node for `month`,
/// as `token` reads it.
pub async fn village_households(app: &TestApp, token: &str, village: &str, month: &str) -> i64 {
    let path = format!("/api/v1/inventory?level=village&code={village}&month={month}");
    let inventory: serde_json::Value = app.get_as(token, &path).await.json().await.expect("json");
    inventory["node"]["figures"]
        .as_array()
        .expect("figures")
        .iter()
        .find(|row| row["key"] == "households")
        .map_or(0, |row| row["including_pending"].as_i64().expect("count"))
}
