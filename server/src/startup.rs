//! Building and running the server: prepare the database (migrations, the secret-key check,
//! fixtures, demo users), bind, serve, and shut down gracefully on SIGTERM or SIGINT.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{from_fn, Compress};
use actix_web::{web, App, HttpServer};
use anyhow::{bail, Context};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use utoipa_actix_web::AppExt;

use crate::api::{self, OpenApiJson};
use crate::config::Settings;
use crate::db::{migrations, read_setting, write_setting, DatabaseUrl, Db, DbConnection};
use crate::files;
use crate::http::{self, ClientLimits, JsonLimit};
use crate::metrics::Metrics;
use crate::openapi;
use crate::photos::{DecodeBudget, PhotoStore};
use crate::privacy::Vault;
use crate::secrets::{Keys, SecretSource};
use crate::state::AppState;
use crate::users::{demo, NewUserInput};
use crate::villages::fixtures;
use crate::villages::geofences::Geofences;

/// What start-up did, for the log and for `--demo` output.
pub struct Prepared {
    pub db: Db,
    pub photos: PhotoStore,
    pub keys: Keys,
    pub migrations_applied: Vec<String>,
    pub villages_loaded: usize,
    pub demo_users: Vec<(NewUserInput, bool)>,
    /// What `--demo` generated on an empty database.
    pub demo_surveys: Option<crate::simulate::seed::Seeded>,
    /// `--demo` on a database without check-ins: the field work is to be played once serving.
    pub demo_field_work: bool,
}

const KEY_FINGERPRINT: &str = "secret_key_fingerprint";
/// Serialises start-up work across processes sharing one PostgreSQL database.
const STARTUP_LOCK: i64 = 0x7461_697a_6861_6e67; // "taizhang"

/// Opens the database and brings it up to date. Blocking: call from a blocking context.
pub fn prepare(settings: &Settings) -> anyhow::Result<Prepared> {
    // The database, its journal, the key and photos are created private to this user.
    files::restrict_new_files();
    files::create_private_dir(&settings.data_dir).with_context(|| {
        format!(
            "creating the data directory {}",
            settings.data_dir.display()
        )
    })?;
    if let DatabaseUrl::Sqlite(path) = &settings.database {
        // SQLite gives its -wal and -shm files the database file's mode.
        files::create_private_file(path)
            .with_context(|| format!("creating the database file {}", path.display()))?;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            files::make_private(std::path::Path::new(&name));
        }
    }
    if matches!(settings.secret, SecretSource::DataDir) {
        files::make_private(&settings.data_dir.join("secret.key"));
    }
    let db = Db::connect(&settings.database, settings.db_pool_size)?;
    let mut conn = db.get()?;
    let conn: &mut DbConnection = &mut conn;
    // The database's record of its key is read before any key is loaded: a database whose key
    // file is missing (a restore without it, a wrong --data-dir) must not get a fresh key written
    // beside it, and a wrong key must not migrate it.
    let recorded = stored_fingerprint(conn)?;
    let key_file = settings.data_dir.join("secret.key");
    if let (Some(recorded), SecretSource::DataDir) = (&recorded, &settings.secret) {
        if !key_file.exists() {
            bail!(
                "the database {} was set up with the secret key of fingerprint {recorded}, but \
                 {} is missing; put the original key there (or give it in TAIZHANG_SECRET_KEY or \
                 TAIZHANG_SECRET_KEY_FILE); nothing was written",
                settings.database.redacted(),
                key_file.display()
            );
        }
    }
    let keys = Keys::load(&settings.secret, &settings.data_dir)?;
    if let Some(recorded) = &recorded {
        check_fingerprint(recorded, &keys)?;
    }
    let photos = PhotoStore::open(&settings.photos.store)?;
    with_startup_lock(conn, |conn| {
        let migrations_applied = migrations::run_pending(conn)?;
        log_partitions_made(&crate::checkins::partitions::ensure_current(conn)?);
        // Again under the lock: another process may have set up a new database meanwhile.
        match read_setting(conn, KEY_FINGERPRINT)? {
            Some(stored) => check_fingerprint(&stored, &keys)?,
            None => write_setting(conn, KEY_FINGERPRINT, keys.fingerprint())?,
        }
        let villages_loaded = fixtures::load(conn)?;
        let demo_users = if settings.demo {
            demo::ensure(conn)?
        } else {
            Vec::new()
        };
        let demo_surveys = if settings.demo && settings.demo_households > 0 {
            crate::simulate::seed::ensure_demo_surveys(conn, &keys, settings.demo_households)?
        } else {
            None
        };
        let demo_field_work = settings.demo
            && settings.demo_households > 0
            && crate::db::schema::checkins::table
                .count()
                .get_result::<i64>(conn)?
                == 0;
        Ok(Prepared {
            db: db.clone(),
            photos: photos.clone(),
            keys: keys.clone(),
            migrations_applied,
            villages_loaded,
            demo_users,
            demo_surveys,
            demo_field_work,
        })
    })
}

