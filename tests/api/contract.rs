//! Guards on what is generated or kept in step: the OpenAPI document, the two migration
//! folders, the schema against both databases, and the fixtures against their builder.

use std::collections::BTreeSet;
use std::path::Path;

use diesel::prelude::*;
use taizhang::db::schema::*;
use taizhang::db::{migrations, DbConnection};

use crate::helpers::{Backend, TestDatabase};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_committed_openapi_document_is_what_the_code_generates() {
    let generated = taizhang::openapi::to_json(&taizhang::openapi::document());
    let path = Path::new(ROOT).join("mobile-api-spec/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write the document");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "mobile-api-spec/openapi.json is out of date: run `cargo run -- openapi > mobile-api-spec/openapi.json` \
         (or the tests with UPDATE_OPENAPI=1) and commit the result"
    );
}

#[test]
fn every_operation_documents_its_errors() {
    let doc: serde_json::Value =
        serde_json::from_str(&taizhang::openapi::to_json(&taizhang::openapi::document()))
            .expect("json");
    let codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("error codes");
    assert_eq!(codes.len(), taizhang::error::ErrorCode::ALL.len());
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                op["operationId"].is_string(),
                "{method} {path} has an operationId"
            );
            if op.get("security").is_some() {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path} documents 401"
                );
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} documents {status}"
                    );
                }
            }
            if path.starts_with("/api/") {
                assert!(
                    responses.contains_key("500") && responses.contains_key("503"),
                    "{method} {path}"
                );
            }
            // Each problem answer lists its codes, and each code belongs to that status.
            for (status, response) in responses {
                if response["content"]
                    .get("application/problem+json")
                    .is_none()
                {
                    continue;
                }
                let listed = response["x-problem-codes"]
                    .as_array()
                    .expect("x-problem-codes");
                assert!(
                    !listed.is_empty(),
                    "{method} {path} {status} lists its codes"
                );
                for code in listed {
                    let code = taizhang::error::ErrorCode::ALL
                        .iter()
                        .find(|c| c.as_str() == code)
                        .unwrap_or_else(|| panic!("{method} {path} {status}: unknown code {code}"));
                    assert_eq!(
                        code.status().as_str(),
                        status,
                        "{method} {path}: `{}` is listed under {status}",
                        code.as_str()
                    );
                }
            }
        }
    }
}

fn steps(backend: &str) -> BTreeSet<String> {
    std::fs::read_dir(Path::new(ROOT).join("migrations").join(backend))
        .expect("migrations folder")
        .map(|e| {
            let e = e.expect("entry");
            for file in ["up.sql", "down.sql"] {
                assert!(
                    e.path().join(file).exists(),
                    "{} lacks {file}",
                    e.path().display()
                );
            }
            e.file_name().to_string_lossy().into_owned()
        })
        .collect()
}

#[test]
fn both_migration_folders_hold_the_same_steps() {
    assert_eq!(steps("sqlite"), steps("postgres"));
    let (sqlite, postgres) = migrations::names();
    assert_eq!(sqlite, postgres, "the embedded migrations match");
    assert_eq!(sqlite.len(), steps("sqlite").len());
}

