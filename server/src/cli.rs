//! The command line: `taizhang serve | migrate | user add|list|set|reset | openapi`.
//!
//! Every option can also come from a `TAIZHANG_*` environment variable. Secrets never come from
//! flags (they would show in `ps` and shell history): the master key comes from
//! `TAIZHANG_SECRET_KEY` or the file `--secret-key-file` names, a new user's password from
//! `TAIZHANG_USER_PASSWORD` or `--password-file`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::config::Settings;
use crate::db::{default_sqlite_path, DatabaseUrl};
use crate::domain::{Month, Role};
use crate::photos::PhotoStoreConfig;
use crate::secrets::SecretSource;
use crate::startup::{prepare, require_existing, Application};
use crate::telemetry::{self, LogFormat};
use crate::users::{self, NewUserInput};

#[derive(Debug, Parser)]
#[command(
    name = "taizhang",
    version,
    about = "台账: field data collection and the village employment demand ledger"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (migrations and the village fixtures are applied first).
    Serve(ServeArgs),
    /// Apply migrations and load the village fixtures, then exit.
    Migrate(DbArgs),
    /// Manage user accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Generate realistic survey data at city scale into the database (benchmarks, trying the
    /// ledger). Deterministic from --seed.
    Seed(SeedArgs),
    /// Play a month of village work against a running server over HTTP, then check the
    /// server against the simulator's ground truth (exit 1 on any difference).
    Simulate(crate::simulate::SimulateArgs),
    /// Check the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Copy the embedded database (consistently, while the server runs), the photos on disk and
    /// a manifest into an empty directory. The secret key is not copied: keep it apart.
    Backup(BackupArgs),
    /// Restore a backup into an empty data directory, with the key it was made with
    /// (TAIZHANG_SECRET_KEY or --secret-key-file), checked before anything is written.
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
struct BackupArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The backup directory: new, or empty.
    #[arg(long)]
    to: PathBuf,
    /// The server's photo store (as `serve --photo-store`; default DATA_DIR/photos). An S3
    /// bucket is not copied: back it up by the store's own means.
    #[arg(long, env = "TAIZHANG_PHOTO_STORE")]
    photo_store: Option<String>,
}

#[derive(Debug, Args)]
struct RestoreArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The backup directory `taizhang backup --to` made.
    #[arg(long)]
    from: PathBuf,
    /// Where the restored photos go (a directory; default DATA_DIR/photos).
    #[arg(long, env = "TAIZHANG_PHOTO_STORE")]
    photo_store: Option<String>,
    /// Do not write the key into DATA_DIR/secret.key (the server gets it from
    /// TAIZHANG_SECRET_KEY or a key file elsewhere).
    #[arg(long)]
    no_key_file: bool,
}

#[derive(Debug, Args)]
struct SeedArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Households to generate (the city has about 100 000).
    #[arg(long, default_value_t = 100_000)]
    households: usize,
    /// Months of surveys, from --start.
    #[arg(long, default_value_t = 12)]
    months: usize,
    /// First month, YYYY-MM.
    #[arg(long, default_value = "2020-01", value_parser = parse_month)]
    start: Month,
    /// Random seed: the same seed makes the same data.
    #[arg(long, default_value_t = 2020)]
    seed: u64,
    /// Add to a database that already holds surveys (otherwise refused).
    #[arg(long)]
    append: bool,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the hash chain of the audit log: exit 0 when every entry is present and unaltered,
    /// 1 naming the first broken entry otherwise.
    Verify(DbArgs),
}