fn check_fingerprint(recorded: &str, keys: &Keys) -> anyhow::Result<()> {
    if recorded != keys.fingerprint() {
        bail!(
            "the secret key (fingerprint {}) is not the one this database was set up with \
             (fingerprint {recorded}); start with the original TAIZHANG_SECRET_KEY or \
             TAIZHANG_SECRET_KEY_FILE",
            keys.fingerprint()
        );
    }
    Ok(())
}

/// The fingerprint of the key a database was set up with, `None` for a database never set up
/// (no `app_settings` table yet, or no fingerprint in it). Reads only.
pub fn stored_fingerprint(conn: &mut DbConnection) -> anyhow::Result<Option<String>> {
    use diesel::sql_types::Bool;
    use diesel::RunQueryDsl;
    let exists: bool = match conn {
        DbConnection::Sqlite(c) => diesel::select(diesel::dsl::sql::<Bool>(
            "EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'app_settings')",
        ))
        .get_result(c)?,
        DbConnection::Postgresql(c) => diesel::select(diesel::dsl::sql::<Bool>(
            "to_regclass('app_settings') IS NOT NULL",
        ))
        .get_result(c)?,
    };
    if !exists {
        return Ok(None);
    }
    Ok(read_setting(conn, KEY_FINGERPRINT)?)
}

/// For commands that work on an existing database (`user …`, `audit verify`, `backup`): refuses,
/// before anything is created, a database that does not exist or was never set up, which is
/// what a missing or mistyped `--data-dir` (or a command run from another folder) finds.
pub fn require_existing(database: &DatabaseUrl) -> anyhow::Result<String> {
    const HOW: &str = "run it where the data directory is, or give --data-dir or \
                       TAIZHANG_DATABASE_URL; `taizhang migrate` or `taizhang serve` sets up a new one";
    if let DatabaseUrl::Sqlite(path) = database {
        if !path.is_file() {
            bail!("there is no database at {}: {HOW}", path.display());
        }
    }
    let mut conn = database
        .establish()
        .with_context(|| format!("opening the database {}", database.redacted()))?;
    match stored_fingerprint(&mut conn)? {
        Some(fingerprint) => Ok(fingerprint),
        None => bail!(
            "the database {} has never been set up: {HOW}",
            database.redacted()
        ),
    }
}

/// Runs `f` holding a PostgreSQL advisory lock, so that servers starting together migrate and
/// load fixtures one after another. SQLite serialises writers by itself.
fn with_startup_lock<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let postgres = matches!(conn, DbConnection::Postgresql(_));
    if postgres {
        conn.batch_execute(&format!("SELECT pg_advisory_lock({STARTUP_LOCK})"))?;
    }
    let result = f(conn);
    if postgres {
        conn.batch_execute(&format!("SELECT pg_advisory_unlock({STARTUP_LOCK})"))?;
    }
    result
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    signals: ShutdownSignals,
}

