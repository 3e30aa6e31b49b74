//! Group commit: concurrent submissions share one write transaction.
//!
//! A request hands its write to [`Db::commit`](super::Db::commit) once everything that needs no
//! database is done (parsing, validation, canonical JSON, hashing and sealing). Committer
//! threads take what has queued, open one write transaction, run each item inside its own
//! savepoint, commit once, and only then answer every request of the batch. An item that fails
//! is rolled back to its savepoint and answered with its own error; the others commit. When the
//! batch itself cannot commit (a broken connection, a failed `COMMIT`), each of its items is run
//! again alone, so one item can never take the others down with it. An item that PostgreSQL
//! picks as a deadlock's victim (or that fails to serialize) is rolled back to its savepoint
//! and run again alone after its batch: a failure of timing, not of the submission.
//!
//! Batches form by themselves: while a batch runs, the next requests queue, and the next batch
//! takes them all. Nothing waits for company, so a lone request is not delayed.
//!
//! Items are run in the order of their key (the village code), not of arrival: every rule of
//! intake is independent of arrival order, and PostgreSQL batches that take their villages' row
//! locks in the same order cannot deadlock one another.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard};

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::r2d2::Pool;
use diesel::Connection;

use super::{ConnectionManager, DbConnection};
use crate::error::ApiError;

/// The most items one transaction takes: enough to amortise the commit, few enough that a
/// batch's answers are not held back long.
pub const MAX_BATCH: usize = 64;

/// One queued write: runs inside the batch's transaction, then is answered.
trait Pending: Send {
    /// Runs the write and says what became of it.
    fn run(&mut self, conn: &mut DbConnection) -> Ran;
    /// Sends the result of the last run.
    fn answer(self: Box<Self>);
    /// Sends `error` instead (the write could not be made durable).
    fn fail(self: Box<Self>, error: ApiError);
    /// The order of items within a batch.
    fn key(&self) -> &str;
}

/// What one run of an item came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    /// It succeeded: its savepoint is kept.
    Stored,
    /// It failed with its own answer (a 409, a 422): its savepoint is rolled back.
    Refused,
    /// PostgreSQL chose it as a deadlock's victim, or it lost a serialization race: its
    /// savepoint is rolled back and it runs again alone once the batch has committed. Batches
    /// take village locks in one order, but two items of one village may still meet in either
    /// order; a lone item of its own transaction cannot deadlock the way a batch can.
    Contended,
}

struct Item<T, F> {
    key: String,
    write: F,
    result: Option<Result<T, ApiError>>,
    reply: tokio::sync::oneshot::Sender<Result<T, ApiError>>,
    span: tracing::Span,
    request_id: Option<String>,
}

impl<T, F> Pending for Item<T, F>
where
    T: Send,
    F: FnMut(&mut DbConnection) -> Result<T, ApiError> + Send,
{
    fn run(&mut self, conn: &mut DbConnection) -> Ran {
        let _entered = self.span.enter();
        let _request = crate::telemetry::request_id::enter_blocking(self.request_id.clone());
        let result = catch_unwind(AssertUnwindSafe(|| (self.write)(conn))).unwrap_or_else(|_| {
            Err(ApiError::internal(anyhow::anyhow!(
                "a write of a group commit panicked"
            )))
        });
        let ran = match &result {
            Ok(_) => Ran::Stored,
            Err(ApiError::Internal(error)) if lost_a_race(error) => Ran::Contended,
            Err(_) => Ran::Refused,
        };
        self.result = Some(result);
        ran
    }

    fn answer(self: Box<Self>) {
        let result = self.result.unwrap_or_else(|| {
            Err(ApiError::internal(anyhow::anyhow!(
                "a group-commit item was answered before it ran"
            )))
        });
        // The request may have gone (its client hung up); its write stands.
        let _ = self.reply.send(result);
    }

    fn fail(self: Box<Self>, error: ApiError) {
        let _ = self.reply.send(Err(error));
    }

    fn key(&self) -> &str {
        &self.key
    }
}

/// Whether a write failed because of a concurrent transaction rather than for itself: a
/// serialization failure, or a deadlock PostgreSQL broke by aborting it. A fresh attempt may
/// succeed. (Intake also retries on these, see `submissions`.)
pub fn lost_a_race(error: &anyhow::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    error
        .chain()
        .any(|cause| match cause.downcast_ref::<Error>() {
            Some(Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _)) => true,
            // SQLSTATE 40P01, which diesel does not name.
            Some(Error::DatabaseError(DatabaseErrorKind::Unknown, info)) => {
                info.message().contains("deadlock detected")
            }
            _ => false,
        })
}

