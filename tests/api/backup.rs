//! Backup and restore: `taizhang backup` while submissions keep arriving, `taizhang restore`
//! into a new data directory and a server started on it (SQLite); the README's `pg_dump -Fc` /
//! `pg_restore` steps (PostgreSQL); and the refusals, which must leave nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;
use crate::surveys::{household_survey, id_number, new_id, upload};

const BIN: &str = env!("CARGO_BIN_EXE_taizhang");
const WRONG_SECRET: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

/// The binary with only the given environment (and JSON logs).
fn taizhang(env: &[(&str, &Path)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TAIZHANG_LOG_FORMAT", "json");
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd
}

async fn output(mut cmd: Command) -> Output {
    actix_web::rt::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run taizhang")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("exists")
        .permissions()
        .mode()
        & 0o777
}

/// Every file under `dir` is 0600 and every directory 0700.
fn assert_private_tree(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            assert_private_tree(&path);
        } else {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(list) => list.map(|e| e.expect("entry").path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Posts household surveys from `workers` concurrent senders until `stop`; every survey the
/// server acknowledged (200/201) is recorded with when its answer came.
async fn write_burst(
    app: &TestApp,
    token: &str,
    photo: &str,
    stop: &AtomicBool,
    acked: &Mutex<Vec<(String, Instant)>>,
) {
    let next = AtomicU32::new(0);
    let sender = || async {
        while !stop.load(Ordering::Relaxed) {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let head = id_number("220802", &format!("19{}0101", 50 + k / 800), 100 + k % 800);
            let id = new_id();
            let body = household_survey(&id, "张三", &head, &[photo.to_owned()]);
            let answer = app
                .post("/api/v1/surveys/households")
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("post");
            let status = answer.status().as_u16();
            assert!(status == 201 || status == 200, "{status}");
            acked.lock().expect("acked").push((id, Instant::now()));
        }
    };
    futures_util::future::join_all((0..4).map(|_| sender())).await;
}

#[actix_web::test]
async fn a_backup_taken_during_a_write_burst_restores_every_acknowledged_submission() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let photo = upload(&app, &token, "doorplate.jpg").await;
    let work = tempfile::tempdir().expect("tempdir");
    let backup_dir = work.path().join("backup");
    let restored = work.path().join("restored");
    let data_dir = app.settings.data_dir.clone();

    let stop = AtomicBool::new(false);
    let acked = Mutex::new(Vec::new());
    let burst = write_burst(&app, &token, &photo, &stop, &acked);
    let backup = async {
        while acked.lock().expect("acked").len() < 30 {
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
        let before: Vec<String> = acked
            .lock()
            .expect("acked")
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        let started = Instant::now();
        let mut cmd = taizhang(&[("TAIZHANG_DATA_DIR", &data_dir)]);
        cmd.arg("backup").arg("--to").arg(&backup_dir);
        let out = output(cmd).await;
        let ended = Instant::now();
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::Relaxed);
        (before, started, ended, out)
    };
    let ((), (before, started, ended, out)) = futures_util::future::join(burst, backup).await;
    assert!(out.status.success(), "{}", text(&out));
    let acked = acked.into_inner().expect("acked");
    let during = acked
        .iter()
        .filter(|(_, at)| *at > started && *at < ended)
        .count();
    assert!(
        during > 0,
        "no submission was acknowledged during the backup"
    );

    // The backup: private, no key, a manifest naming the key by its fingerprint only.
    assert_private_tree(&backup_dir);
    assert!(!backup_dir.join("secret.key").exists());
    let manifest_text =
        std::fs::read_to_string(backup_dir.join("manifest.json")).expect("manifest");
    assert!(
        !manifest_text.contains(TEST_SECRET),
        "the key is never written"
    );
    let manifest: Value = serde_json::from_str(&manifest_text).expect("json");
    let fingerprint = taizhang::secrets::Keys::from_master(&hex::decode(TEST_SECRET).expect("hex"))
        .fingerprint()
        .to_owned();
    assert_eq!(manifest["key_fingerprint"], fingerprint.as_str());
    assert_eq!(manifest["format"], "taizhang-backup/1");
    assert!(manifest["database"]["last_migration"].is_string());
    let in_backup = manifest["counts"]["household_surveys"].as_u64().expect("n") as usize;
    assert!(
        in_backup >= before.len() && in_backup <= acked.len() + 4,
        "{in_backup} surveys backed up, {} acknowledged before, {} in all",
        before.len(),
        acked.len()
    );
    assert!(
        manifest["photos"]["files"].as_u64().expect("n") >= 1,
        "{manifest}"
    );

    // Restored into a new data directory with the key, and served from there.
    let mut cmd = taizhang(&[("TAIZHANG_DATA_DIR", &restored)]);
    cmd.env("TAIZHANG_SECRET_KEY", TEST_SECRET)
        .arg("restore")
        .arg("--from")
        .arg(&backup_dir);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_private_tree(&restored);
    assert!(restored.join("secret.key").exists());
    app.stop().await;

    // The key restore wrote is the one the database expects: no key in the environment.
    let mut cmd = taizhang(&[("TAIZHANG_DATA_DIR", &restored)]);
    cmd.args(["audit", "verify"]);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("the audit chain is intact"),
        "{}",
        text(&out)
    );

    let database = restored.join("taizhang.sqlite3");
    let server = crate::server_process::spawn(
        &database.display().to_string(),
        &restored,
        "127.0.0.1:0",
        TEST_SECRET,
        &[],
    )
    .expect("a server starts on the restored data");
    let address = server.address.clone();
    let client = checked_client(reqwest::Client::builder());
    let token = log_in(&client, &address, CITY_ADMIN).await;
    for id in &before {
        let answer = client
            .get(format!("{address}/api/v1/surveys/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        assert_eq!(answer.status(), 200, "acknowledged survey {id} is missing");
    }
    let bytes = client
        .get(format!("{address}/api/v1/photos/{photo}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("photo");
    assert_eq!(bytes.status(), 200);
    assert_eq!(
        sha256_hex(&bytes.bytes().await.expect("bytes")),
        photo,
        "the photo came back whole"
    );
}

#[actix_web::test]
async fn restore_refuses_a_wrong_key_and_used_targets_without_writing() {
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("data");
    let backup = work.path().join("backup");
    let mut cmd = taizhang(&[("TAIZHANG_DATA_DIR", &data)]);
    cmd.env("TAIZHANG_SECRET_KEY", TEST_SECRET).arg("migrate");
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", text(&out));
    let mut cmd = taizhang(&[("TAIZHANG_DATA_DIR", &data)]);
    cmd.arg("backup").arg("--to").arg(&backup);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", text(&out));

    // A non-empty backup target is refused and left as it was.
    let used = work.path().join("used");
    std::fs::create_dir(&used).expect("mkdir");
    std::fs::write(used.join("keep.txt"), "mine").expect("write");
    let mut cmd = taizhang(&[("TAIZHANG_DATA_DIR", &data)]);
    cmd.arg("backup").arg("--to").arg(&used);
    let out = output(cmd).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("not empty"), "{}", text(&out));
    assert_eq!(entries(&used), vec![used.join("keep.txt")]);

    let restore = |dir: &Path, key: Option<(&str, &str)>| {
        let mut cmd = taizhang(&[("TAIZHANG_DATA_DIR", dir)]);
        if let Some((name, value)) = key {
            cmd.env(name, value);
        }
        cmd.arg("restore").arg("--from").arg(&backup);
        output(cmd)
    };
    // A wrong key: refused, naming both fingerprints; no directory, no key file, nothing.
    let target = work.path().join("new");
    let out = restore(&target, Some(("TAIZHANG_SECRET_KEY", WRONG_SECRET))).await;
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("not the one this backup was made with"),
        "{said}"
    );
    assert!(!said.contains(WRONG_SECRET) && !said.contains(TEST_SECRET));
    assert!(!target.exists(), "a refused restore creates nothing");
    // The same into an existing empty directory: it stays empty.
    std::fs::create_dir(&target).expect("mkdir");
    let key_file = work.path().join("wrong.key");
    std::fs::write(&key_file, WRONG_SECRET).expect("write");
    let out = restore(
        &target,
        Some((
            "TAIZHANG_SECRET_KEY_FILE",
            key_file.to_str().expect("utf-8"),
        )),
    )
    .await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(entries(&target).is_empty(), "{:?}", entries(&target));
    // No key at all: refused too (the backup does not hold it), nothing written.
    let out = restore(&target, None).await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("the backup does not hold it"),
        "{}",
        text(&out)
    );
    assert!(entries(&target).is_empty());
    // A data directory in use is refused even with the right key.
    let out = restore(&data, Some(("TAIZHANG_SECRET_KEY", TEST_SECRET))).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("not empty"), "{}", text(&out));
    // The right key restores.
    let out = restore(&target, Some(("TAIZHANG_SECRET_KEY", TEST_SECRET))).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(target.join("taizhang.sqlite3").is_file() && target.join("secret.key").is_file());
}

/// The first `postgresql` binary named `name` (the test kit's cluster's own version).
fn pg_bin(name: &str) -> PathBuf {
    crate::pg::find_bin(name).unwrap_or_else(|| panic!("{name} not found"))
}

/// The README's PostgreSQL steps: `pg_dump -Fc`, the photo directory copied, the key kept;
/// `pg_restore` into an empty database, the photos back, the same key; the server serves it all.
#[actix_web::test]
async fn postgres_backup_with_pg_dump_restores_with_pg_restore() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let photo = upload(&app, &token, "household.jpg").await;
    let mut ids = Vec::new();
    for k in 0..5 {
        let id = new_id();
        let body = household_survey(
            &id,
            "王五",
            &id_number("220802", "19660101", 301 + k),
            std::slice::from_ref(&photo),
        );
        let answer = app
            .post("/api/v1/surveys/households")
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(answer.status(), 201);
        ids.push(id);
    }
    let taizhang::db::DatabaseUrl::Postgres(url) = app.settings.database.clone() else {
        panic!("a PostgreSQL test database");
    };
    let work = tempfile::tempdir().expect("tempdir");
    let dump = work.path().join("taizhang.dump");
    let saved_photos = work.path().join("photos");
    // Back up: pg_dump -Fc (one consistent snapshot while the server runs), then the photos.
    let mut cmd = Command::new(pg_bin("pg_dump"));
    cmd.arg("-Fc").arg("-f").arg(&dump).arg(&url);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", text(&out));
    let mut cmd = Command::new("cp");
    cmd.arg("-a")
        .arg(app.settings.data_dir.join("photos"))
        .arg(&saved_photos);
    assert!(output(cmd).await.status.success());
    app.stop().await;

    // Restore: an empty database, pg_restore, the photos into the new server's store.
    let (base, query) = url.split_once('?').expect("a socket URL");
    let (server_url, _) = base.rsplit_once('/').expect("a database name");
    let name = format!("r_{}", uuid::Uuid::new_v4().simple());
    let admin_url = format!("{server_url}/postgres?{query}");
    let new_url = format!("{server_url}/{name}?{query}");
    let mut admin = {
        use diesel::Connection;
        diesel::PgConnection::establish(&admin_url).expect("admin connection")
    };
    diesel::connection::SimpleConnection::batch_execute(
        &mut admin,
        &format!("CREATE DATABASE {name} TEMPLATE template0"),
    )
    .expect("createdb");
    let mut cmd = Command::new(pg_bin("pg_restore"));
    cmd.args(["--no-owner", "--exit-on-error", "-d"])
        .arg(&new_url)
        .arg(&dump);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", text(&out));
    let restored = work.path().join("restored");
    std::fs::create_dir(&restored).expect("mkdir");
    let mut cmd = Command::new("cp");
    cmd.arg("-a")
        .arg(&saved_photos)
        .arg(restored.join("photos"));
    assert!(output(cmd).await.status.success());

    // A wrong key is refused before the database is touched; the right one verifies the chain.
    let verify = |key: &str| {
        let mut cmd = taizhang(&[("TAIZHANG_DATA_DIR", &restored)]);
        cmd.env("TAIZHANG_DATABASE_URL", &new_url)
            .env("TAIZHANG_SECRET_KEY", key)
            .args(["audit", "verify"]);
        output(cmd)
    };
    let out = verify(WRONG_SECRET).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("not the one this database was set up with"));
    let out = verify(TEST_SECRET).await;
    assert!(out.status.success(), "{}", text(&out));

    let server = crate::server_process::spawn(&new_url, &restored, "127.0.0.1:0", TEST_SECRET, &[])
        .expect("a server starts on the restored database");
    let address = server.address.clone();
    let client = checked_client(reqwest::Client::builder());
    let token = log_in(&client, &address, CITY_ADMIN).await;
    for id in &ids {
        let answer = client
            .get(format!("{address}/api/v1/surveys/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        assert_eq!(answer.status(), 200, "survey {id}");
    }
    let bytes = client
        .get(format!("{address}/api/v1/photos/{photo}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("photo");
    assert_eq!(bytes.status(), 200);
    assert_eq!(sha256_hex(&bytes.bytes().await.expect("bytes")), photo);
}
