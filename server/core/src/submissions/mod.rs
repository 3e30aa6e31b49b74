//! Exactly-once receipts shared by surveys and check-ins (SPEC §4.1).
//!
//! Every submission carries a client-made UUID. The first request with an id stores the
//! submission, its canonical JSON (sealed) and the answer it got, all in one transaction whose
//! first write claims the id's primary key. A later request with the same id and the same
//! content gets that answer again with 200; with other content, 409. Two requests racing on
//! two servers meet at the primary key: on PostgreSQL the second insert waits for the first
//! transaction and then fails, on SQLite writers queue; either way the loser retries, finds the
//! receipt and replays it.
//!
//! Intake is in two halves. [`prepare`] does everything that needs no database (canonical JSON,
//! keyed hash, seal, validation) on the request's own thread; [`commit`] runs in a group commit
//! (`Db::commit`), one savepoint of a transaction shared with the other submissions that
//! queued meanwhile, so a batch of submissions costs one commit.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::Value;

use crate::db::schema::submissions;
use crate::db::{lost_a_race, write_transaction, Db, DbConnection};
use crate::domain::{Role, SubmissionId};
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError};
use crate::privacy::{Purpose, Vault};

/// What kind of submission a receipt belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    HouseholdSurvey,
    VillageSurvey,
    Checkin,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::HouseholdSurvey => "household_survey",
            Kind::VillageSurvey => "village_survey",
            Kind::Checkin => "checkin",
        }
    }
}

/// JSON with object keys sorted at every level and no insignificant whitespace, so the same
/// content always has the same bytes however the app ordered or spaced it.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// The stored answer to a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// How a submission ended: stored now (201) or replayed (200). A reused id with other content is
/// an error (409).
pub enum Outcome {
    Stored(Answer),
    Replayed(Answer),
}

impl Outcome {
    /// The HTTP status the answer goes out with: 201 when stored now, 200 for a replay.
    pub fn status(&self) -> u16 {
        match self {
            Outcome::Stored(_) => 201,
            Outcome::Replayed(_) => 200,
        }
    }

    /// The answer's JSON body, the same on every replay.
    pub fn into_body(self) -> String {
        match self {
            Outcome::Stored(a) | Outcome::Replayed(a) => a.body,
        }
    }
}

/// A submission validated into its typed form: the id and village it is stored under.
pub trait Validated {
    fn submission_id(&self) -> &str;
    fn village_code(&self) -> &str;
}

/// A submission as it arrived: what it is, who sent it, the id and village it claims before
/// validation, and its JSON as sent.
pub struct Received<'a> {
    pub kind: Kind,
    /// The author, a field user (see [`SUBMITTERS`]; the caller checks the role).
    pub user_id: &'a str,
    pub claimed_id: &'a str,
    pub claimed_village: &'a str,
    pub value: &'a Value,
}

/// Who submits surveys and check-ins: the field users.
pub const SUBMITTERS: [Role; 2] = [Role::Enumerator, Role::FirstSecretary];

/// A submission made ready for the writer without the database: its JSON canonical, keyed
/// and sealed, and its typed form validated (or the field errors it will be refused with).
pub struct Prepared<T> {
    kind: Kind,
    user_id: String,
    /// The id as sent, when it is one: a known id is replayed even if validation now fails.
    claimed_id: Option<SubmissionId>,
    village_code: String,
    typed: Result<T, Vec<FieldError>>,
    content_hash: String,
    sealed: String,
}

impl<T> Prepared<T> {
    /// The village it is stored under (or claims, when refused): orders a group commit.
    pub fn village_code(&self) -> &str {
        &self.village_code
    }
}