/// How many batches and items the committers have handled, for the metrics and the tests.
#[derive(Debug, Default)]
pub struct Stats {
    batches: AtomicU64,
    items: AtomicU64,
    largest: AtomicU64,
    /// Items run again in a transaction of their own: those of a batch that could not commit,
    /// and those that lost a race inside their batch.
    retried_alone: AtomicU64,
    queued: AtomicUsize,
}

/// A reading of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsReading {
    pub batches: u64,
    pub items: u64,
    pub largest: u64,
    pub retried_alone: u64,
    /// Items waiting for a committer now.
    pub queued: usize,
}

impl Stats {
    pub fn read(&self) -> StatsReading {
        StatsReading {
            batches: self.batches.load(Ordering::Relaxed),
            items: self.items.load(Ordering::Relaxed),
            largest: self.largest.load(Ordering::Relaxed),
            retried_alone: self.retried_alone.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
        }
    }
}

/// The committers of one pool and the queue they share.
pub(super) struct GroupCommit {
    queue: Mutex<Sender<Box<dyn Pending>>>,
    stats: Arc<Stats>,
    gate: Arc<RwLock<()>>,
}

/// While held, no batch starts: items queue up. Batches already running finish.
pub struct Paused<'a> {
    _gate: RwLockWriteGuard<'a, ()>,
}

impl GroupCommit {
    /// Starts `committers` threads over `pool`. On SQLite there is one, and it takes
    /// `sqlite_writer` for each batch, so batches queue with this process's other writers.
    pub(super) fn start(
        pool: Pool<ConnectionManager>,
        committers: usize,
        sqlite_writer: Option<Arc<Mutex<()>>>,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::channel::<Box<dyn Pending>>();
        let receiver = Arc::new(Mutex::new(receiver));
        let stats = Arc::new(Stats::default());
        let gate = Arc::new(RwLock::new(()));
        for n in 0..committers.max(1) {
            let worker = Committer {
                queue: receiver.clone(),
                pool: pool.clone(),
                sqlite_writer: sqlite_writer.clone(),
                stats: stats.clone(),
                gate: gate.clone(),
            };
            std::thread::Builder::new()
                .name(format!("group-commit-{n}"))
                .spawn(move || worker.work())?;
        }
        Ok(Self {
            queue: Mutex::new(sender),
            stats,
            gate,
        })
    }

    /// Queues `write` and waits for its batch to be durable. `key` orders it within its batch.
    pub(super) async fn commit<T, F>(&self, key: String, write: F) -> Result<T, ApiError>
    where
        F: FnMut(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let item = Box::new(Item {
            key,
            write,
            result: None,
            reply,
            span: tracing::Span::current(),
            request_id: crate::telemetry::request_id::current(),
        });
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        let sent = self
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .send(item);
        if sent.is_err() {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(ApiError::Unavailable("数据库写入线程已停止".into()));
        }
        answer.await.unwrap_or_else(|_| {
            Err(ApiError::internal(anyhow::anyhow!(
                "a group commit ended without answering"
            )))
        })
    }

    pub(super) fn stats(&self) -> StatsReading {
        self.stats.read()
    }

    pub(super) fn pause(&self) -> Paused<'_> {
        Paused {
            _gate: self.gate.write().unwrap_or_else(|p| p.into_inner()),
        }
    }
}

struct Committer {
    queue: Arc<Mutex<Receiver<Box<dyn Pending>>>>,
    pool: Pool<ConnectionManager>,
    sqlite_writer: Option<Arc<Mutex<()>>>,
    stats: Arc<Stats>,
    gate: Arc<RwLock<()>>,
}

