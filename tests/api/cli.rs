//! The `taizhang` binary itself: subcommands, configuration from the environment, the
//! secret-key check, graceful shutdown on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_taizhang");

fn taizhang(data_dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TAIZHANG_DATA_DIR", data_dir)
        .env("TAIZHANG_LOG_FORMAT", "json");
    cmd
}

#[test]
fn openapi_prints_the_committed_document() {
    let out = Command::new(BIN).arg("openapi").output().expect("run");
    assert!(out.status.success());
    let committed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/mobile-api-spec/openapi.json"
    ))
    .expect("committed");
    assert!(out.stdout == committed);
}

#[test]
fn migrate_then_add_users_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = taizhang(dir.path())
        .arg("migrate")
        .output()
        .expect("migrate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("919 villages"));
    // Idempotent: a second run has nothing to do.
    let again = taizhang(dir.path())
        .arg("migrate")
        .output()
        .expect("migrate");
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 migrations applied now, 0 villages"));

    let add = taizhang(dir.path())
        .env("TAIZHANG_USER_PASSWORD", "from the environment")
        .args([
            "user",
            "add",
            "--phone",
            "13700000001",
            "--name",
            "赵六",
            "--role",
            "county_reviewer",
            "--county",
            "220822000000",
        ])
        .output()
        .expect("user add");
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );

    let password_file = dir.path().join("pw");
    std::fs::write(&password_file, "from a file please\n").expect("write");
    let add = taizhang(dir.path())
        .args([
            "user",
            "add",
            "--phone",
            "13700000002",
            "--name",
            "钱七",
            "--role",
            "enumerator",
        ])
        .args([
            "--village",
            "220822100200",
            "--village",
            "220822100201",
            "--password-file",
        ])
        .arg(&password_file)
        .output()
        .expect("user add");
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );

    let bad = taizhang(dir.path())
        .env("TAIZHANG_USER_PASSWORD", "long enough")
        .args([
            "user",
            "add",
            "--phone",
            "13700000003",
            "--name",
            "x",
            "--role",
            "first_secretary",
            "--village",
            "220822100200",
            "--village",
            "220821100200",
        ])
        .output()
        .expect("user add");
    assert!(!bad.status.success());
    let message = String::from_utf8_lossy(&bad.stderr);
    assert!(
        message.contains("villages") && message.contains("one_village"),
        "{message}"
    );

    let no_password = taizhang(dir.path())
        .args([
            "user",
            "add",
            "--phone",
            "13700000004",
            "--name",
            "x",
            "--role",
            "city_admin",
        ])
        .output()
        .expect("user add");
    assert!(!no_password.status.success());
    assert!(String::from_utf8_lossy(&no_password.stderr).contains("TAIZHANG_USER_PASSWORD"));
}

#[test]
fn a_different_secret_key_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = taizhang(dir.path())
        .arg("migrate")
        .output()
        .expect("migrate");
    assert!(first.status.success());
    let other = taizhang(dir.path())
        .env("TAIZHANG_SECRET_KEY", "ff".repeat(32))
        .arg("migrate")
        .output()
        .expect("migrate");
    assert!(!other.status.success());
    let message = String::from_utf8_lossy(&other.stderr);
    assert!(
        message.contains("not the one this database was set up with"),
        "{message}"
    );
    assert!(
        !message.contains(&"ff".repeat(32)),
        "the secret is never printed"
    );
}