impl Application {
    /// Prepares the database and binds the listener; serving starts with
    /// [`Application::run_until_stopped`].
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let prepare_settings = settings.clone();
        let prepared = tokio::task::spawn_blocking(move || prepare(&prepare_settings))
            .await
            .context("start-up task")??;
        Self::build_prepared(settings, prepared)
    }

    pub fn build_prepared(settings: Settings, prepared: Prepared) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&settings.bind)
            .with_context(|| format!("binding {}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState {
            db: prepared.db,
            photos: prepared.photos.clone(),
            decode_budget: DecodeBudget::new(
                settings.photos.decode_budget_bytes,
                crate::photos::budget::WAIT,
            ),
            vault: Vault::new(&prepared.keys),
            geofences: Geofences::default(),
            keys: prepared.keys,
            metrics: Arc::new(Metrics::new(prepared.photos.errors())),
            settings: settings.clone(),
        });
        let doc = web::Data::new(OpenApiJson(openapi::to_json(&openapi::document())));
        let json_limit = JsonLimit(settings.json_limit);
        // One count of requests in flight per address for all workers.
        let client_limits = web::Data::new(ClientLimits::new(
            settings.http.clone(),
            settings.trust_proxy_headers,
        ));
        let metrics = web::Data::from(state.metrics.clone());
        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            let (app, _) = api::configure(App::new().into_utoipa_app()).split_for_parts();
            app.app_data(app_state.clone())
                .app_data(metrics.clone())
                .app_data(doc.clone())
                .app_data(json_limit)
                .app_data(client_limits.clone())
                .configure(crate::console::configure)
                .default_service(web::to(http::fallback))
                // Inside `observe`, so a refusal has its request id and log line.
                .wrap(from_fn(http::refuse_control_characters))
                // Village lists with geofences are megabytes of JSON; phones are on slow links.
                .wrap(Compress::default())
                .wrap(from_fn(http::limit))
                .wrap(from_fn(http::security_headers))
                .wrap(from_fn(http::observe))
        })
        // The request head (a few hundred bytes) may need retransmissions on a weak link; the
        // body has its own, size-aware deadline (`http::limits`).
        .client_request_timeout(Duration::from_secs(10))
        // Long enough for an app's burst (a photo, then the submission naming it) to share a
        // connection; idle connections close soon after.
        .keep_alive(Duration::from_secs(15))
        // After an early answer (408, 413, 429) the rest of the body is read and discarded for
        // this long, so the client sees the answer instead of a reset, then the connection closes.
        .client_disconnect_timeout(Duration::from_secs(2))
        .listen(listener)?
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        // Signals are handled in `run_until_stopped`, for a graceful stop on both.
        .disable_signals();
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        Ok(Self {
            port,
            server: server.run(),
            state,
            // Installed before anyone learns the address, so an early SIGTERM is never fatal.
            signals: ShutdownSignals::install(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone().into_inner()
    }

    /// Serves until SIGTERM or SIGINT, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let warmer = self
            .state
            .settings
            .ledger_warm_interval
            .map(|every| tokio::spawn(warm_ledger_forever(self.state.clone(), every)));
        // SQLite keeps one table: nothing to make ahead.
        let partitioner = (self.state.db.backend() == crate::db::Backend::Postgres)
            .then(|| tokio::spawn(partition_ahead_forever(self.state.clone())));
        let signals = self.signals;
        tokio::spawn(async move {
            signals.wait().await;
            tracing::info!("shutting down: finishing in-flight requests");
            handle.stop(true).await;
        });
        let served = self.server.await;
        if let Some(warmer) = warmer {
            warmer.abort();
        }
        if let Some(partitioner) = partitioner {
            partitioner.abort();
        }
        served
    }
}

/// SIGTERM and SIGINT listeners, registered as soon as they are made.
struct ShutdownSignals {
    #[cfg(unix)]
    streams: Vec<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let streams = [SignalKind::terminate(), SignalKind::interrupt()]
                .into_iter()
                .filter_map(|kind| {
                    signal(kind)
                        .map_err(
                            |error| tracing::warn!(%error, "cannot listen for a shutdown signal"),
                        )
                        .ok()
                })
                .collect();
            Self { streams }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        {
            let waits = self
                .streams
                .into_iter()
                .map(|mut s| Box::pin(async move { s.recv().await }));
            if waits.len() == 0 {
                std::future::pending::<()>().await;
            }
            futures_util::future::select_all(waits).await;
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Creates the coming months' check-in partitions every hour (start-up made the first ones), so
/// a server that runs for months never meets a month without its partition. Runs until dropped.
async fn partition_ahead_forever(state: actix_web::web::Data<AppState>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(3600));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match crate::checkins::partitions::ensure_current_async(&state.db).await {
            Ok(created) => log_partitions_made(&created),
            Err(e) => tracing::warn!(error = %e, "creating check-in partitions"),
        }
    }
}

/// What start-up and the hourly round say when they made partitions (nothing when none).
fn log_partitions_made(months: &[crate::domain::Month]) {
    if months.is_empty() {
        return;
    }
    let months = months
        .iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    tracing::info!(%months, "created the check-in partitions of these months");
}

/// Keeps the cached ledger figures of the current and previous month fresh: every `interval`,
/// one round of `ledger::service::warm` recomputes and stores the villages changed since their
/// figures were cached, so a reader after a busy day rarely computes anything. A round that
/// finds nothing to recompute tells the metrics the ledger is fresh. Runs until dropped.
async fn warm_ledger_forever(state: actix_web::web::Data<AppState>, interval: std::time::Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match crate::ledger::service::warm(&state.db).await {
            Ok(true) => state.metrics.ledger_fresh(),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "ledger warmer"),
        }
    }
}
