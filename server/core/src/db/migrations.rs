//! The schema migrations of both backends, embedded in the binary and run at start.
//!
//! `migrations/sqlite/` and `migrations/postgres/` hold the same steps under the same names; a
//! guard test keeps them in step.

use diesel::migration::MigrationSource;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::DbConnection;

pub const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
pub const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Applies every pending migration; returns the versions applied.
pub fn run_pending(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let applied = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE).map(versions),
        DbConnection::Postgresql(c) => c.run_pending_migrations(POSTGRES).map(versions),
    };
    applied.map_err(|e| anyhow::anyhow!("migrating the database: {e}"))
}

/// True when the database has every migration this binary knows.
pub fn all_applied(conn: &mut DbConnection) -> anyhow::Result<bool> {
    let pending = match conn {
        DbConnection::Sqlite(c) => c.has_pending_migration(SQLITE),
        DbConnection::Postgresql(c) => c.has_pending_migration(POSTGRES),
    };
    pending
        .map(|p| !p)
        .map_err(|e| anyhow::anyhow!("reading migration state: {e}"))
}

/// Reverts every migration (used by the guard test that down migrations work).
pub fn revert_all(conn: &mut DbConnection) -> anyhow::Result<()> {
    let result = match conn {
        DbConnection::Sqlite(c) => c.revert_all_migrations(SQLITE).map(|_| ()),
        DbConnection::Postgresql(c) => c.revert_all_migrations(POSTGRES).map(|_| ()),
    };
    result.map_err(|e| anyhow::anyhow!("reverting migrations: {e}"))
}

/// Names of the embedded migrations of each backend, in order: (SQLite, PostgreSQL).
pub fn names() -> (Vec<String>, Vec<String>) {
    let sqlite = MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE)
        .map(|ms| ms.iter().map(|m| m.name().to_string()).collect())
        .unwrap_or_default();
    let postgres = MigrationSource::<diesel::pg::Pg>::migrations(&POSTGRES)
        .map(|ms| ms.iter().map(|m| m.name().to_string()).collect())
        .unwrap_or_default();
    (sqlite, postgres)
}

fn versions(list: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
    list.into_iter().map(|v| v.to_string()).collect()
}