/// Selects every column of every table, loading rows into the schema's Rust types: a column
/// missing, misnamed or of another type on either backend fails here.
fn load_every_table(conn: &mut DbConnection) {
    type Timestamp = chrono::NaiveDateTime;
    app_settings::table
        .select(app_settings::all_columns)
        .load::<(String, String)>(conn)
        .expect("app_settings");
    divisions::table
        .select(divisions::all_columns)
        .load::<(String, String, String, Option<String>, Option<String>)>(conn)
        .expect("divisions");
    villages::table
        .select(villages::all_columns)
        .limit(5)
        .load::<(
            String,
            String,
            String,
            String,
            f64,
            f64,
            String,
            String,
            Option<f64>,
            String,
            i64,
            String,
        )>(conn)
        .expect("villages");
    users::table
        .select(users::all_columns)
        .load::<(
            String,
            String,
            String,
            String,
            Option<String>,
            String,
            bool,
            Timestamp,
            bool,
            Option<Timestamp>,
            Option<Timestamp>,
            Option<Timestamp>,
        )>(conn)
        .expect("users");
    user_villages::table
        .select(user_villages::all_columns)
        .load::<(String, String)>(conn)
        .expect("user_villages");
    sessions::table
        .select(sessions::all_columns)
        .load::<(
            String,
            String,
            String,
            Timestamp,
            Timestamp,
            Option<Timestamp>,
            Option<String>,
        )>(conn)
        .expect("sessions");
    refresh_tokens::table
        .select(refresh_tokens::all_columns)
        .load::<(String, String, Timestamp, Timestamp, Option<Timestamp>)>(conn)
        .expect("refresh_tokens");
    login_attempts::table
        .select(login_attempts::all_columns)
        .load::<(String, String, String, Timestamp, bool, Option<String>)>(conn)
        .expect("login_attempts");
    type Text = String;
    type Opt<T> = Option<T>;
    photos::table
        .select(photos::all_columns)
        .load::<(
            Text,
            Text,
            i64,
            i32,
            i32,
            i32,
            Opt<Timestamp>,
            Opt<i32>,
            Opt<f64>,
            Opt<f64>,
            i64,
            Timestamp,
        )>(conn)
        .expect("photos");
    photo_uploads::table
        .select(photo_uploads::all_columns)
        .load::<(Text, Text, Timestamp)>(conn)
        .expect("photo_uploads");
    photo_links::table
        .select(photo_links::all_columns)
        .load::<(Text, Text, Text)>(conn)
        .expect("photo_links");
    submissions::table
        .select(submissions::all_columns)
        .load::<(Text, Text, Text, Text, Text, Text, i32, Text, Timestamp)>(conn)
        .expect("submissions");
    households::table
        .select(households::all_columns)
        .load::<(Text, Text, Timestamp, i64)>(conn)
        .expect("households");
    household_keys::table
        .select(household_keys::all_columns)
        .load::<(Text, Text, Text, Text)>(conn)
        .expect("household_keys");
    people::table
        .select(people::all_columns)
        .load::<(Text, Opt<Text>, Text, chrono::NaiveDate)>(conn)
        .expect("people");
    household_surveys::table
        .select((
            (
                household_surveys::id,
                household_surveys::household_id,
                household_surveys::version,
                household_surveys::village_code,
                household_surveys::enumerator_id,
                household_surveys::form_version,
                household_surveys::surveyed_at,
                household_surveys::month,
                household_surveys::received_at,
                household_surveys::household_number,
                household_surveys::head_name,
                household_surveys::head_name_norm,
                household_surveys::head_id_hash,
            ),
            (
                household_surveys::head_id_sealed,
                household_surveys::poverty_status,
                household_surveys::relocated,
                household_surveys::phone_sealed,
                household_surveys::member_count,
                household_surveys::lat,
                household_surveys::lon,
                household_surveys::accuracy_m,
                household_surveys::answers_hash,
                household_surveys::replaces,
                household_surveys::status,
                household_surveys::status_changed_at,
                household_surveys::review_comment,
                household_surveys::review_version,
                household_surveys::reviewed_by,
                household_surveys::base_survey_id,
            ),
        ))
        .load::<(
            (
                Text,
                Text,
                i32,
                Text,
                Text,
                Text,
                Timestamp,
                Text,
                Timestamp,
                Opt<Text>,
                Text,
                Text,
                Opt<Text>,
            ),
            (
                Opt<Text>,
                Text,
                bool,
                Opt<Text>,
                i32,
                f64,
                f64,
                Opt<f64>,
                Text,
                Opt<Text>,
                Text,
                Timestamp,
                Opt<Text>,
                i32,
                Opt<Text>,
                Opt<Text>,
            ),
        )>(conn)
        .expect("household_surveys");
    survey_members::table
        .select(survey_members::all_columns)
        .load::<(
            Text,
            i32,
            Text,
            Text,
            Text,
            Text,
            Opt<Text>,
            Opt<Text>,
            Opt<Text>,
            Opt<i64>,
            bool,
            bool,
            Opt<Text>,
            bool,
            Text,
        )>(conn)
        .expect("survey_members");
    survey_flags::table
        .select(survey_flags::all_columns)
        .load::<(Text, Text, Text, Text)>(conn)
        .expect("survey_flags");
    village_surveys::table
        .select(village_surveys::all_columns)
        .load::<(
            Text,
            Text,
            Text,
            Text,
            Timestamp,
            Timestamp,
            i32,
            Opt<f64>,
            Opt<f64>,
            Opt<f64>,
            Text,
            Timestamp,
            Opt<Text>,
            i64,
        )>(conn)
        .expect("village_surveys");
    village_post_demand::table
        .select(village_post_demand::all_columns)
        .load::<(Text, Text, i32, i32)>(conn)
        .expect("village_post_demand");
    audit_log::table
        .select(audit_log::all_columns)
        .load::<(
            i64,
            Text,
            Timestamp,
            Text,
            Text,
            Text,
            Text,
            Opt<Text>,
            Opt<Text>,
            Opt<Text>,
            Opt<Text>,
            Opt<Text>,
            Text,
            Text,
        )>(conn)
        .expect("audit_log");
    checkins::table
        .select(checkins::all_columns)
        .load::<(
            Text,
            Text,
            Text,
            Text,
            Opt<Text>,
            Text,
            Timestamp,
            chrono::NaiveDate,
            f64,
            f64,
            Opt<f64>,
            bool,
            Text,
            i64,
            Text,
            Text,
            Timestamp,
            Text,
        )>(conn)
        .expect("checkins");
    checkin_reviews::table
        .select(checkin_reviews::all_columns)
        .load::<(Text, Text, Text, Text, Timestamp)>(conn)
        .expect("checkin_reviews");
    duplicate_pairs::table
        .select(duplicate_pairs::all_columns)
        .load::<(
            Text,
            Text,
            Text,
            Opt<Text>,
            Timestamp,
            Text,
            Opt<Text>,
            Opt<Timestamp>,
            Opt<Text>,
            i32,
            Text,
        )>(conn)
        .expect("duplicate_pairs");
    merge_moves::table
        .select(merge_moves::all_columns)
        .load::<(Text, Text, Text, Text, i32, i32)>(conn)
        .expect("merge_moves");
    ledger_generations::table
        .select(ledger_generations::all_columns)
        .load::<(Text, i64, i64, Text)>(conn)
        .expect("ledger_generations");
    ledger_cache::table
        .select(ledger_cache::all_columns)
        .load::<(Text, Text, i64, Text, Text)>(conn)
        .expect("ledger_cache");
    month_closes::table
        .select(month_closes::all_columns)
        .load::<(
            Text,
            i32,
            Timestamp,
            Text,
            Opt<Text>,
            Opt<Text>,
            i32,
            Opt<Timestamp>,
            Opt<Text>,
            Opt<Text>,
        )>(conn)
        .expect("month_closes");
    month_snapshots::table
        .select(month_snapshots::all_columns)
        .load::<(Text, Text, Text, Text, i32)>(conn)
        .expect("month_snapshots");
    month_signoffs::table
        .select(month_signoffs::all_columns)
        .load::<(
            Text,
            Text,
            i32,
            Text,
            Text,
            Timestamp,
            Opt<Text>,
            Opt<Text>,
            i32,
            Opt<Timestamp>,
            Opt<Text>,
            Opt<Text>,
        )>(conn)
        .expect("month_signoffs");
    city_quotas::table
        .select(city_quotas::all_columns)
        .load::<(i32, i32, i32, Text, Opt<Text>, Timestamp)>(conn)
        .expect("city_quotas");
    quotas::table
        .select(quotas::all_columns)
        .load::<(i32, Text, i32, i32, i32, Text, Timestamp)>(conn)
        .expect("quotas");
    sync_tombstones::table
        .select(sync_tombstones::all_columns)
        .load::<(Text, Text, Text, Opt<Text>, i64)>(conn)
        .expect("sync_tombstones");
    sync_counters::table
        .select(sync_counters::all_columns)
        .load::<(Text, i64)>(conn)
        .expect("sync_counters");
    employers::table
        .select(employers::all_columns)
        .load::<(
            Text,
            Text,
            Text,
            Opt<Text>,
            Text,
            Opt<Text>,
            Opt<Text>,
            bool,
            bool,
            i64,
            Timestamp,
            Timestamp,
        )>(conn)
        .expect("employers");
    household_imports::table
        .select(household_imports::all_columns)
        .load::<(Text, Text, Timestamp, Text, Text, i32, i32, i32, i32)>(conn)
        .expect("household_imports");
    imported_households::table
        .select(imported_households::all_columns)
        .load::<(
            Text,
            Text,
            Timestamp,
            Text,
            Opt<Text>,
            Text,
            Text,
            Text,
            i32,
            Opt<Text>,
            Opt<Text>,
            Opt<i32>,
            Opt<bool>,
        )>(conn)
        .expect("imported_households");
}

