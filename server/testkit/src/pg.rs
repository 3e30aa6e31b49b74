//! A throwaway PostgreSQL for the tests: one cluster per test run, started on first use with
//! `initdb` and `pg_ctl` in a temporary directory, listening only on a unix socket.
//!
//! All test processes of one run (nextest starts one per test) share the cluster: the first to
//! take the lock file creates it, the others find it ready. A watcher process stops it and
//! deletes its directory when the test runner (the parent of the test processes) exits, however
//! the tests end. Each test gets a fresh database cloned from a template that already holds the
//! migrations and the village fixtures. `initdb` refuses to run as root, and CI runs as root: as
//! root the cluster belongs to the `postgres` user.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

const TEMPLATE: &str = "taizhang_template";

struct Cluster {
    socket_dir: PathBuf,
}

/// A PostgreSQL program: `TAIZHANG_PG_BIN`, then `PATH`, then the newest
/// `/usr/lib/postgresql/*/bin` (the tests' `pg_dump` and `pg_restore` must match the cluster's).
pub fn find_bin(name: &str) -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("TAIZHANG_PG_BIN") {
        let p = Path::new(&dir).join(name);
        return p.exists().then_some(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.exists())
    });
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
            .filter(|p| p.exists())
            .collect();
        versions.sort();
        versions.pop()
    })
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Runs a PostgreSQL program, as the `postgres` user when we are root.
fn pg_command(bin: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chown_to_postgres(path: &Path) {
    if is_root() {
        run(
            {
                let mut c = Command::new("chown");
                c.arg("-R").arg("postgres:").arg(path);
                c
            },
            "chown",
        );
    }
}

/// A directory shared by every test process of this run (they share the runner, our parent),
/// locked by the caller until the service in it is ready.
pub fn run_dir(name: &str) -> (PathBuf, File) {
    let runner = std::os::unix::process::parent_id();
    let root = std::env::temp_dir().join(format!("taizhang-test-{name}-{runner}"));
    fs::create_dir_all(&root).expect("create the shared directory");
    fs::set_permissions(&root, fs::Permissions::from_mode(0o777))
        .expect("chmod the shared directory");
    let lock = File::create(root.join("lock")).expect("create the lock file");
    lock.lock().expect("lock the shared directory");
    (root, lock)
}

/// Runs `cleanup` (a shell command) once the test runner exits, however the tests end.
pub fn when_runner_exits(cleanup: &str) {
    let runner = std::os::unix::process::parent_id();
    let script = format!("while kill -0 {runner} 2>/dev/null; do sleep 1; done; {cleanup}");
    // `setsid -f` forks the watcher into its own session and returns at once.
    Command::new("setsid")
        .args(["-f", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("start the watcher");
}

fn start() -> Cluster {
    let (Some(initdb), Some(pg_ctl)) = (find_bin("initdb"), find_bin("pg_ctl")) else {
        panic!(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or under \
             /usr/lib/postgresql/*/bin. Install them (Debian: apt-get install postgresql) or \
             point TAIZHANG_PG_BIN at their directory. .ci/run installs them."
        );
    };
    let runner = std::os::unix::process::parent_id();
    let root = std::env::temp_dir().join(format!("taizhang-test-pg-{runner}"));
    fs::create_dir_all(&root).expect("create the cluster directory");
    fs::set_permissions(&root, fs::Permissions::from_mode(0o777))
        .expect("chmod the cluster directory");
    let lock = File::create(root.join("lock")).expect("create the lock file");
    lock.lock().expect("lock the cluster directory");
    let data = root.join("data");
    let ready = root.join("ready");
    if !ready.exists() {
        let _ = fs::remove_dir_all(&data);
        fs::create_dir_all(&data).expect("create the data directory");
        chown_to_postgres(&data);
        let mut init = pg_command(&initdb);
        init.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        run(init, "initdb");
        // Durability is irrelevant for a throwaway cluster; speed is not.
        let mut options = format!(
            "-k {} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400",
            root.display()
        );
        // Statement counts for the benches (the soak's statements per check-in), where the
        // server has the module (Debian's postgresql package does).
        // (`initdb` may be a link on PATH to `…/postgresql/15/bin/initdb`.)
        let bin = fs::canonicalize(&initdb).unwrap_or_else(|_| initdb.clone());
        let lib = bin.parent().and_then(Path::parent).map(|d| d.join("lib"));
        if lib.is_some_and(|d| d.join("pg_stat_statements.so").exists()) {
            options.push_str(" -c shared_preload_libraries=pg_stat_statements");
        }
        let mut ctl = pg_command(&pg_ctl);
        ctl.arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(options)
            .arg("-l")
            .arg(root.join("server.log"))
            .args(["-w", "start"]);
        run(ctl, "pg_ctl start");
        let stop = if is_root() {
            format!(
                "runuser -u postgres -- {} -D {} -m immediate stop",
                pg_ctl.display(),
                data.display()
            )
        } else {
            format!(
                "{} -D {} -m immediate stop",
                pg_ctl.display(),
                data.display()
            )
        };
        when_runner_exits(&format!(
            "{stop} >/dev/null 2>&1; rm -rf {}",
            root.display()
        ));
        create_template(&root);
        File::create(&ready)
            .and_then(|mut f| f.write_all(b"ready"))
            .expect("mark the cluster ready");
    }
    Cluster { socket_dir: root }
}

fn url(socket_dir: &Path, database: &str) -> String {
    format!(
        "postgresql://postgres@/{database}?host={}",
        socket_dir.display()
    )
}

fn create_template(root: &Path) {
    let mut admin =
        PgConnection::establish(&url(root, "postgres")).expect("connect to the test cluster");
    admin
        .batch_execute(&format!("CREATE DATABASE {TEMPLATE}"))
        .expect("create the template database");
    let db = taizhang::db::DatabaseUrl::parse(&url(root, TEMPLATE)).expect("url");
    let mut conn = db.establish().expect("connect to the template");
    taizhang::db::migrations::run_pending(&mut conn).expect("migrate the template");
    taizhang::villages::fixtures::load(&mut conn).expect("load fixtures into the template");
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// A new, empty-but-migrated database with the village fixtures; returns its URL.
pub fn fresh_database() -> String {
    let cluster = CLUSTER.get_or_init(start);
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::establish(&url(&cluster.socket_dir, "postgres"))
        .expect("connect to the test cluster");
    admin
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
        .expect("create a test database");
    url(&cluster.socket_dir, &name)
}

/// What PostgreSQL did in one database (`pg_stat_database`, the WAL position and, when the
/// cluster loads it, `pg_stat_statements`), for a bench to turn into per-item costs. `items` is
/// the count of what the bench stores, read at each reading.
#[derive(diesel::QueryableByName, Default, Clone, Copy)]
pub struct Activity {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    statements: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    commits: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    rows_written: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    rows_read: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    wal_bytes: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    items: i64,
}

impl Activity {
    /// A reading now; `items` is a query of one `bigint`, e.g. `SELECT count(*) FROM checkins`.
    pub fn read(conn: &mut PgConnection, items: &str) -> anyhow::Result<Self> {
        use diesel::RunQueryDsl;
        // The statistics of this transaction's own queries are not in yet: a fresh snapshot.
        diesel::sql_query("SELECT pg_stat_clear_snapshot()").execute(conn)?;
        let statements = if Self::counts_statements(conn)? {
            "(SELECT COALESCE(sum(calls), 0) FROM pg_stat_statements s \
              JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database())::bigint"
        } else {
            "0::bigint"
        };
        Ok(diesel::sql_query(format!(
            "SELECT {statements} AS statements, xact_commit AS commits, \
                    (tup_inserted + tup_updated + tup_deleted) AS rows_written, \
                    (tup_returned + tup_fetched) AS rows_read, \
                    pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS wal_bytes, \
                    ({items})::bigint AS items \
             FROM pg_stat_database WHERE datname = current_database()"
        ))
        .get_result(conn)?)
    }

    /// Whether the cluster loads `pg_stat_statements` (the test cluster does where the server
    /// has the module); without it the extension's view cannot be read.
    fn counts_statements(conn: &mut PgConnection) -> anyhow::Result<bool> {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Loaded {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            loaded: bool,
        }
        let row: Loaded = diesel::sql_query(
            "SELECT current_setting('shared_preload_libraries') LIKE '%pg_stat_statements%' \
                    AND to_regclass('pg_stat_statements') IS NOT NULL AS loaded",
        )
        .get_result(conn)?;
        Ok(row.loaded)
    }

    /// Starts counting in the database at `url`: the extension made, its counts reset.
    pub fn start(url: &str, items: &str) -> anyhow::Result<(PgConnection, Self)> {
        let mut conn = PgConnection::establish(url)?;
        conn.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
        if Self::counts_statements(&mut conn)? {
            conn.batch_execute("SELECT pg_stat_statements_reset()")?;
        } else {
            eprintln!("no statement counts: the cluster does not load pg_stat_statements");
        }
        let before = Self::read(&mut conn, items)?;
        Ok((conn, before))
    }

    /// Statements (round trips), commits, rows and WAL per item stored since `before`.
    pub fn per_item(self, before: Self) -> String {
        let n = (self.items - before.items).max(1) as f64;
        let per = |after: i64, before: i64| (after - before) as f64 / n;
        let statements = if self.statements > 0 {
            format!("{:.1}", per(self.statements, before.statements))
        } else {
            "(not counted)".into()
        };
        format!(
            "{statements} statements (round trips), {:.2} commits, {:.1} rows written, \
             {:.0} rows read, {:.1} KiB of WAL",
            per(self.commits, before.commits),
            per(self.rows_written, before.rows_written),
            per(self.rows_read, before.rows_read),
            per(self.wal_bytes, before.wal_bytes) / 1024.0,
        )
    }

    /// The statements run most often since the counts were reset, with their calls per item
    /// and mean time: where a bench's round trips go.
    pub fn top_statements(
        conn: &mut PgConnection,
        items: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<String>> {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Top {
            #[diesel(sql_type = diesel::sql_types::Double)]
            calls: f64,
            #[diesel(sql_type = diesel::sql_types::Double)]
            mean_ms: f64,
            #[diesel(sql_type = diesel::sql_types::Text)]
            query: String,
        }
        if !Self::counts_statements(conn)? {
            return Ok(Vec::new());
        }
        let rows: Vec<Top> = diesel::sql_query(format!(
            "SELECT calls::float8 AS calls, mean_exec_time AS mean_ms, \
                    left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query \
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
             WHERE d.datname = current_database() ORDER BY calls DESC LIMIT {limit}"
        ))
        .load(conn)?;
        let n = items.max(1) as f64;
        let mut lines: Vec<String> = rows
            .into_iter()
            .map(|r| format!("{:6.2}/item {:7.3} ms  {}", r.calls / n, r.mean_ms, r.query))
            .collect();
        // And the tables read row by row: where the rows read go.
        #[derive(diesel::QueryableByName)]
        struct Scanned {
            #[diesel(sql_type = diesel::sql_types::Text)]
            relname: String,
            #[diesel(sql_type = diesel::sql_types::Double)]
            seq_rows: f64,
            #[diesel(sql_type = diesel::sql_types::Double)]
            idx_rows: f64,
        }
        let scanned: Vec<Scanned> = diesel::sql_query(
            "SELECT relname::text AS relname, COALESCE(seq_tup_read, 0)::float8 AS seq_rows, \
                    COALESCE(idx_tup_fetch, 0)::float8 AS idx_rows \
             FROM pg_stat_user_tables ORDER BY seq_tup_read + COALESCE(idx_tup_fetch, 0) DESC LIMIT 6",
        )
        .load(conn)?;
        for t in scanned {
            lines.push(format!(
                "{}: {:.0} rows read in sequence, {:.0} by index, per item (whole run)",
                t.relname,
                t.seq_rows / n,
                t.idx_rows / n
            ));
        }
        Ok(lines)
    }
}
