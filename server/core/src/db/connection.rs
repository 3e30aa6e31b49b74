//! One connection type over SQLite and PostgreSQL, the database URL, and the pool's manager.

use std::fmt;
use std::path::PathBuf;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{Error as PoolError, ManageConnection};
use diesel::{Connection, PgConnection, SqliteConnection};

/// One connection to either backend. Queries are written against this type.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Where the database is: a SQLite file or a PostgreSQL URL.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    /// `postgres://` and `postgresql://` select PostgreSQL; `sqlite://PATH` or a plain path
    /// selects SQLite.
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            Ok(Self::Postgres(value.to_owned()))
        } else if let Some(path) = value.strip_prefix("sqlite://") {
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if value.contains("://") {
            Err(format!(
                "unsupported database URL scheme in `{}`: use postgres:// or sqlite://",
                redact(value)
            ))
        } else if value.is_empty() {
            Err("the database URL is empty".into())
        } else {
            Ok(Self::Sqlite(PathBuf::from(value)))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL with any password replaced, for logs and error messages.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => redact(url),
        }
    }

    pub fn establish(&self) -> Result<DbConnection, diesel::ConnectionError> {
        match self {
            DatabaseUrl::Postgres(url) => {
                PgConnection::establish(url).map(DbConnection::Postgresql)
            }
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
                // The busy timeout comes first: switching to WAL itself needs a lock, and without
                // a timeout a connection opened while another writes fails at once. WAL lets
                // readers proceed during a write; foreign keys are off by default in SQLite.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Hides the password of `scheme://user:password@host/...`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// An r2d2 manager that opens connections for a [`DatabaseUrl`].
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ConnectionManager {
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url }
    }
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = PoolError;

    fn connect(&self) -> Result<DbConnection, PoolError> {
        self.url.establish().map_err(PoolError::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), PoolError> {
        conn.batch_execute("SELECT 1")
            .map_err(PoolError::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        // A connection returned mid-transaction (a panic in a query closure) is discarded.
        use diesel::connection::TransactionManager;
        <DbConnection as Connection>::TransactionManager::is_broken_transaction_manager(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_selects_the_backend() {
        assert_eq!(
            DatabaseUrl::parse("postgres://u:p@h/db").map(|u| u.backend()),
            Ok(Backend::Postgres)
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/x.sqlite3").map(|u| u.backend()),
            Ok(Backend::Sqlite)
        );
        assert_eq!(
            DatabaseUrl::parse("x.sqlite3").map(|u| u.backend()),
            Ok(Backend::Sqlite)
        );
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        let url = DatabaseUrl::parse("postgres://taizhang:s3cret@db:5432/taizhang").expect("valid");
        assert_eq!(url.redacted(), "postgres://taizhang:***@db:5432/taizhang");
        assert!(!format!("{url:?}").contains("s3cret"));
    }
}
