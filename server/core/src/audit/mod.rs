//! The append-only audit log: every state change, merge, user change, month close and every
//! view of an unmasked ID number — who, when, what, from → to, why, and the request id.
//!
//! Only this module writes it, and only by appending; the database refuses updates and deletes
//! (triggers on both backends). Each entry carries the SHA-256 of its content and of the entry
//! before it, so removing or altering an entry breaks the chain: `taizhang audit verify` (and
//! [`verify`]) walks it. [`service`] reads it for the API.

pub mod service;

use chrono::{NaiveDateTime, Timelike, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use crate::db::schema::audit_log;
use crate::db::DbConnection;
use crate::telemetry::request_id;

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Serialises appends across server processes on PostgreSQL (SQLite has one writer anyway).
const APPEND_LOCK: i64 = 0x6175_6469_745f_6c6f; // "audit_lo"

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct Entry<'a> {
    pub user_id: &'a str,
    pub action: &'a str,
    pub subject_type: &'a str,
    pub subject_id: &'a str,
    pub from_state: Option<&'a str>,
    pub to_state: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub detail: Option<&'a str>,
}

/// A stored entry, as the chain hashes it.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize, utoipa::ToSchema)]
#[diesel(table_name = audit_log, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Stored {
    pub seq: i64,
    pub id: String,
    pub at: NaiveDateTime,
    pub user_id: String,
    pub action: String,
    pub subject_type: String,
    pub subject_id: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub request_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl Stored {
    /// The hash of this entry's content and its predecessor's hash.
    pub fn compute_hash(&self) -> String {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "\u{0}".into());
        let fields = [
            self.seq.to_string(),
            self.id.clone(),
            self.at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
            self.user_id.clone(),
            self.action.clone(),
            self.subject_type.clone(),
            self.subject_id.clone(),
            opt(&self.from_state),
            opt(&self.to_state),
            opt(&self.reason),
            opt(&self.detail),
            opt(&self.request_id),
            self.prev_hash.clone(),
        ];
        let mut hash = Sha256::new();
        for field in fields {
            hash.update(field.as_bytes());
            hash.update([0x1f]);
        }
        hex::encode(hash.finalize())
    }
}

/// Appends an entry, in the caller's transaction if there is one (a savepoint otherwise).
///
/// On PostgreSQL the append takes a transaction-wide lock that is held until commit, so call it
/// after the transaction's other writes: a transaction that locked a row after appending could
/// deadlock with one that holds that row and waits to append.
pub fn append(conn: &mut DbConnection, entry: &Entry<'_>) -> QueryResult<()> {
    use diesel::connection::{TransactionManager, TransactionManagerStatus};
    let status =
        <DbConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn);
    let outside = matches!(
        status,
        TransactionManagerStatus::Valid(valid) if valid.transaction_depth().is_none()
    );
    if outside {
        // A read that audits (a reveal): on SQLite, take the write lock at BEGIN, so the read
        // of the chain's head cannot be overtaken by another process's append.
        return crate::db::write_transaction(conn, |conn| append_inside(conn, entry));
    }
    conn.transaction(|conn| append_inside(conn, entry))
}

fn append_inside(conn: &mut DbConnection, entry: &Entry<'_>) -> QueryResult<()> {
    if matches!(conn, DbConnection::Postgresql(_)) {
        conn.batch_execute(&format!("SELECT pg_advisory_xact_lock({APPEND_LOCK})"))?;
    }
    let last: Option<(i64, String)> = audit_log::table
        .order(audit_log::seq.desc())
        .select((audit_log::seq, audit_log::hash))
        .first(conn)
        .optional()?;
    let (seq, prev_hash) = last.map_or((1, GENESIS.to_owned()), |(s, h)| (s + 1, h));
    let now = Utc::now().naive_utc();
    // Both databases keep microseconds: hash what will be read back.
    let at = now
        .with_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now);
    let mut stored = Stored {
        seq,
        id: uuid::Uuid::now_v7().to_string(),
        at,
        user_id: entry.user_id.to_owned(),
        action: entry.action.to_owned(),
        subject_type: entry.subject_type.to_owned(),
        subject_id: entry.subject_id.to_owned(),
        from_state: entry.from_state.map(str::to_owned),
        to_state: entry.to_state.map(str::to_owned),
        reason: entry.reason.map(str::to_owned),
        detail: entry.detail.map(str::to_owned),
        request_id: request_id::current(),
        prev_hash,
        hash: String::new(),
    };
    stored.hash = stored.compute_hash();
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::seq.eq(stored.seq),
            audit_log::id.eq(&stored.id),
            audit_log::at.eq(stored.at),
            audit_log::user_id.eq(&stored.user_id),
            audit_log::action.eq(&stored.action),
            audit_log::subject_type.eq(&stored.subject_type),
            audit_log::subject_id.eq(&stored.subject_id),
            audit_log::from_state.eq(&stored.from_state),
            audit_log::to_state.eq(&stored.to_state),
            audit_log::reason.eq(&stored.reason),
            audit_log::detail.eq(&stored.detail),
            audit_log::request_id.eq(&stored.request_id),
            audit_log::prev_hash.eq(&stored.prev_hash),
            audit_log::hash.eq(&stored.hash),
        ))
        .execute(conn)?;
    Ok(())
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit chain breaks at entry {seq}: {reason}")]
pub struct Broken {
    pub seq: i64,
    pub reason: String,
}

/// Walks the whole chain; returns the number of entries when it is intact.
pub fn verify(conn: &mut DbConnection) -> Result<u64, anyhow::Error> {
    let mut expected_seq = 1i64;
    let mut prev = GENESIS.to_owned();
    loop {
        let batch: Vec<Stored> = audit_log::table
            .filter(audit_log::seq.ge(expected_seq))
            .order(audit_log::seq)
            .limit(10_000)
            .select(Stored::as_select())
            .load(conn)?;
        if batch.is_empty() {
            return Ok((expected_seq - 1) as u64);
        }
        for entry in batch {
            let broken = |reason: String| {
                anyhow::Error::new(Broken {
                    seq: entry.seq,
                    reason,
                })
            };
            if entry.seq != expected_seq {
                return Err(Broken {
                    seq: expected_seq,
                    reason: format!(
                        "entry {expected_seq} is missing (the next is {})",
                        entry.seq
                    ),
                }
                .into());
            }
            if entry.prev_hash != prev {
                return Err(broken("it does not follow the entry before it".into()));
            }
            if entry.compute_hash() != entry.hash {
                return Err(broken("its content was altered".into()));
            }
            prev = entry.hash.clone();
            expected_seq += 1;
        }
    }
}
