//! Check-in benchmarks.
//!
//! ```text
//! cargo bench --bench checkins
//! TAIZHANG_BENCH_CHECKINS=500 TAIZHANG_BENCH_ROWS=1300000 cargo bench --bench checkins
//! TAIZHANG_BENCH_CHECKINS=0 cargo bench --bench checkins      # the lookup only
//! TAIZHANG_BENCH_CHECKINS=0 TAIZHANG_BENCH_ROWS=20000000 TAIZHANG_BENCH_BACKENDS=postgres \
//!     cargo bench --bench checkins                            # a province's two years
//! ```
//!
//! 1. End to end over HTTP on SQLite: each item is a 1600×1200 photo upload followed by the
//!    check-in that names it, 8 clients at once (`TAIZHANG_BENCH_CONCURRENCY`). Baselines in the same run: the photo uploads
//!    alone (other photos of the same size), timed in blocks that alternate with the
//!    end-to-end ones, and bare single-row inserts of the check-in JSON.
//! 2. The photo-reuse lookup with a year of data (1.3 million check-ins over the 919 villages,
//!    on SQLite and PostgreSQL; more rows are two years of more villages at the same density):
//!    the queries the server runs for each check-in (the hashes of the same village or person,
//!    and of the county within a week, compared in memory), beside a primary-key lookup. On
//!    PostgreSQL the table is partitioned by month and the bench prints the plans.

// Tests and benches fail by panicking: `unwrap` and `expect` are their assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use taizhang_testkit::pg;

use std::time::Instant;

use chrono::{Duration, FixedOffset, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use taizhang::config::Settings;
use taizhang::db::schema::checkins;
use taizhang::db::{DatabaseUrl, DbConnection};
use taizhang::domain::Month;
use taizhang::photos::phash::distance;
use taizhang::secrets::SecretSource;
use taizhang::simulate::photos::{jpeg, with_exif, ExifSpec, Scene};
use taizhang::startup::Application;

diesel::table! {
    bench_raw (id) {
        id -> Text,
        body -> Text,
    }
}

/// Clients at once in the end-to-end round (`TAIZHANG_BENCH_CONCURRENCY`, else 8).
const CONCURRENCY: usize = 8;
/// The end-to-end round and its baseline take turns in this many blocks each.
const BLOCKS: usize = 4;
const CENTRE: (f64, f64) = (45.736537, 122.566161);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn photo(seed: u64, taken: chrono::DateTime<Utc>) -> Vec<u8> {
    let stamp = taken
        .with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset"))
        .format("%Y:%m:%d %H:%M:%S")
        .to_string();
    let spec = ExifSpec {
        taken_at: &stamp,
        offset: "+08:00",
        lat: CENTRE.0,
        lon: CENTRE.1,
        orientation: 1,
    };
    with_exif(&jpeg(&Scene::new(seed).render(1600, 1200, 0.0), 85), &spec)
}

async fn status_after_body(request: reqwest::RequestBuilder) -> u16 {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    }
}