#[derive(Debug, Args)]
struct DbArgs {
    /// Directory for the embedded database, the generated secret key and photos.
    #[arg(long, env = "TAIZHANG_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL, or a SQLite path (default: DATA_DIR/taizhang.sqlite3).
    #[arg(long, env = "TAIZHANG_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// File holding the master secret key (otherwise TAIZHANG_SECRET_KEY, otherwise
    /// DATA_DIR/secret.key, generated on first start).
    #[arg(long, env = "TAIZHANG_SECRET_KEY_FILE")]
    secret_key_file: Option<PathBuf>,
    /// Database connections per server process.
    #[arg(long, env = "TAIZHANG_DB_POOL_SIZE", default_value_t = 16)]
    db_pool_size: u32,
    /// Log format.
    #[arg(long, env = "TAIZHANG_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Address to listen on.
    #[arg(long, env = "TAIZHANG_BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    /// Create the demo users of fixtures/demo_users.json and print them; on an empty database,
    /// also generate surveys of the last three months to review (see --demo-households).
    #[arg(long, env = "TAIZHANG_DEMO")]
    demo: bool,
    /// Households generated for --demo when the database has no surveys yet.
    #[arg(long, env = "TAIZHANG_DEMO_HOUSEHOLDS", default_value_t = 1500)]
    demo_households: usize,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "TAIZHANG_WORKERS")]
    workers: Option<usize>,
    /// Largest JSON request body, in bytes.
    #[arg(long, env = "TAIZHANG_JSON_LIMIT_BYTES", default_value_t = 1024 * 1024)]
    json_limit_bytes: usize,
    /// Take client addresses (and https) from Forwarded/X-Forwarded-* (only behind a trusted
    /// proxy).
    #[arg(long, env = "TAIZHANG_TRUST_PROXY_HEADERS")]
    trust_proxy_headers: bool,
    /// Seconds a request body may take before it must keep up --body-min-bytes-per-sec.
    #[arg(long, env = "TAIZHANG_BODY_TIMEOUT_SECS", default_value_t = 20)]
    body_timeout_secs: u64,
    /// Bytes a second a request body must average after --body-timeout-secs (408 when slower).
    #[arg(long, env = "TAIZHANG_BODY_MIN_BYTES_PER_SEC", default_value_t = 500)]
    body_min_bytes_per_sec: u64,
    /// Seconds any request body may take at most.
    #[arg(long, env = "TAIZHANG_BODY_MAX_SECS", default_value_t = 600)]
    body_max_secs: u64,
    /// Requests one client address may have in flight at once (429 beyond).
    #[arg(long, env = "TAIZHANG_MAX_REQUESTS_PER_ADDR", default_value_t = 64)]
    max_requests_per_addr: usize,
    /// Where photos are stored: a directory, file:///dir or s3://bucket/prefix (S3 settings from
    /// AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY). Default:
    /// DATA_DIR/photos.
    #[arg(long, env = "TAIZHANG_PHOTO_STORE")]
    photo_store: Option<String>,
    /// Largest photo upload, in bytes.
    #[arg(long, env = "TAIZHANG_PHOTO_MAX_BYTES", default_value_t = 15 * 1024 * 1024)]
    photo_max_bytes: usize,
    /// Largest photo, in pixels (width × height), checked from the header before decoding.
    #[arg(long, env = "TAIZHANG_PHOTO_MAX_PIXELS", default_value_t = 50_000_000)]
    photo_max_pixels: u64,
    /// Largest estimated decode memory of one photo, in bytes (progressive JPEGs need about 3
    /// bytes a pixel; baseline ones a few MB whatever their size).
    #[arg(long, env = "TAIZHANG_PHOTO_MAX_DECODE_BYTES", default_value_t = 128 << 20)]
    photo_max_decode_bytes: u64,
    /// Decode memory of all photos being decoded at once, in bytes; past it, uploads and
    /// thumbnails wait briefly, then get 503.
    #[arg(long, env = "TAIZHANG_PHOTO_DECODE_BUDGET_BYTES", default_value_t = 256 << 20)]
    photo_decode_budget_bytes: u64,
    /// Check-ins with a worse reported accuracy are flagged `poor_accuracy` (metres).
    #[arg(long, env = "TAIZHANG_CHECKIN_MAX_ACCURACY_M", default_value_t = 100.0)]
    checkin_max_accuracy_m: f64,
    /// Check-ins arriving later than this after capture are flagged `stale_time` (days).
    #[arg(long, env = "TAIZHANG_CHECKIN_UPLOAD_WINDOW_DAYS", default_value_t = 7)]
    checkin_upload_window_days: u64,
    /// Speed between a person's consecutive check-ins above which travel is impossible (km/h).
    #[arg(long, env = "TAIZHANG_CHECKIN_MAX_SPEED_KMH", default_value_t = 150.0)]
    checkin_max_speed_kmh: f64,
    /// Perceptual-hash distance (bits of 64) at or below which a check-in photo is reused.
    #[arg(long, env = "TAIZHANG_PHOTO_REUSE_BITS", default_value_t = crate::photos::REUSE_THRESHOLD)]
    photo_reuse_bits: u32,
    /// Days a month a first secretary must be present.
    #[arg(
        long,
        env = "TAIZHANG_REQUIRED_DAYS_FIRST_SECRETARY",
        default_value_t = 20
    )]
    required_days_first_secretary: u32,
    /// Days a month an enumerator must be present.
    #[arg(long, env = "TAIZHANG_REQUIRED_DAYS_ENUMERATOR", default_value_t = 20)]
    required_days_enumerator: u32,
    /// Days a month a special-post worker must be present.
    #[arg(
        long,
        env = "TAIZHANG_REQUIRED_DAYS_SPECIAL_POST",
        default_value_t = 20
    )]
    required_days_special_post: u32,
    /// A temporary public-welfare post's full monthly subsidy, in yuan (800: 吉人社函〔2020〕28号,
    /// as the city's notice says).
    #[arg(
        long,
        env = "TAIZHANG_TEMPORARY_POST_MONTHLY_YUAN",
        default_value_t = 800
    )]
    temporary_post_monthly_yuan: u32,
    /// A poverty special post's full monthly subsidy, in yuan. The notice gives no figure (it
    /// defers to 吉扶办〔2020〕4号): 800 until the city sets its own.
    #[arg(
        long,
        env = "TAIZHANG_SPECIAL_POST_MONTHLY_YUAN",
        default_value_t = 800
    )]
    special_post_monthly_yuan: u32,
    /// How the subsidy follows attendance: `prorated` (monthly × attended ÷ required, capped at
    /// the monthly amount) or `all_or_nothing` (the full amount once the days required are met).
    #[arg(long, env = "TAIZHANG_SUBSIDY_METHOD", default_value = "prorated", value_parser = ["prorated", "all_or_nothing"])]
    subsidy_method: String,
    /// Seconds between rounds of recomputing, in the background, the ledger figures of villages
    /// that changed (current and previous month); 0 leaves it to the readers.
    #[arg(long, env = "TAIZHANG_LEDGER_WARM_SECS", default_value_t = 5)]
    ledger_warm_secs: u64,
    /// Seconds in-flight requests may take to finish on shutdown.
    #[arg(long, env = "TAIZHANG_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    shutdown_timeout_secs: u64,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user. The password comes from TAIZHANG_USER_PASSWORD or --password-file.
    Add(UserAddArgs),
    /// List users (phone, name, role, county, villages, state).
    List(UserListArgs),
    /// Change a user's name, villages, county or whether active (as PATCH /api/v1/users/{id}).
    Set(UserSetArgs),
    /// Reset a user's password: prints a one-time password the user must change at next login.
    Reset(UserResetArgs),
}

