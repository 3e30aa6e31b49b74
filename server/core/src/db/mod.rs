//! Database access for both backends through one connection type.
//!
//! Queries are written once against [`DbConnection`] (diesel's `MultiConnection`); the backend
//! is chosen from the URL scheme, never by trying each in turn. Diesel is synchronous, so every
//! query runs on tokio's blocking pool through [`Db::run`], never on an actix worker thread.

/// Executes `$query` on the concrete connection behind a [`DbConnection`]: for statements
/// spelt the same on both backends that diesel's multi-backend connection does not build
/// (`ON CONFLICT`, multi-row inserts).
#[macro_export]
macro_rules! execute_on_backend {
    ($conn:expr, $query:expr) => {{
        let query = $query;
        match $conn {
            $crate::db::DbConnection::Sqlite(c) => diesel::RunQueryDsl::execute(query, c),
            $crate::db::DbConnection::Postgresql(c) => diesel::RunQueryDsl::execute(query, c),
        }
    }};
}

mod connection;
mod group_commit;
pub mod migrations;
pub mod schema;

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::r2d2::{Pool, PooledConnection};
use diesel::Connection;

pub use connection::{Backend, ConnectionManager, DatabaseUrl, DbConnection};
pub use group_commit::{lost_a_race, Paused, StatsReading as GroupCommitStats, MAX_BATCH};

use group_commit::GroupCommit;

use crate::error::ApiError;

/// A pool of connections to one database, cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool<ConnectionManager>,
    backend: Backend,
    /// SQLite admits one writer at a time and makes the others sleep-and-retry on its busy
    /// timeout, which collapses throughput under concurrent writes; writers of this process
    /// queue here instead. (Other processes on the same file still meet the busy timeout.)
    sqlite_writer: Option<Arc<Mutex<()>>>,
    /// Started on the first [`Db::commit`], so that commands which never submit start no
    /// threads.
    group_commit: Arc<OnceLock<GroupCommit>>,
}

/// Committer threads on PostgreSQL, where batches can run side by side (each holds a pooled
/// connection while it runs). SQLite has one writer, so one committer.
const POSTGRES_COMMITTERS: u32 = 4;

pub type Conn = PooledConnection<ConnectionManager>;

impl Db {
    pub fn connect(url: &DatabaseUrl, max_size: u32) -> anyhow::Result<Self> {
        let manager = ConnectionManager::new(url.clone());
        let pool = Pool::builder()
            .max_size(max_size)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .test_on_check_out(false)
            .build(manager)
            .map_err(|e| anyhow::anyhow!("cannot open the database at {}: {e}", url.redacted()))?;
        Ok(Self {
            pool,
            backend: url.backend(),
            sqlite_writer: (url.backend() == Backend::Sqlite).then(|| Arc::new(Mutex::new(()))),
            group_commit: Arc::new(OnceLock::new()),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Connections in the pool: (open, idle, configured maximum).
    pub fn pool_state(&self) -> (u32, u32, u32) {
        let state = self.pool.state();
        (
            state.connections,
            state.idle_connections,
            self.pool.max_size(),
        )
    }

    /// A connection for start-up and command-line work, outside any request.
    pub fn get(&self) -> anyhow::Result<Conn> {
        self.pool
            .get()
            .map_err(|e| anyhow::anyhow!("no database connection: {e}"))
    }

    /// Runs `f` with a pooled connection on the blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.run_inner(None, f).await
    }

    /// Like [`Db::run`], for work that writes: on SQLite it first waits its turn among this
    /// process's writers.
    pub async fn write<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.run_inner(self.sqlite_writer.clone(), f).await
    }

    /// [`Db::write`] of one [`transaction`]: the write runs again if it lost a race, so it
    /// must keep no state between runs.
    pub async fn transaction<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnMut(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.write(move |conn| transaction(conn, f)).await
    }

    /// Runs `write` as part of a group commit (see the `group_commit` module) and answers once its batch
    /// is durable. `write` runs inside a savepoint of the batch's transaction, and again alone
    /// if the batch cannot commit, so it must keep no state between runs. `key` orders the
    /// items of a batch: the village code, so that batches take their locks in one order.
    pub async fn commit<T, F>(&self, key: String, write: F) -> Result<T, ApiError>
    where
        F: FnMut(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.committers()?.commit(key, write).await
    }

    /// What the group commit has done so far (zeros before the first [`Db::commit`]).
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        self.group_commit
            .get()
            .map(GroupCommit::stats)
            .unwrap_or_default()
    }

    /// Holds every batch back until the guard is dropped; submissions queue meanwhile. For
    /// tests that need several submissions in one batch, and for maintenance that must see no
    /// submission land.
    pub fn pause_commits(&self) -> Result<Paused<'_>, ApiError> {
        Ok(self.committers()?.pause())
    }

    fn committers(&self) -> Result<&GroupCommit, ApiError> {
        if let Some(started) = self.group_commit.get() {
            return Ok(started);
        }
        let committers = match self.backend {
            Backend::Sqlite => 1,
            Backend::Postgres => POSTGRES_COMMITTERS.min(self.pool.max_size() / 2).max(1),
        };
        let started = GroupCommit::start(
            self.pool.clone(),
            committers as usize,
            self.sqlite_writer.clone(),
        )
        .map_err(|e| ApiError::Unavailable(format!("无法启动数据库写入线程：{e}")))?;
        // A racing first call may have won; its committers serve, these stop with `started`.
        Ok(self.group_commit.get_or_init(|| started))
    }

    /// [`Db::write`] when `writes`, else [`Db::run`]: for reads that sometimes append to the
    /// audit log.
    pub async fn run_as<T, F>(&self, writes: bool, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let turn = if writes {
            self.sqlite_writer.clone()
        } else {
            None
        };
        self.run_inner(turn, f).await
    }

    async fn run_inner<T, F>(&self, turn: Option<Arc<Mutex<()>>>, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        let request_id = crate::telemetry::request_id::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let _request = crate::telemetry::request_id::enter_blocking(request_id);
            let _turn = turn
                .as_ref()
                .map(|t| t.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
            let mut conn = pool
                .get()
                .map_err(|e| ApiError::Unavailable(format!("database pool: {e}")))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("database task failed: {e}")))?
    }
}