#[test]
fn serve_stops_gracefully_on_sigterm_and_never_logs_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = "5ec2e7".repeat(11);
    let mut child = taizhang(dir.path())
        .env("TAIZHANG_SECRET_KEY", &secret)
        .env("TAIZHANG_BIND", "127.0.0.1:0")
        .args(["serve", "--demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    // Read the log as it comes: a full pipe would stall the server (the demo's field work
    // logs every request).
    let mut stderr = child.stderr.take().expect("stderr");
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut log).expect("log");
        log
    });
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut printed = String::new();
    let mut address = None;
    for line in stdout.lines() {
        let line = line.expect("line");
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.strip_prefix("Taizhang is serving on http://") {
            address = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    let address = address.unwrap_or_else(|| panic!("no serving line in:\n{printed}"));
    assert!(
        printed.contains(&format!("Review console: http://{address}/console")),
        "the console's real address is printed: {printed}"
    );
    assert!(
        printed.contains("13900000001") && printed.contains("demo-city-0001"),
        "demo users are printed"
    );
    assert!(
        printed.contains("Demo surveys: 1500 households"),
        "an empty database gets demo surveys to review: {printed}"
    );

    let health = std::net::TcpStream::connect(&address).expect("connect");
    drop(health);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "a graceful stop exits 0");
    let log = log.join().expect("log");
    assert!(
        log.contains("shutting down") && log.contains("stopped"),
        "{log}"
    );
    assert!(
        !log.contains(&secret) && !printed.contains(&secret),
        "the secret key is never logged"
    );
}

#[test]
fn seed_generates_surveys_the_ledger_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = taizhang(dir.path())
        .args([
            "seed",
            "--households",
            "60",
            "--months",
            "3",
            "--start",
            "2020-05",
        ])
        .output()
        .expect("seed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("seeded 60 households"), "{stdout}");
    assert!(stdout.contains("cached the ledger of 2020-07"), "{stdout}");
    // The same seed makes the same data: a second database gets the same counts.
    let again = tempfile::tempdir().expect("tempdir");
    let out2 = taizhang(again.path())
        .args([
            "seed",
            "--households",
            "60",
            "--months",
            "3",
            "--start",
            "2020-05",
        ])
        .output()
        .expect("seed");
    let counts = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("seeded"))
            .map(|l| l.split(" in ").next().unwrap_or_default().to_owned())
    };
    assert_eq!(
        counts(&stdout),
        counts(&String::from_utf8_lossy(&out2.stdout))
    );
}