#[derive(Debug, Args)]
struct UserListArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Only this county (12-digit code).
    #[arg(long)]
    county: Option<String>,
    /// Only this role.
    #[arg(long, value_parser = parse_role)]
    role: Option<Role>,
    /// Only active (true) or deactivated (false) accounts.
    #[arg(long)]
    active: Option<bool>,
}

#[derive(Debug, Args)]
struct UserSetArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The user's phone number.
    #[arg(long)]
    phone: String,
    #[arg(long)]
    name: Option<String>,
    /// 12-digit county code (county reviewers).
    #[arg(long)]
    county: Option<String>,
    /// Every village of the user; repeat for several. A village another user of the same role
    /// holds is handed over.
    #[arg(long = "village")]
    villages: Vec<String>,
    /// false deactivates (ending every session), true reactivates.
    #[arg(long)]
    active: Option<bool>,
    /// Why, for the audit log.
    #[arg(long)]
    reason: Option<String>,
}

#[derive(Debug, Args)]
struct UserResetArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The user's phone number.
    #[arg(long)]
    phone: String,
}

#[derive(Debug, Args)]
struct UserAddArgs {
    #[command(flatten)]
    db: DbArgs,
    #[arg(long)]
    phone: String,
    #[arg(long)]
    name: String,
    /// enumerator, first_secretary, county_reviewer or city_admin.
    #[arg(long, value_parser = parse_role)]
    role: Role,
    /// 12-digit county code (county reviewers).
    #[arg(long)]
    county: Option<String>,
    /// 12-digit village code; repeat for several (enumerators, first secretaries).
    #[arg(long = "village")]
    villages: Vec<String>,
    /// File holding the password (`-` reads standard input).
    #[arg(long, env = "TAIZHANG_USER_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
}