/// The tables present in the database, whatever the backend.
fn tables(conn: &mut DbConnection) -> BTreeSet<String> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let sql = match conn {
        DbConnection::Sqlite(_) => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations'",
        // A partitioned table counts once: its month partitions are not tables of the schema.
        DbConnection::Postgresql(_) => "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> '__diesel_schema_migrations'",
    };
    diesel::sql_query(sql)
        .load::<Name>(conn)
        .expect("list tables")
        .into_iter()
        .map(|n| n.name)
        .collect()
}

async fn schema_loads_and_migrations_revert(backend: Backend) {
    let db = TestDatabase::new(backend);
    // A server start migrates, loads fixtures and demo users: a realistic database to read.
    let app = crate::helpers::TestApp::spawn_on(db.clone(), |_| {}).await;
    app.token(crate::helpers::CITY_ADMIN).await;
    app.stop().await;
    let mut conn = db.url.establish().expect("connect");
    load_every_table(&mut conn);
    let expected: BTreeSet<String> = taizhang::db::schema::ALL_TABLES
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(
        tables(&mut conn),
        expected,
        "schema.rs lists exactly the tables the migrations make"
    );

    migrations::revert_all(&mut conn).expect("every down migration runs");
    assert!(
        tables(&mut conn).is_empty(),
        "down migrations leave nothing behind"
    );
    migrations::run_pending(&mut conn).expect("and up again");
    assert_eq!(tables(&mut conn), expected);
}

crate::helpers::both_backends!(schema_loads_and_migrations_revert);

#[test]
fn the_committed_fixtures_are_what_the_builder_makes() {
    let out = tempfile::tempdir().expect("tempdir");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_build-fixtures"))
        .arg(Path::new(ROOT).join("fixtures/source"))
        .arg(out.path())
        .status()
        .expect("run build-fixtures");
    assert!(status.success());
    for file in ["divisions.csv", "villages.csv", "county_boundaries.geojson"] {
        let built = std::fs::read(out.path().join(file)).expect("built file");
        let committed =
            std::fs::read(Path::new(ROOT).join("fixtures").join(file)).expect("committed file");
        assert!(
            built == committed,
            "fixtures/{file} differs from what build-fixtures makes: rebuild and commit"
        );
    }
}