/// The first half of the exactly-once pipeline, all of it outside the writer's turn:
/// canonical JSON, keyed hash and seal, and `validate` (422 at once when the id itself is
/// unusable, since then there is no receipt to replay). [`commit`] is the second half.
pub fn prepare<T, V>(vault: &Vault, received: &Received<'_>, validate: V) -> ApiResult<Prepared<T>>
where
    T: Validated,
    V: FnOnce() -> Result<T, Vec<FieldError>>,
{
    let canonical = canonical_json(received.value);
    let claimed_id = SubmissionId::parse(received.claimed_id).ok();
    let typed = validate();
    let typed = match (typed, &claimed_id) {
        (Err(errors), None) => return Err(ApiError::Validation(errors)),
        (typed, _) => typed,
    };
    let village_code = match &typed {
        Ok(valid) => valid.village_code().to_owned(),
        Err(_) => received.claimed_village.to_owned(),
    };
    Ok(Prepared {
        kind: received.kind,
        user_id: received.user_id.to_owned(),
        claimed_id,
        village_code,
        typed,
        content_hash: vault.keyed_hash(canonical.as_bytes()),
        sealed: vault.seal(Purpose::Submission, canonical.as_bytes()),
    })
}

/// The second half, inside the writer's transaction: a known id is replayed (or refused as
/// reused) before anything else, so a retry of a stored submission gets its answer even if the
/// rules changed since; then a refused submission gets its 422, and a valid one is stored by
/// `store` inside the savepoint of `ingest_sealed`. Runs again from the start if its group
/// commit has to be retried.
pub fn commit<T, S>(
    conn: &mut DbConnection,
    prepared: &Prepared<T>,
    now: DateTime<Utc>,
    mut store: S,
) -> ApiResult<Outcome>
where
    T: Validated,
    S: FnMut(&mut DbConnection, &T) -> ApiResult<Value>,
{
    if let Some(id) = &prepared.claimed_id {
        let claimed = Claim {
            id: id.as_str(),
            kind: prepared.kind,
            content_hash: &prepared.content_hash,
        };
        if let Some(replayed) = replay_with_hash(conn, &claimed)? {
            return Ok(replayed);
        }
    }
    let typed = prepared
        .typed
        .as_ref()
        .map_err(|errors| ApiError::Validation(errors.clone()))?;
    let sealed = Sealed {
        id: typed.submission_id(),
        kind: prepared.kind,
        user_id: &prepared.user_id,
        village_code: typed.village_code(),
        content_hash: &prepared.content_hash,
        body_sealed: &prepared.sealed,
    };
    ingest_sealed(conn, &sealed, now, |conn| store(conn, typed))
}

/// [`commit`] in `db`'s group commit: stored with the other submissions that queued meanwhile,
/// answered once the batch is durable.
pub async fn commit_in_batch<T, S>(
    db: &Db,
    prepared: Prepared<T>,
    now: DateTime<Utc>,
    mut store: S,
) -> ApiResult<Outcome>
where
    T: Validated + Send + 'static,
    S: FnMut(&mut DbConnection, &T) -> ApiResult<Value> + Send + 'static,
{
    let key = prepared.village_code().to_owned();
    db.commit(key, move |conn| commit(conn, &prepared, now, &mut store))
        .await
}

/// What a replay is recognised by.
struct Claim<'a> {
    id: &'a str,
    kind: Kind,
    content_hash: &'a str,
}

/// The stored answer when this submission id was received before: a replay with the same
/// content, or 409 with other content.
fn replay_with_hash(conn: &mut DbConnection, incoming: &Claim<'_>) -> ApiResult<Option<Outcome>> {
    let Some(receipt) = stored(conn, incoming.id)? else {
        return Ok(None);
    };
    if receipt.kind != incoming.kind.as_str() || receipt.content_hash != incoming.content_hash {
        return Err(ApiError::Conflict {
            code: ErrorCode::SubmissionIdReused,
            detail: format!(
                "提交编号 {} 已用于内容不同的另一次提交；新的提交须使用新的编号",
                incoming.id
            ),
        });
    }
    Ok(Some(Outcome::Replayed(Answer {
        status: u16::try_from(receipt.response_status).unwrap_or(201),
        body: receipt.response,
    })))
}

