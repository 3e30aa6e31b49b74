//! Streamed downloads: a producer on the blocking pool reads the database in batches and sends
//! chunks through a small channel, so an export of the whole city never sits in memory, and a
//! client that goes away stops the producer at its next chunk.

use actix_web::http::header;
use actix_web::HttpResponse;
use bytes::Bytes;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};

use crate::db::{Db, DbConnection};
use crate::error::{ApiError, ApiResult};
use crate::ledger::export::Download;

/// UTF-8 byte order mark: spreadsheet programs read a CSV as UTF-8 only when it starts with it.
pub use crate::sheets::BOM;

/// Chunks in flight between the producer and the socket.
const CHANNEL_DEPTH: usize = 4;

/// Downloads running at once, per process: each holds a database connection while it runs.
const MAX_CONCURRENT: usize = 4;

/// A client that takes no chunk for this long is dropped, freeing its connection.
const STALL: Duration = Duration::from_secs(60);

static RUNNING: Semaphore = Semaphore::const_new(MAX_CONCURRENT);

/// Where a producer writes its chunks; `send` is false once the client has gone or stalled.
pub struct Sink {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    runtime: tokio::runtime::Handle,
}

impl Sink {
    pub fn send(&mut self, chunk: Vec<u8>) -> bool {
        let sent = self
            .runtime
            .block_on(self.tx.send_timeout(Ok(Bytes::from(chunk)), STALL));
        sent.is_ok()
    }
}

/// Writers that know no channel (the ledger's exports) write to the sink as to a file: each
/// write is one chunk, and a client that has gone is a broken pipe.
impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.send(buf.to_vec()) {
            Ok(buf.len())
        } else {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `Content-Disposition` that carries a Chinese file name (RFC 6266 / 5987), with an ASCII
/// fallback for old clients.
/// An import template as a download (`format`: XLSX unless CSV is asked for; JSON is refused),
/// named `{name}.xlsx` (and `{fallback}.xlsx` for clients that cannot read the Chinese name).
pub fn template(
    format: Option<crate::ledger::export::ExportFormat>,
    name: &str,
    fallback: &str,
    make: impl FnOnce(crate::sheets::SheetFormat) -> ApiResult<Vec<u8>>,
) -> ApiResult<HttpResponse> {
    use crate::ledger::export::ExportFormat;
    use crate::sheets::SheetFormat;
    let (sheet, ext) = match format.unwrap_or(ExportFormat::Xlsx) {
        ExportFormat::Json => return Err(crate::error::bad_query("format", "须为 xlsx 或 csv")),
        ExportFormat::Csv => (SheetFormat::Csv, ExportFormat::Csv),
        ExportFormat::Xlsx => (SheetFormat::Xlsx, ExportFormat::Xlsx),
    };
    let bytes = make(sheet)?;
    let (name, fallback) = (
        format!("{name}.{}", ext.extension()),
        format!("{fallback}.{}", ext.extension()),
    );
    Ok(HttpResponse::Ok()
        .content_type(ext.content_type())
        .insert_header((header::CONTENT_DISPOSITION, disposition(&name, &fallback)))
        .body(bytes))
}

pub fn disposition(filename: &str, fallback: &str) -> String {
    let encoded: String = filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// Streams a download a service handed out (a ledger, a roster, an attendance sheet).
pub fn download(db: &Db, download: Download) -> ApiResult<HttpResponse> {
    let write = download.write;
    stream(
        db,
        download.content_type,
        &download.file_name,
        &download.fallback,
        move |conn, sink| write(conn, sink),
    )
}

/// Answers 200 with `content_type` at once and streams what `produce` writes. An error after
/// the first byte can only cut the download short: it is logged, and the body ends early.
/// Refused with 503 while [`MAX_CONCURRENT`] downloads are running.
pub fn stream<F>(
    db: &Db,
    content_type: &'static str,
    filename: &str,
    fallback: &str,
    produce: F,
) -> ApiResult<HttpResponse>
where
    F: FnOnce(&mut DbConnection, &mut Sink) -> ApiResult<()> + Send + 'static,
{
    let permit = RUNNING
        .try_acquire()
        .map_err(|_| ApiError::Unavailable("同时进行的下载过多，请一分钟后再试".into()))?;
    let (tx, mut rx) = mpsc::channel(CHANNEL_DEPTH);
    let db = db.clone();
    let runtime = tokio::runtime::Handle::current();
    actix_web::rt::spawn(async move {
        let _permit = permit;
        let result = db
            .run(move |conn| {
                let mut sink = Sink { tx, runtime };
                produce(conn, &mut sink)
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "export stopped early");
        }
    });
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_DISPOSITION, disposition(filename, fallback)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_file_names_are_percent_encoded() {
        assert_eq!(
            disposition("审计日志.csv", "audit.csv"),
            "attachment; filename=\"audit.csv\"; filename*=UTF-8''%E5%AE%A1%E8%AE%A1%E6%97%A5%E5%BF%97.csv"
        );
    }
}