async fn end_to_end(n: usize) -> anyhow::Result<()> {
    let concurrency = env("TAIZHANG_BENCH_CONCURRENCY", CONCURRENCY);
    let dir = tempfile::tempdir()?;
    let mut settings = Settings::new(dir.path());
    settings.bind = "127.0.0.1:0".into();
    settings.secret = SecretSource::Value("cd".repeat(32));
    settings.demo = true;
    settings.workers = Some(2);
    settings.db_pool_size = 8;
    let database = settings.database.clone();
    let app = Application::build(settings).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    // Idle connections are dropped before the server's 5-second keep-alive would close them under us.
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .build()?;
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(
            &json!({"phone": "13900000006", "password": "demo-leader-0006", "device_id": "bench"}),
        )
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // One check-in an hour over the last n hours: no travel or time flags to distract.
    let start = Utc::now() - Duration::hours(n as i64 + 1);
    let render = |offset: u64| -> Vec<(Vec<u8>, chrono::DateTime<Utc>)> {
        (0..n as u64)
            .map(|i| {
                let at = start + Duration::hours(i as i64);
                (photo(offset + i, at), at)
            })
            .collect()
    };
    let baseline_photos = render(1_000_000);
    let photos = render(0);

    let put = |bytes: Vec<u8>| {
        let sha = hex::encode(Sha256::digest(&bytes));
        client
            .put(format!("{base}/api/v1/photos/{sha}"))
            .bearer_auth(&token)
            .header("content-type", "image/jpeg")
            .body(bytes)
    };
    let bodies: Vec<Value> = photos
        .iter()
        .map(|(bytes, at)| {
            json!({
                "submission_id": uuid::Uuid::now_v7().to_string(), "kind": "resident_duty", "village_code": "220802100201",
                "worker_id_number": null, "captured_at": at.with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset")).to_rfc3339(),
                "location": {"lat": CENTRE.0, "lon": CENTRE.1, "accuracy_m": 10.0}, "mock_location": false,
                "photo": hex::encode(Sha256::digest(bytes)), "device": {"device_id": "bench", "app_version": "1.0.0"}
            })
        })
        .collect();

    // The two are timed in alternating blocks (uploads alone, then photo + check-in, then the
    // other way round), so that the machine's drift and the growing database weigh on both.
    let block = n.div_ceil(BLOCKS);
    let mut baseline_photos = baseline_photos.into_iter();
    let mut items = photos.into_iter().zip(bodies.iter());
    let (mut upload_secs, mut e2e_secs) = (0.0, 0.0);
    for b in 0..BLOCKS {
        for phase in [b % 2, 1 - b % 2] {
            let started = Instant::now();
            if phase == 0 {
                let uploads: Vec<u16> =
                    futures_util::stream::iter(baseline_photos.by_ref().take(block))
                        .map(|(bytes, _)| status_after_body(put(bytes)))
                        .buffer_unordered(concurrency)
                        .collect()
                        .await;
                upload_secs += started.elapsed().as_secs_f64();
                anyhow::ensure!(
                    uploads.iter().all(|s| *s == 201),
                    "uploads failed: {:?}",
                    &uploads[..uploads.len().min(5)]
                );
            } else {
                let results: Vec<(u16, u16)> =
                    futures_util::stream::iter(items.by_ref().take(block))
                        .map(|((bytes, _), body)| {
                            let upload = put(bytes);
                            let checkin = client
                                .post(format!("{base}/api/v1/checkins"))
                                .bearer_auth(&token)
                                .json(body);
                            async move {
                                (
                                    status_after_body(upload).await,
                                    status_after_body(checkin).await,
                                )
                            }
                        })
                        .buffer_unordered(concurrency)
                        .collect()
                        .await;
                e2e_secs += started.elapsed().as_secs_f64();
                anyhow::ensure!(
                    results.iter().all(|r| *r == (201, 201)),
                    "check-ins failed: {:?}",
                    &results[..results.len().min(3)]
                );
            }
        }
    }
    let upload_rate = n as f64 / upload_secs;
    let e2e_rate = n as f64 / e2e_secs;
    handle.stop(true).await;

    let mut conn = database.establish()?;
    conn.batch_execute(
        "CREATE TABLE bench_raw (id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL)",
    )?;
    let started = Instant::now();
    for body in &bodies {
        diesel::insert_into(bench_raw::table)
            .values((
                bench_raw::id.eq(uuid::Uuid::now_v7().to_string()),
                bench_raw::body.eq(body.to_string()),
            ))
            .execute(&mut conn)?;
    }
    let insert_rate = n as f64 / started.elapsed().as_secs_f64();
    println!(
        "sqlite end to end, {concurrency} clients: {e2e_rate:.0} photo+check-in/s | photo upload alone {upload_rate:.0}/s (ratio {:.2}) | \
         bare insert {insert_rate:.0}/s (ratio {:.4})",
        e2e_rate / upload_rate,
        e2e_rate / insert_rate
    );
    Ok(())
}

/// Fills `checkins` with `rows` synthetic check-ins (a year over 919 villages) in SQL, without
/// the foreign keys a benchmark table needs no more than it needs the photos.
/// The shape of the generated check-ins: a city's year at 1.3 million rows (919 villages), and
/// beyond that two years of as many villages as the rows fill at the same density — 20 million
/// rows are two years of ~7,000 villages, a province.
struct Shape {
    rows: usize,
    days: usize,
    villages: usize,
    subjects: usize,
    counties: usize,
}

/// Check-ins per village and year in a city's real year (1.3 million over 919 villages).
const PER_VILLAGE_YEAR: usize = 1415;
/// The first day of the generated check-ins.
const FIRST_DAY: (i32, u32, u32) = (2019, 1, 1);

impl Shape {
    fn of(rows: usize) -> Self {
        let years = if rows > 1_300_000 { 2 } else { 1 };
        let villages = (rows / (PER_VILLAGE_YEAR * years)).max(919);
        Self {
            rows,
            days: 365 * years,
            villages,
            // Four people check in per village (3,700 in the city's 919 villages).
            subjects: villages * 4,
            // A county has about 184 villages.
            counties: (villages / 184).max(5),
        }
    }