/// Runs `f` with PostgreSQL planning each statement for its own parameters.
///
/// PostgreSQL plans a prepared statement generically after five runs when that looks no
/// dearer, not knowing its parameters; for the ledger's queries over a village's surveys and
/// people (an `= ANY($1)` of a few hundred keys, a range of months) the generic plans were 3×
/// slower than the custom ones (`TAIZHANG_BENCH_PROFILE=1 cargo bench --bench ledger`). Intake's
/// short statements keep the plan cache: planning each of them would cost more than it saves.
/// The setting is `LOCAL`, so it ends with the transaction `f` runs in (a savepoint inside the
/// caller's).
pub fn with_custom_plans<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    match conn {
        DbConnection::Sqlite(_) => f(conn),
        DbConnection::Postgresql(_) => conn.transaction(|conn| {
            diesel::connection::SimpleConnection::batch_execute(
                conn,
                "SET LOCAL plan_cache_mode = force_custom_plan",
            )?;
            f(conn)
        }),
    }
}

/// Whether `conn` is inside a transaction already.
fn in_transaction(conn: &mut DbConnection) -> diesel::QueryResult<bool> {
    type Manager = <DbConnection as Connection>::TransactionManager;
    Ok(Manager::transaction_manager_status_mut(conn)
        .transaction_depth()?
        .is_some())
}

/// How often [`transaction`] runs a write that lost a race before it gives up.
const RACE_ATTEMPTS: u32 = 3;

/// Runs `f` in a [`write_transaction`], again (up to [`RACE_ATTEMPTS`] times) when PostgreSQL
/// aborted it to break a deadlock or for a serialization failure ([`lost_a_race`]).
///
/// A batch of the group commit holds each of its items' locks until the batch commits, so the
/// order of lock taking that keeps two single writers apart does not hold against a batch: a
/// reviewer's decision can wait on a household a batch has locked while the batch waits on the
/// decision. PostgreSQL aborts one of the two; a batch item is rerun by its committer, and this
/// is the rerun for every other writer. Nested in a transaction (a batch item, a bulk
/// operation's caller) it runs once and leaves the rerun to whoever owns the transaction.
pub fn transaction<T, F>(conn: &mut DbConnection, mut f: F) -> Result<T, ApiError>
where
    F: FnMut(&mut DbConnection) -> Result<T, ApiError>,
{
    let nested = in_transaction(conn)?;
    let mut attempt = 1;
    loop {
        match write_transaction(conn, &mut f) {
            Err(ApiError::Internal(error))
                if !nested && attempt < RACE_ATTEMPTS && lost_a_race(&error) =>
            {
                tracing::warn!(attempt, error = %error, "write lost a race; running it again");
                attempt += 1;
            }
            // Lost every time: busy, not broken (503, the client may try again later).
            Err(ApiError::Internal(error)) if !nested && lost_a_race(&error) => {
                tracing::warn!(error = %error, "write lost a race {RACE_ATTEMPTS} times");
                return Err(ApiError::Unavailable(
                    "该操作多次与同时进行的写入冲突，请稍后重试".into(),
                ));
            }
            other => return other,
        }
    }
}

/// Runs `f` in a transaction that takes the write lock up front.
///
/// On SQLite a deferred transaction that reads and then writes can fail with `SQLITE_BUSY`
/// when another connection wrote in between (the busy timeout cannot help there), so writers
/// begin with `BEGIN IMMEDIATE` and queue on the busy timeout instead. PostgreSQL takes row
/// locks as it goes and needs nothing special.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    type Manager = <DbConnection as Connection>::TransactionManager;
    let nested = in_transaction(conn)?;
    match conn {
        // Inside a group commit's transaction (which holds the write lock): a savepoint.
        _ if nested => Manager::begin_transaction(conn)?,
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
        }
        DbConnection::Postgresql(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    match f(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(error) => {
            // The original error matters more than a failed rollback; a broken connection is
            // detected and discarded by the pool.
            let _ = Manager::rollback_transaction(conn);
            Err(error)
        }
    }
}

/// A value from the `app_settings` table.
pub fn read_setting(conn: &mut DbConnection, key: &str) -> diesel::QueryResult<Option<String>> {
    use diesel::prelude::*;
    schema::app_settings::table
        .find(key)
        .select(schema::app_settings::value)
        .first(conn)
        .optional()
}

/// Sets a value in the `app_settings` table.
pub fn write_setting(conn: &mut DbConnection, key: &str, value: &str) -> diesel::QueryResult<()> {
    use diesel::prelude::*;
    use schema::app_settings as s;
    let updated = diesel::update(s::table.find(key))
        .set(s::value.eq(value))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(s::table)
            .values((s::key.eq(key), s::value.eq(value)))
            .execute(conn)?;
    }
    Ok(())
}

/// The SQLite file used when no database URL is configured.
pub fn default_sqlite_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("taizhang.sqlite3")
}