fn parse_month(value: &str) -> Result<Month, String> {
    Month::parse(value).map_err(|e| e.message)
}

fn parse_role(value: &str) -> Result<Role, String> {
    Role::parse(value).ok_or_else(|| {
        let all: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("expected one of {}", all.join(", "))
    })
}

impl DbArgs {
    fn settings(&self) -> anyhow::Result<Settings> {
        let mut settings = Settings::new(&self.data_dir);
        settings.database = match &self.database_url {
            Some(url) => DatabaseUrl::parse(url).map_err(anyhow::Error::msg)?,
            None => DatabaseUrl::Sqlite(default_sqlite_path(&self.data_dir)),
        };
        settings.secret = match (&self.secret_key_file, std::env::var("TAIZHANG_SECRET_KEY")) {
            (Some(path), _) => SecretSource::File(path.clone()),
            (None, Ok(value)) if !value.trim().is_empty() => SecretSource::Value(value),
            _ => SecretSource::DataDir,
        };
        settings.db_pool_size = self.db_pool_size.max(1);
        Ok(settings)
    }
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Serve(args) => args.db.log_format,
        Command::Migrate(db) => db.log_format,
        Command::User { command } => match command {
            UserCommand::Add(args) => args.db.log_format,
            UserCommand::List(args) => args.db.log_format,
            UserCommand::Set(args) => args.db.log_format,
            UserCommand::Reset(args) => args.db.log_format,
        },
        Command::Openapi => LogFormat::Text,
        Command::Audit {
            command: AuditCommand::Verify(db),
        } => db.log_format,
        Command::Seed(args) => args.db.log_format,
        Command::Simulate(_) => LogFormat::Text,
        Command::Backup(args) => args.db.log_format,
        Command::Restore(args) => args.db.log_format,
    };
    telemetry::init(format);
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("taizhang: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args),
        Command::Migrate(db) => {
            let settings = db.settings()?;
            let prepared = prepare(&settings)?;
            println!(
                "database {} is up to date ({} migrations applied now, {} villages loaded now)",
                settings.database.redacted(),
                prepared.migrations_applied.len(),
                prepared.villages_loaded
            );
            Ok(())
        }
        Command::User { command } => match command {
            UserCommand::Add(args) => add_user(args),
            UserCommand::List(args) => list_users(args),
            UserCommand::Set(args) => set_user(args),
            UserCommand::Reset(args) => reset_user(args),
        },
        Command::Openapi => {
            print!("{}", crate::openapi::to_json(&crate::openapi::document()));
            Ok(())
        }
        Command::Seed(args) => seed(args),
        Command::Simulate(args) => crate::simulate::main(args),
        Command::Audit {
            command: AuditCommand::Verify(db),
        } => {
            let settings = db.settings()?;
            require_existing(&settings.database)?;
            let prepared = prepare(&settings)?;
            let mut conn = prepared.db.get()?;
            let entries = crate::audit::verify(&mut conn)?;
            println!("the audit chain is intact: {entries} entries");
            Ok(())
        }
        Command::Backup(args) => backup(args),
        Command::Restore(args) => restore(args),
    }
}

/// `--photo-store` as `serve` reads it; the default is DATA_DIR/photos.
fn photo_store(arg: Option<&str>, data_dir: &std::path::Path) -> anyhow::Result<PhotoStoreConfig> {
    match arg {
        Some(url) => PhotoStoreConfig::parse(url, |name| {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        }),
        None => Ok(crate::photos::PhotoSettings::new(data_dir).store),
    }
}

fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let settings = args.db.settings()?;
    let store = photo_store(args.photo_store.as_deref(), &settings.data_dir)?;
    let manifest = crate::backup::backup(&settings.database, &store, &args.to)?;
    let c = &manifest.counts;
    println!(
        "backed up {} into {}: {} users, {} households, {} household surveys, {} post-demand \
         surveys, {} check-ins, {} audit entries; {} photo files ({}); key fingerprint {}",
        settings.database.redacted(),
        args.to.display(),
        c.users,
        c.households,
        c.household_surveys,
        c.village_surveys,
        c.checkins,
        c.audit_log,
        manifest.photos.files,
        manifest.photos.store,
        manifest.key_fingerprint
    );
    println!("the secret key is not in the backup: keep it apart, restore needs it");
    Ok(())
}

fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let settings = args.db.settings()?;
    let store = photo_store(args.photo_store.as_deref(), &settings.data_dir)?;
    let manifest = crate::backup::restore(
        &args.from,
        &crate::backup::RestoreTarget {
            data_dir: &settings.data_dir,
            database: &settings.database,
            store: &store,
            secret: &settings.secret,
            write_key_file: !args.no_key_file,
        },
    )?;
    println!(
        "restored the backup of {} ({} household surveys, {} audit entries, {} photo files) into \
         {}; key fingerprint {}",
        manifest.created_at,
        manifest.counts.household_surveys,
        manifest.counts.audit_log,
        manifest.photos.files,
        settings.data_dir.display(),
        manifest.key_fingerprint
    );
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut settings = args.db.settings()?;
    settings.bind = args.bind;
    settings.demo = args.demo;
    settings.demo_households = args.demo_households;
    settings.workers = args.workers;
    settings.json_limit = args.json_limit_bytes;
    settings.trust_proxy_headers = args.trust_proxy_headers;
    settings.http.body_grace = Duration::from_secs(args.body_timeout_secs);
    settings.http.body_min_rate = args.body_min_bytes_per_sec.max(1);
    settings.http.body_max_time = Duration::from_secs(args.body_max_secs);
    settings.http.max_in_flight_per_addr = args.max_requests_per_addr.max(1);
    settings.shutdown_timeout = Duration::from_secs(args.shutdown_timeout_secs);
    settings.ledger_warm_interval =
        (args.ledger_warm_secs > 0).then(|| Duration::from_secs(args.ledger_warm_secs));
    settings.checkins.max_accuracy_m = args.checkin_max_accuracy_m;
    settings.checkins.upload_window =
        Duration::from_secs(args.checkin_upload_window_days * 24 * 3600);
    settings.checkins.max_speed_kmh = args.checkin_max_speed_kmh;
    settings.checkins.photo_reuse_bits = args.photo_reuse_bits.min(64);
    settings.checkins.required_days_first_secretary = args.required_days_first_secretary;
    settings.checkins.required_days_enumerator = args.required_days_enumerator;
    settings.checkins.required_days_special_post = args.required_days_special_post;
    settings.checkins.subsidy = crate::checkins::policy::SubsidyRule {
        temporary_post_monthly_fen: i64::from(args.temporary_post_monthly_yuan) * 100,
        special_post_monthly_fen: i64::from(args.special_post_monthly_yuan) * 100,
        method: crate::domain::SubsidyMethod::parse(&args.subsidy_method)
            .unwrap_or(crate::domain::SubsidyMethod::Prorated),
    };
    settings.photos.max_bytes = args.photo_max_bytes;
    settings.photos.max_pixels = args.photo_max_pixels;
    settings.photos.max_decode_bytes = args.photo_max_decode_bytes;
    settings.photos.decode_budget_bytes = args.photo_decode_budget_bytes;
    if let Some(url) = &args.photo_store {
        settings.photos.store = PhotoStoreConfig::parse(url, |name| {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        })?;
    }

    actix_web::rt::System::new().block_on(async move {
        let prepare_settings = settings.clone();
        let mut prepared =
            tokio::task::spawn_blocking(move || prepare(&prepare_settings)).await??;
        tracing::info!(
            database = %settings.database.redacted(),
            migrations_applied = prepared.migrations_applied.len(),
            villages_loaded = prepared.villages_loaded,
            photo_store = %settings.photos.store.describe(),
            "database ready"
        );
        let demo_users = std::mem::take(&mut prepared.demo_users);
        let demo_surveys = prepared.demo_surveys.take();
        let demo_field_work = prepared.demo_field_work;
        let app = Application::build_prepared(settings.clone(), prepared)?;
        let host = settings
            .bind
            .rsplit_once(':')
            .map_or(settings.bind.as_str(), |(host, _)| host);
        // The port bound (`--bind …:0` picks one), so the addresses printed can be opened.
        let address = format!("{host}:{}", app.port());
        if settings.demo {
            print_demo_users(&demo_users, &address);
            if let Some(seeded) = &demo_surveys {
                println!(
                    "Demo surveys: {} households in {} surveys over the last three months \
                     (about 1 in 12 awaiting review)",
                    seeded.households, seeded.surveys
                );
            }
        }
        tracing::info!(%address, "serving");
        println!("Taizhang is serving on http://{address} (Ctrl-C stops it)");
        if demo_field_work {
            start_demo_field_work(host, app.port());
        }
        app.run_until_stopped().await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Plays `--demo`'s field work against this server in the background: it needs the server
/// answering, and the console is usable meanwhile.
fn start_demo_field_work(host: &str, port: u16) {
    let host = match host {
        "0.0.0.0" | "" => "127.0.0.1",
        "[::]" => "[::1]",
        other => other,
    };
    let server = format!("http://{host}:{port}");
    // Written, not println!: whoever started the server may have stopped reading its output,
    // and a failed write must not bring the server down.
    let say = |line: &str| {
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{line}");
    };
    say("Demo field work: check-ins and surveys of eight villages over the last six days are being sent…");
    actix_web::rt::spawn(async move {
        match crate::simulate::demo_field_work(server).await {
            Ok(acked) => say(&format!("Demo field work: {acked} submissions received")),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "demo field work failed"),
        }
    });
}

fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let settings = args.db.settings()?;
    let prepared = prepare(&settings)?;
    let vault = crate::privacy::Vault::new(&prepared.keys);
    let mut conn = prepared.db.get()?;
    refuse_data_unless_append(&mut conn, args.append)?;
    let bar = indicatif::ProgressBar::new(args.households as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} 造数 {bar:40} {pos}/{len} 户 ({per_sec}, 剩余 {eta})",
        )?,
    );
    let started = std::time::Instant::now();
    let options = crate::simulate::seed::SeedOptions {
        households: args.households,
        months: args.months,
        start: args.start,
        seed: args.seed,
    };
    let done =
        crate::simulate::seed::seed(&mut conn, &vault, &options, |n| bar.set_position(n as u64))?;
    bar.finish_and_clear();
    // Compute and cache the last month's figures now, so the first reader does not wait.
    let warm = std::time::Instant::now();
    let last = crate::simulate::seed::last_month(options.start, options.months);
    crate::ledger::service::cache_inventory(
        &mut conn,
        &crate::ledger::node::NodeFilter::city(),
        last,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "cached the ledger of {last} and the month before in {:.1} s",
        warm.elapsed().as_secs_f64()
    );
    println!(
        "seeded {} households, {} people, {} household surveys ({} member rows), {} post-demand surveys in {:.1} s",
        done.households,
        done.people,
        done.surveys,
        done.members,
        done.village_surveys,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Seeding on top of surveys (an earlier seed, `--demo`'s, or real ones) mixes generated data
/// into them; only `--append` asks for that.
fn refuse_data_unless_append(
    conn: &mut crate::db::DbConnection,
    append: bool,
) -> anyhow::Result<()> {
    use crate::db::schema::{household_surveys, village_surveys};
    use diesel::prelude::*;
    let households: i64 = household_surveys::table.count().get_result(conn)?;
    let villages: i64 = village_surveys::table.count().get_result(conn)?;
    if (households > 0 || villages > 0) && !append {
        bail!(
            "the database already holds {households} household surveys and {villages} post-demand \
             surveys; seed into a new --data-dir, or add to them with --append (with another \
             --seed, so the generated people differ)"
        );
    }
    Ok(())
}

fn print_demo_users(users: &[(NewUserInput, bool)], address: &str) {
    println!("Demo users (fixtures/demo_users.json):");
    println!("  {:<13} {:<18} {:<16} scope", "phone", "password", "role");
    for (user, _) in users {
        let scope = match (&user.county, user.villages.as_slice()) {
            (Some(county), _) => format!("county {county}"),
            (None, []) => "city".to_owned(),
            (None, villages) => format!("villages {}", villages.join(", ")),
        };
        println!(
            "  {:<13} {:<18} {:<16} {scope}",
            user.phone,
            user.password,
            user.role.as_str()
        );
    }
    println!("  Log in: POST /api/v1/auth/login {{\"phone\", \"password\", \"device_id\"}}");
    println!("  Review console: http://{address}/console (a county reviewer or the city admin)");
}

fn add_user(args: UserAddArgs) -> anyhow::Result<()> {
    let password = match (&args.password_file, std::env::var("TAIZHANG_USER_PASSWORD")) {
        (Some(path), _) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            text
        }
        (Some(path), _) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        (None, Ok(value)) => value,
        (None, Err(_)) => {
            bail!("give the password in TAIZHANG_USER_PASSWORD or a file with --password-file")
        }
    };
    let settings = args.db.settings()?;
    require_existing(&settings.database)?;
    let prepared = prepare(&settings)?;
    let input = NewUserInput {
        phone: args.phone,
        name: args.name,
        role: args.role,
        county: args.county,
        villages: args.villages,
        password: password.trim_end_matches(['\r', '\n']).to_owned(),
    };
    let mut conn = prepared.db.get()?;
    let user = users::validate(&mut conn, &input).map_err(describe)?;
    let id = users::create(&mut conn, &user, None, "taizhang user add").map_err(describe)?;
    println!(
        "created {} {} ({}) with id {id}",
        user.role.as_str(),
        user.phone,
        user.name
    );
    Ok(())
}

fn list_users(args: UserListArgs) -> anyhow::Result<()> {
    let county = args
        .county
        .as_deref()
        .map(|c| crate::domain::DivisionCode::parse_level(c, crate::domain::DivisionLevel::County))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--county: {}", e.message))?;
    let filter = users::service::UserFilter {
        county,
        role: args.role,
        active: args.active,
    };
    let prepared = prepare_existing(&args.db)?;
    let mut conn = prepared.db.get()?;
    let list = users::service::query(&mut conn, None, &filter).map_err(describe)?;
    println!(
        "{:<13} {:<16} {:<12} {:<8} {:<12} villages",
        "phone", "role", "county", "state", "name"
    );
    for u in &list {
        let state = match (u.active, u.must_change_password) {
            (false, _) => "inactive",
            (true, true) => "reset",
            (true, false) => "active",
        };
        println!(
            "{:<13} {:<16} {:<12} {:<8} {:<12} {}",
            u.phone,
            u.role.as_str(),
            u.county_code.as_deref().unwrap_or("-"),
            state,
            u.name,
            u.village_codes.join(",")
        );
    }
    println!("{} users", list.len());
    Ok(())
}

fn set_user(args: UserSetArgs) -> anyhow::Result<()> {
    let changes = users::manage::UserChanges {
        name: args.name,
        villages: (!args.villages.is_empty()).then_some(args.villages),
        county: args.county,
        active: args.active,
        reason: args.reason,
    };
    let prepared = prepare_existing(&args.db)?;
    let mut conn = prepared.db.get()?;
    let id = users::manage::id_by_phone(&mut conn, &args.phone).map_err(describe)?;
    let actor = users::manage::Actor::CommandLine;
    users::manage::update(&mut conn, actor, &id, &changes, "taizhang user set")
        .map_err(describe)?;
    let u = users::service::summary(&mut conn, &id).map_err(describe)?;
    println!(
        "updated {} {} ({}): county {}, villages {}, {}",
        u.role.as_str(),
        u.phone,
        u.name,
        u.county_code.as_deref().unwrap_or("-"),
        u.village_codes.join(","),
        if u.active { "active" } else { "inactive" }
    );
    Ok(())
}

fn reset_user(args: UserResetArgs) -> anyhow::Result<()> {
    let prepared = prepare_existing(&args.db)?;
    let mut conn = prepared.db.get()?;
    let id = users::manage::id_by_phone(&mut conn, &args.phone).map_err(describe)?;
    let actor = users::manage::Actor::CommandLine;
    let password = users::manage::reset_password(&mut conn, actor, &id, "taizhang user reset")
        .map_err(describe)?;
    eprintln!(
        "reset the password of {}; every session ended; the one-time password below logs in \
         for {} hours, and the user must change it at that login",
        args.phone,
        crate::auth::password::ONE_TIME_VALID_HOURS
    );
    println!("{password}");
    Ok(())
}

/// `prepare` for commands that need the database to exist already.
fn prepare_existing(db: &DbArgs) -> anyhow::Result<crate::startup::Prepared> {
    let settings = db.settings()?;
    require_existing(&settings.database)?;
    prepare(&settings)
}

/// A validation error as lines a person at a terminal can act on.
fn describe(error: crate::error::ApiError) -> anyhow::Error {
    match error {
        crate::error::ApiError::Validation(errors) => {
            let lines: Vec<String> = errors
                .iter()
                .map(|e| format!("  {}: {} ({})", e.field, e.detail, e.rule))
                .collect();
            anyhow::anyhow!("the user is not valid:\n{}", lines.join("\n"))
        }
        other => anyhow::anyhow!("{other}"),
    }
}