    fn first_day() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(FIRST_DAY.0, FIRST_DAY.1, FIRST_DAY.2).unwrap_or_default()
    }

    /// The code of village `v`: its county's six digits (county `v % counties`) and six of its
    /// own, so that `county_of` finds the county the rows carry.
    fn village(&self, v: usize) -> String {
        format!("{}{v:06}", 300_000 + v % self.counties)
    }

    /// The i-th person of village `v` (each person checks in in one village).
    fn subject(&self, v: usize, i: usize) -> String {
        format!("user:{}", v + self.villages * (i % 4))
    }

    fn months(&self) -> (Month, Month) {
        let first = Self::first_day();
        let last = first + chrono::Duration::days(self.days as i64 - 1);
        (Month::containing(first), Month::containing(last))
    }
}

fn fill(conn: &mut DbConnection, shape: &Shape) -> anyhow::Result<()> {
    let Shape {
        rows,
        days,
        villages,
        counties,
        ..
    } = *shape;
    // Row n is village v = n % villages on day (n / villages) % days, by one of its four people.
    let (pad, day) = match conn {
        DbConnection::Sqlite(_) => (
            "printf('%06d', n % {villages})",
            "date('2019-01-01', '+' || ((n / {villages}) % {days}) || ' days')",
        ),
        DbConnection::Postgresql(_) => (
            "lpad((n % {villages})::text, 6, '0')",
            "(DATE '2019-01-01' + ((n / {villages}) % {days})::int)",
        ),
    };
    let pad = pad.replace("{villages}", &villages.to_string());
    let day = day
        .replace("{villages}", &villages.to_string())
        .replace("{days}", &days.to_string());
    let county = format!("(300000 + (n % {villages}) % {counties})");
    let select = format!(
        "SELECT 'c' || n, 'u', 'resident_duty', 'user:' || ((n % {villages}) + {villages} * ((n / {villages} / {days}) % 4)), NULL, \
         {county} || {pad}, '2020-07-01 00:00:00', {day}, 45.7, 122.5, 10.0, FALSE, \
         'p' || n, (n * 2654435761) % 9223372036854775807, 'accepted', '', '2020-07-01 00:00:00', \
         {county} || '000000' FROM nums"
    );
    let columns = "id, user_id, kind, subject, worker_id_sealed, village_code, captured_at, attendance_date, lat, lon, \
                   accuracy_m, mock_location, photo_sha256, photo_phash, status, flags, received_at, county_code";
    match conn {
        DbConnection::Sqlite(c) => {
            c.batch_execute("PRAGMA foreign_keys = OFF")?;
            c.batch_execute(&format!(
                "WITH RECURSIVE nums(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM nums WHERE n < {rows} - 1) \
                 INSERT INTO checkins ({columns}) {select}"
            ))?;
        }
        DbConnection::Postgresql(c) => {
            c.batch_execute("ALTER TABLE checkins DROP CONSTRAINT checkins_id_fkey, DROP CONSTRAINT checkins_user_id_fkey, \
                             DROP CONSTRAINT checkins_photo_sha256_fkey, DROP CONSTRAINT checkins_village_code_fkey")?;
            // A bulk load: the key and indexes are taken off and built again after it (sorted
            // builds, not millions of random inserts), from the definitions the migrations made
            // (a partitioned table's index reads `ON ONLY`, which would skip the partitions).
            #[derive(QueryableByName)]
            struct Definition {
                #[diesel(sql_type = diesel::sql_types::Text)]
                sql: String,
            }
            let rebuild: Vec<Definition> = diesel::sql_query(
                "SELECT 'ALTER TABLE checkins ADD CONSTRAINT checkins_pkey ' || pg_get_constraintdef(oid) AS sql \
                 FROM pg_constraint WHERE conname = 'checkins_pkey' AND conrelid = 'checkins'::regclass \
                 UNION ALL SELECT replace(indexdef, ' ON ONLY ', ' ON ') FROM pg_indexes \
                 WHERE tablename = 'checkins' AND indexname <> 'checkins_pkey'",
            )
            .load(c)?;
            c.batch_execute(
                "ALTER TABLE checkins DROP CONSTRAINT checkins_pkey; \
                 DROP INDEX checkins_subject, checkins_village, checkins_county, checkins_photo",
            )?;
            c.batch_execute(&format!(
                "WITH nums AS (SELECT generate_series(0, {rows} - 1)::bigint AS n) \
                 INSERT INTO checkins ({columns}) {select}"
            ))?;
            c.batch_execute("SET maintenance_work_mem = '1GB'")?;
            for definition in &rebuild {
                c.batch_execute(&definition.sql)?;
            }
            // As autovacuum would have done to old partitions: index-only scans need the
            // visibility map.
            c.batch_execute("VACUUM (FREEZE, ANALYZE) checkins")?;
        }
    }
    Ok(())
}