/// `user list | set | reset` on a database a test server set up (its demo users), run as the
/// server's operator would, then checked through the API.
async fn staff_from_the_command_line(backend: crate::helpers::Backend) {
    use crate::helpers::*;
    let app = TestApp::spawn(backend).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = match &app.settings.database {
        taizhang::db::DatabaseUrl::Sqlite(path) => path.display().to_string(),
        taizhang::db::DatabaseUrl::Postgres(url) => url.clone(),
    };
    let run = |args: &[&str]| {
        let out = taizhang(dir.path())
            .env("TAIZHANG_DATABASE_URL", &url)
            .env("TAIZHANG_SECRET_KEY", TEST_SECRET)
            .args(args)
            .output()
            .expect("run");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, listed, err) = run(&["user", "list", "--role", "enumerator"]);
    assert!(ok, "{err}");
    assert!(
        listed.contains(ENUMERATOR_TAOBEI.phone) && !listed.contains(CITY_ADMIN.phone),
        "{listed}"
    );
    assert!(listed.contains("2 users"), "{listed}");

    let (ok, out, err) = run(&[
        "user",
        "set",
        "--phone",
        ENUMERATOR_TAOBEI.phone,
        "--name",
        "赵六",
        "--village",
        "220802100203",
        "--active",
        "false",
        "--reason",
        "轮换",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("220802100203") && out.contains("inactive"),
        "{out}"
    );
    let login = app
        .login_response(ENUMERATOR_TAOBEI.phone, ENUMERATOR_TAOBEI.password, "d")
        .await;
    problem(login, 401, "account_disabled").await;
    let (ok, listed, _) = run(&["user", "list", "--active", "false"]);
    assert!(
        ok && listed.contains("赵六") && listed.contains("1 users"),
        "{listed}"
    );

    // Refusals name the field and the rule; an unknown phone says so.
    let (ok, _, err) = run(&[
        "user",
        "set",
        "--phone",
        SECRETARY_TAOBEI.phone,
        "--village",
        "220802100200",
        "--village",
        "220802100201",
    ]);
    assert!(
        !ok && err.contains("villages") && err.contains("one_village"),
        "{err}"
    );
    let (ok, _, err) = run(&["user", "reset", "--phone", "13700009999"]);
    assert!(!ok && err.contains("13700009999"), "{err}");

    // A reset prints a one-time password that logs in flagged.
    let (ok, out, err) = run(&["user", "reset", "--phone", SECRETARY_TAOBEI.phone]);
    assert!(ok, "{err}");
    let one_time = out.trim();
    assert_eq!(one_time.len(), 14, "{out}");
    let login = app
        .login_response(SECRETARY_TAOBEI.phone, one_time, "d")
        .await;
    assert_eq!(login.status(), 200);
    let body: serde_json::Value = login.json().await.expect("json");
    assert_eq!(body["user"]["must_change_password"], true);
    let admin = app.token(CITY_ADMIN).await;
    let audit: serde_json::Value = app
        .get_as(&admin, "/api/v1/audit?action=reset_password")
        .await
        .json()
        .await
        .expect("json");
    let detail = audit["items"][0]["detail"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(detail.contains("taizhang user reset"), "{audit}");
}

crate::helpers::both_backends!(staff_from_the_command_line);

/// `serve --demo` on a fresh data directory: every page has something to show, and the data
/// could be real — nothing dated after now, both sexes, parents older than their children,
/// staff with people's names.
#[test]
fn the_demo_looks_real() {
    use diesel::prelude::*;
    use taizhang::db::schema::{
        checkins, duplicate_pairs, household_surveys, people, submissions, survey_members, users,
        village_surveys,
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = taizhang(dir.path())
        .env("TAIZHANG_SECRET_KEY", "de".repeat(32))
        .env("TAIZHANG_BIND", "127.0.0.1:0")
        .env("TAIZHANG_DEMO_HOUSEHOLDS", "300")
        .args(["serve", "--demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let (lines, printed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut seen = String::new();
    let acked: usize = loop {
        let line = printed
            .recv_timeout(Duration::from_secs(300).saturating_sub(started.elapsed()))
            .unwrap_or_else(|_| panic!("no demo field work in:\n{seen}"));
        seen.push_str(&line);
        seen.push('\n');
        if let Some(rest) = line.strip_prefix("Demo field work: ") {
            if let Some(n) = rest.strip_suffix(" submissions received") {
                break n.parse().expect("count");
            }
        }
    };
    assert!(acked > 50, "{seen}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    child.wait().expect("wait");

    let url = taizhang::db::DatabaseUrl::Sqlite(taizhang::db::default_sqlite_path(dir.path()));
    let db = taizhang::db::Db::connect(&url, 1).expect("database");
    let mut conn = db.get().expect("connection");
    let conn = &mut *conn;
    let now = chrono::Utc::now().naive_utc();
    let latest = |times: Vec<chrono::NaiveDateTime>| times.into_iter().max().expect("rows");
    let surveyed: Vec<chrono::NaiveDateTime> = household_surveys::table
        .select(household_surveys::surveyed_at)
        .load(conn)
        .expect("surveys");
    assert!(surveyed.len() > 300);
    for (what, last) in [
        ("surveyed", latest(surveyed)),
        (
            "received",
            latest(
                household_surveys::table
                    .select(household_surveys::received_at)
                    .load(conn)
                    .expect("q"),
            ),
        ),
        (
            "submitted",
            latest(
                submissions::table
                    .select(submissions::received_at)
                    .load(conn)
                    .expect("q"),
            ),
        ),
        (
            "village survey",
            latest(
                village_surveys::table
                    .select(village_surveys::surveyed_at)
                    .load(conn)
                    .expect("q"),
            ),
        ),
        (
            "checked in",
            latest(
                checkins::table
                    .select(checkins::captured_at)
                    .load(conn)
                    .expect("q"),
            ),
        ),
    ] {
        assert!(last <= now, "{what} at {last}, after now ({now})");
    }

    let people: Vec<(String, String, chrono::NaiveDate)> = people::table
        .select((people::id_hash, people::sex, people::birth_date))
        .load(conn)
        .expect("people");
    let men = people.iter().filter(|p| p.1 == "male").count();
    let share = men as f64 / people.len() as f64;
    assert!(
        (0.35..0.65).contains(&share),
        "{men} men of {}",
        people.len()
    );
    assert!(
        people.iter().all(|p| p.2 <= now.date()),
        "born in the future"
    );
    let births: std::collections::HashMap<String, chrono::NaiveDate> =
        people.into_iter().map(|(h, _, b)| (h, b)).collect();
    let members: Vec<(String, String, String)> = survey_members::table
        .select((
            survey_members::survey_id,
            survey_members::relation,
            survey_members::person_id_hash,
        ))
        .load(conn)
        .expect("members");
    let mut households: std::collections::HashMap<&str, Vec<(&str, chrono::NaiveDate)>> =
        Default::default();
    for (survey, relation, hash) in &members {
        if let Some(birth) = births.get(hash) {
            households
                .entry(survey)
                .or_default()
                .push((relation, *birth));
        }
    }
    let mut checked = 0;
    for list in households.values() {
        let Some((_, head)) = list.iter().find(|(r, _)| *r == "head") else {
            continue;
        };
        for (relation, birth) in list {
            let years = (*birth - *head).num_days() / 365;
            match *relation {
                "child" => assert!(years >= 15, "a child {years} years younger than the head"),
                "grandchild" => assert!(years >= 30, "a grandchild {years} years younger"),
                "parent" => assert!(years <= -15, "a parent {years} years from the head"),
                _ => continue,
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} relatives checked");

    let flags: Vec<String> = checkins::table
        .select(checkins::flags)
        .load(conn)
        .expect("check-ins");
    let flagged = flags.iter().filter(|f| !f.is_empty()).count();
    assert!(
        flags.len() > 50 && flagged > 0 && flagged < flags.len() / 2,
        "{flagged} of {} flagged",
        flags.len()
    );
    let open: i64 = duplicate_pairs::table
        .filter(duplicate_pairs::state.eq("open"))
        .count()
        .get_result(conn)
        .expect("pairs");
    assert!(open > 0, "open duplicate pairs");
    let names: Vec<String> = users::table.select(users::name).load(conn).expect("users");
    assert!(
        names.iter().all(|n| !n.contains("造数")
            && !n.contains('·')
            && !n.chars().any(|c| c.is_ascii_digit())),
        "{names:?}"
    );
}

/// `user …`, `audit verify` and `backup` work on an existing database: without one (no or a
/// mistyped --data-dir, another folder) they say so and exit 1, creating nothing.
#[test]
fn commands_that_need_a_database_refuse_a_missing_one_and_create_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("data");
    let to = root.path().join("backup");
    let to = to.to_str().expect("utf-8");
    let commands: [&[&str]; 7] = [
        &["user", "list"],
        &[
            "user",
            "add",
            "--phone",
            "13700000001",
            "--name",
            "赵六",
            "--role",
            "city_admin",
        ],
        &["user", "set", "--phone", "13700000001", "--name", "钱七"],
        &["user", "reset", "--phone", "13700000001"],
        &["audit", "verify"],
        &["backup", "--to", to],
        &["user", "list", "--role", "enumerator"],
    ];
    for args in commands {
        let out = taizhang(&dir)
            .env("TAIZHANG_USER_PASSWORD", "long enough password")
            .args(args)
            .output()
            .expect("run");
        let message = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            message.contains("there is no database at") && message.contains("--data-dir"),
            "{args:?}: {message}"
        );
        assert!(
            std::fs::read_dir(root.path())
                .expect("read")
                .next()
                .is_none(),
            "{args:?} created something"
        );
    }
}

/// A database whose `secret.key` is gone is refused before a new key is written beside it.
#[test]
fn a_missing_key_file_is_refused_before_a_new_key_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = taizhang(dir.path())
        .arg("migrate")
        .output()
        .expect("migrate");
    assert!(first.status.success());
    let key = dir.path().join("secret.key");
    std::fs::remove_file(&key).expect("remove the key");
    for args in [&["migrate"][..], &["user", "list"], &["serve"]] {
        let out = taizhang(dir.path())
            .env("TAIZHANG_BIND", "127.0.0.1:0")
            .args(args)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{args:?} started");
        let message = String::from_utf8_lossy(&out.stderr);
        assert!(
            message.contains("secret.key is missing") && message.contains("fingerprint"),
            "{args:?}: {message}"
        );
        assert!(!key.exists(), "{args:?} wrote a new key");
    }
}

/// `seed` adds generated data to a database that holds surveys only with `--append`.
#[test]
fn seed_refuses_a_database_with_surveys_unless_appending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = |extra: &[&str]| {
        taizhang(dir.path())
            .args([
                "seed",
                "--households",
                "20",
                "--months",
                "1",
                "--start",
                "2020-05",
            ])
            .args(extra)
            .output()
            .expect("seed")
    };
    let first = seed(&[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let again = seed(&[]);
    assert!(!again.status.success());
    let message = String::from_utf8_lossy(&again.stderr);
    assert!(
        message.contains("already holds") && message.contains("--append"),
        "{message}"
    );
    assert!(!String::from_utf8_lossy(&again.stdout).contains("seeded"));
    let appended = seed(&["--append", "--seed", "7"]);
    let stdout = String::from_utf8_lossy(&appended.stdout);
    assert!(
        appended.status.success() && stdout.contains("seeded 20 households"),
        "{stdout}{}",
        String::from_utf8_lossy(&appended.stderr)
    );
}

/// `simulate` against a server that already holds surveys says it needs a fresh database and
/// exits 1 before playing anything, instead of listing differences.
#[actix_web::test]
async fn simulate_refuses_a_server_that_already_holds_data() {
    let app = crate::helpers::TestApp::spawn_with(crate::helpers::Backend::Sqlite, |s| {
        s.demo_households = 12;
    })
    .await;
    let address = app.address.clone();
    let out = actix_web::rt::task::spawn_blocking(move || {
        taizhang(Path::new("/nonexistent"))
            .args([
                "simulate",
                "--server",
                &address,
                "--villages",
                "2",
                "--days",
                "3",
                "--quiet",
            ])
            .output()
    })
    .await
    .expect("join")
    .expect("simulate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.contains("already holds surveys") && stderr.contains("fresh database"),
        "{stderr}"
    );
    assert!(!stdout.contains("truth check"), "{stdout}");
}

/// The README's API example, run as written against a demo server: log in, keep the token,
/// call with it.
#[test]
fn the_readme_curl_example_works_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let block = readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(code, _)| code))
        .find(|code| code.contains("/api/v1/auth/login"))
        .expect("the README's curl example");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = taizhang_testkit::process::spawn(
        &dir.path().join("taizhang.sqlite3").display().to_string(),
        dir.path(),
        "127.0.0.1:0",
        taizhang_testkit::app::TEST_SECRET,
        &[],
    )
    .expect("serve");
    let host = server.address.trim_start_matches("http://");
    let script = block.replace("localhost:8080", host);
    let out = Command::new("sh")
        .args(["-ec", &script])
        .env("NO_PROXY", "*")
        .env("no_proxy", "*")
        .output()
        .expect("sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_str(&stdout).expect("JSON villages");
    assert_eq!(answer["count"], 919, "{stdout}");
}