/// A receipt as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = submissions, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Receipt {
    kind: String,
    content_hash: String,
    response_status: i32,
    response: String,
}

fn stored(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Receipt>> {
    submissions::table
        .find(id)
        .select(Receipt::as_select())
        .first(conn)
        .optional()
}

/// A submission with its keyed hash and seal made.
struct Sealed<'a> {
    id: &'a str,
    kind: Kind,
    user_id: &'a str,
    village_code: &'a str,
    content_hash: &'a str,
    body_sealed: &'a str,
}

/// Stores a sealed submission exactly once (its caller looked for a receipt just before).
/// `store` writes the submission's own rows and returns the answer body; it runs inside the
/// transaction that claims the id, after the claim. Any unique
/// violation (a racing replay, or a racing first survey of the same household) rolls everything
/// back and the whole attempt is repeated, so it then sees what the other request committed.
fn ingest_sealed<F>(
    conn: &mut DbConnection,
    incoming: &Sealed<'_>,
    now: DateTime<Utc>,
    mut store: F,
) -> ApiResult<Outcome>
where
    F: FnMut(&mut DbConnection) -> ApiResult<Value>,
{
    let claimed = Claim {
        id: incoming.id,
        kind: incoming.kind,
        content_hash: incoming.content_hash,
    };
    const ATTEMPTS: usize = 4;
    for attempt in 1..=ATTEMPTS {
        // The caller looked for a receipt just before; later attempts follow a collision and
        // must look again.
        if attempt > 1 {
            if let Some(outcome) = replay_with_hash(conn, &claimed)? {
                return Ok(outcome);
            }
        }
        // A savepoint inside a group commit's transaction, a transaction of its own otherwise.
        let result = write_transaction(conn, |conn| -> ApiResult<Answer> {
            // Claim the id first: a concurrent request for the same id now waits or fails here.
            diesel::insert_into(submissions::table)
                .values((
                    submissions::id.eq(incoming.id),
                    submissions::kind.eq(incoming.kind.as_str()),
                    submissions::user_id.eq(incoming.user_id),
                    submissions::village_code.eq(incoming.village_code),
                    submissions::content_hash.eq(incoming.content_hash),
                    submissions::body_sealed.eq(incoming.body_sealed),
                    submissions::response_status.eq(201),
                    submissions::response.eq(""),
                    submissions::received_at.eq(now.naive_utc()),
                ))
                .execute(conn)?;
            let body = store(conn)?.to_string();
            diesel::update(submissions::table.find(incoming.id))
                .set(submissions::response.eq(&body))
                .execute(conn)?;
            Ok(Answer { status: 201, body })
        });
        match result {
            Ok(answer) => return Ok(Outcome::Stored(answer)),
            Err(ApiError::Internal(error)) if is_retryable(&error) && attempt < ATTEMPTS => {
                tracing::debug!(
                    submission = incoming.id,
                    attempt,
                    "unique violation or deadlock; retrying"
                );
            }
            Err(other) => return Err(other),
        }
    }
    Err(ApiError::Unavailable(
        "该提交多次与同时进行的写入冲突".into(),
    ))
}

/// A conflict with a concurrent transaction that a fresh attempt resolves: a unique violation
/// (a racing request stored the same key first), or a lost race ([`lost_a_race`]).
fn is_retryable(error: &anyhow::Error) -> bool {
    lost_a_race(error)
        || error.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<DieselError>(),
                Some(DieselError::DatabaseError(
                    DatabaseErrorKind::UniqueViolation,
                    _
                ))
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_key_order_and_spacing() {
        let a: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1, {"d": 2, "c": 3}], "x": null}}"#)
                .expect("json");
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":null,"y":[1,{"c":3,"d":2}]},"b":1}"#).expect("json");
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":null,"y":[1,{"c":3,"d":2}]},"b":1}"#
        );
    }
}