/// The plan and time PostgreSQL gives the reuse check's three queries for one probe.
fn explain(
    conn: &mut DbConnection,
    village: &str,
    subject: &str,
    day: chrono::NaiveDate,
) -> anyhow::Result<()> {
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let DbConnection::Postgresql(pg) = conn else {
        return Ok(());
    };
    use diesel::pg::Pg;
    use diesel::sql_types::{Date, Text};
    use taizhang::checkins::store::{county_of, reuse, COUNTY_REUSE_DAYS};
    use taizhang_testkit::sql_of;
    let window = chrono::Duration::days(COUNTY_REUSE_DAYS);
    let county = county_of(village);
    let (from, to) = (day - window, day + window);
    // The very queries intake runs, rendered by diesel, their binds given in argument order.
    let explain = |sql: String| diesel::sql_query(format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"));
    let plans: [(&str, Vec<Line>); 3] = [
        (
            "village",
            explain(sql_of::<Pg, _>(&reuse::village(village)))
                .bind::<Text, _>(village)
                .load(pg)?,
        ),
        (
            "person",
            explain(sql_of::<Pg, _>(&reuse::person(subject)))
                .bind::<Text, _>(subject)
                .load(pg)?,
        ),
        (
            "county ±7 days",
            explain(sql_of::<Pg, _>(&reuse::county(&county, from, to, subject)))
                .bind::<Text, _>(&county)
                .bind::<Date, _>(from)
                .bind::<Date, _>(to)
                .bind::<Text, _>(subject)
                .load(pg)?,
        ),
    ];
    for (what, plan) in plans {
        println!("postgres plan of the {what} query:");
        for line in plan {
            println!("    {}", line.line);
        }
    }
    Ok(())
}

fn lookup(name: &str, database: DatabaseUrl, rows: usize) -> anyhow::Result<()> {
    let shape = Shape::of(rows);
    let mut conn = database.establish()?;
    taizhang::db::migrations::run_pending(&mut conn)?;
    // On PostgreSQL the months' partitions, as the server would have made them ahead.
    let (first, last) = shape.months();
    taizhang::checkins::partitions::ensure(&mut conn, first, last)?;
    let started = Instant::now();
    fill(&mut conn, &shape)?;
    let filled = started.elapsed();
    let probes = 500;
    let probe = |i: usize| {
        let v = (i * 7) % shape.villages;
        let day = Shape::first_day() + chrono::Duration::days((i * 11 % shape.days) as i64);
        (shape.village(v), shape.subject(v, i), day)
    };
    let started = Instant::now();
    let mut matches = 0usize;
    let mut scanned = 0usize;
    for i in 0..probes {
        let (village, subject, day) = probe(i);
        let hashes =
            taizhang::checkins::store::reuse_candidates(&mut conn, &village, &subject, day)?;
        scanned += hashes.len();
        matches += hashes
            .iter()
            .filter(|h| distance(**h as u64, 0x0123_4567_89ab_cdef) <= 10)
            .count();
    }
    let per_lookup = started.elapsed().as_secs_f64() * 1000.0 / probes as f64;
    let started = Instant::now();
    for i in 0..probes {
        let _: Option<i64> = checkins::table
            .find(format!("c{}", i * 2111 % rows))
            .select(checkins::photo_phash)
            .first(&mut conn)
            .optional()?;
    }
    let per_key = started.elapsed().as_secs_f64() * 1000.0 / probes as f64;
    println!(
        "{name:<8} reuse lookup over {rows} check-ins ({} villages, {} people, {} counties, {} days; filled in {:.1} s): \
         {per_lookup:.3} ms each, {} hashes compared on average ({matches} near matches) | \
         primary-key lookup {per_key:.3} ms (ratio {:.1})",
        shape.villages,
        shape.subjects,
        shape.counties,
        shape.days,
        filled.as_secs_f64(),
        scanned / probes,
        per_lookup / per_key
    );
    let (village, subject, day) = probe(probes / 2);
    explain(&mut conn, &village, &subject, day)
}

fn main() -> anyhow::Result<()> {
    let n = env("TAIZHANG_BENCH_CHECKINS", 300);
    let rows = env("TAIZHANG_BENCH_ROWS", 1_300_000);
    let backends = std::env::var("TAIZHANG_BENCH_BACKENDS").unwrap_or("sqlite,postgres".into());
    if n > 0 {
        actix_web::rt::System::new().block_on(end_to_end(n))?;
    }
    if backends.contains("sqlite") {
        let dir = tempfile::tempdir()?;
        lookup(
            "sqlite",
            DatabaseUrl::Sqlite(dir.path().join("lookup.sqlite3")),
            rows,
        )?;
    }
    if backends.contains("postgres") {
        let url = pg::fresh_database();
        lookup(
            "postgres",
            DatabaseUrl::parse(&url).map_err(anyhow::Error::msg)?,
            rows,
        )?;
    }
    Ok(())
}