impl Committer {
    /// Until the pool's [`GroupCommit`] is dropped: wait for an item, wait for the writer's turn
    /// (more items queue meanwhile), take what has queued, run it as one batch.
    fn work(self) {
        loop {
            let queue = self
                .queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let Ok(first) = queue.recv() else {
                return;
            };
            let gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
            let turn = self
                .sqlite_writer
                .as_ref()
                .map(|t| t.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            // The next committer may gather the next batch while this one runs.
            drop(queue);
            drop(gate);
            self.stats.queued.fetch_sub(batch.len(), Ordering::Relaxed);
            self.run(batch);
            drop(turn);
        }
    }

    fn run(&self, mut batch: Vec<Box<dyn Pending>>) {
        batch.sort_by(|a, b| a.key().cmp(b.key()));
        let size = batch.len() as u64;
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.items.fetch_add(size, Ordering::Relaxed);
        self.stats.largest.fetch_max(size, Ordering::Relaxed);
        let mut conn = match self.pool.get() {
            Ok(conn) => conn,
            Err(error) => {
                for item in batch {
                    item.fail(ApiError::Unavailable(format!("database pool: {error}")));
                }
                return;
            }
        };
        let conn: &mut DbConnection = &mut conn;
        match run_together(conn, &mut batch) {
            Ok(contended) => {
                let mut again = Vec::new();
                for (n, item) in batch.into_iter().enumerate() {
                    if contended.contains(&n) {
                        again.push(item);
                    } else {
                        item.answer();
                    }
                }
                if !again.is_empty() {
                    tracing::warn!(
                        count = again.len(),
                        size,
                        "items of a group commit lost a race with another transaction; they run alone"
                    );
                }
                for item in again {
                    self.stats.retried_alone.fetch_add(1, Ordering::Relaxed);
                    self.alone(conn, item);
                }
            }
            Err(error) => {
                tracing::warn!(%error, size, "a group commit failed; its items run alone");
                self.stats.retried_alone.fetch_add(size, Ordering::Relaxed);
                for item in batch {
                    self.alone(conn, item);
                }
            }
        }
    }

    /// Runs `item` in a transaction of its own, again while it loses races (a few times).
    fn alone(&self, conn: &mut DbConnection, mut item: Box<dyn Pending>) {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            match run_together(conn, std::slice::from_mut(&mut item)) {
                Ok(contended) if contended.is_empty() || attempt == ATTEMPTS => {
                    return item.answer()
                }
                Ok(_) => continue,
                Err(error) => return item.fail(ApiError::from(error)),
            }
        }
    }
}

/// One transaction over `batch`, a savepoint per item; the positions of the items that lost a
/// race (rolled back, to be run again). `Err` when the transaction itself failed, after
/// rolling it back: nothing of the batch is stored then.
fn run_together(
    conn: &mut DbConnection,
    batch: &mut [Box<dyn Pending>],
) -> diesel::QueryResult<Vec<usize>> {
    type Manager = <DbConnection as Connection>::TransactionManager;
    begin_write(conn)?;
    let result = (|| {
        let mut contended = Vec::new();
        for (n, item) in batch.iter_mut().enumerate() {
            // At depth 1 this is a savepoint.
            Manager::begin_transaction(conn)?;
            match item.run(conn) {
                Ran::Stored => Manager::commit_transaction(conn)?,
                Ran::Refused => Manager::rollback_transaction(conn)?,
                Ran::Contended => {
                    Manager::rollback_transaction(conn)?;
                    contended.push(n);
                }
            }
        }
        Manager::commit_transaction(conn)?;
        Ok(contended)
    })();
    if result.is_err() {
        // Back to depth 0 whatever depth the failure left; a connection that cannot is
        // marked broken and the pool discards it.
        while Manager::transaction_manager_status_mut(conn)
            .transaction_depth()
            .ok()
            .flatten()
            .is_some()
        {
            if Manager::rollback_transaction(conn).is_err() {
                break;
            }
        }
    }
    result
}

/// `BEGIN IMMEDIATE` on SQLite (see [`super::write_transaction`]), `BEGIN` on PostgreSQL.
fn begin_write(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        DbConnection::Postgresql(c) => AnsiTransactionManager::begin_transaction(c),
    }
}

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error};

    use super::lost_a_race;

    struct Info(&'static str);

    impl DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.0
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn wrapped(kind: DatabaseErrorKind, message: &'static str) -> anyhow::Error {
        anyhow::Error::new(Error::DatabaseError(kind, Box::new(Info(message))))
            .context("database query")
    }

    #[test]
    fn deadlocks_and_serialization_failures_are_races_other_errors_are_not() {
        assert!(lost_a_race(&wrapped(
            DatabaseErrorKind::Unknown,
            "deadlock detected"
        )));
        assert!(lost_a_race(&wrapped(
            DatabaseErrorKind::SerializationFailure,
            "could not serialize access due to concurrent update"
        )));
        assert!(!lost_a_race(&wrapped(
            DatabaseErrorKind::UniqueViolation,
            "duplicate key value violates unique constraint"
        )));
        assert!(!lost_a_race(&wrapped(
            DatabaseErrorKind::Unknown,
            "relation \"surveys\" does not exist"
        )));
        assert!(!lost_a_race(&anyhow::anyhow!("deadlock detected")));
    }
}
