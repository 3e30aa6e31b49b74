//! Exactly-once receipts shared by surveys and check-ins (SPEC §4.1).
//!
//! Every submission carries a client-made UUID. The first request with an id stores the
//! submission, its canonical JSON (sealed) and the answer it got, all in one transaction whose
//! first write claims the id's primary key. A later request with the same id and the same
//! content gets that answer again with 200; with other content, 409. Two requests racing on
//! two servers meet at the primary key: on PostgreSQL the second insert waits for the first
//! transaction and then fails, on SQLite writers queue; either way the loser retries, finds the
//! receipt and replays it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::Value;

use crate::db::schema::submissions;
use crate::db::{write_transaction, DbConnection};
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

/// A submission as it is about to be stored.
pub struct Incoming<'a> {
    pub id: &'a str,
    pub kind: Kind,
    pub user_id: &'a str,
    pub village_code: &'a str,
    pub canonical: &'a str,
    /// Whether [`replay`] was called for it just before.
    pub replay_checked: bool,
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

/// The one exactly-once pipeline of every submission, once its author's role is checked: a
/// known id is replayed (or refused as reused) before validation, so a retry of a stored
/// submission gets its answer even if the rules changed since; then `validate` makes the typed
/// submission (422 with every field error) and `store` writes its rows inside [`ingest`]'s
/// transaction.
pub fn receive<T, V, S>(
    conn: &mut DbConnection,
    vault: &Vault,
    received: &Received<'_>,
    now: DateTime<Utc>,
    validate: V,
    mut store: S,
) -> ApiResult<Outcome>
where
    T: Validated,
    V: FnOnce() -> Result<T, Vec<FieldError>>,
    S: FnMut(&mut DbConnection, &T) -> ApiResult<Value>,
{
    let canonical = canonical_json(received.value);
    let user_id = received.user_id;
    if let Ok(id) = SubmissionId::parse(received.claimed_id) {
        let incoming = Incoming {
            id: id.as_str(),
            kind: received.kind,
            user_id,
            village_code: received.claimed_village,
            canonical: &canonical,
            replay_checked: false,
        };
        if let Some(replayed) = replay(conn, vault, &incoming)? {
            return Ok(replayed);
        }
    }
    let typed = validate().map_err(ApiError::Validation)?;
    let incoming = Incoming {
        id: typed.submission_id(),
        kind: received.kind,
        user_id,
        village_code: typed.village_code(),
        canonical: &canonical,
        replay_checked: true,
    };
    ingest(conn, vault, &incoming, now, |conn| store(conn, &typed))
}

/// The stored answer when this submission id was received before: a replay with the same
/// content, or 409 with other content.
pub fn replay(
    conn: &mut DbConnection,
    vault: &Vault,
    incoming: &Incoming<'_>,
) -> ApiResult<Option<Outcome>> {
    let content_hash = vault.keyed_hash(incoming.canonical.as_bytes());
    replay_with_hash(conn, incoming, &content_hash)
}

fn replay_with_hash(
    conn: &mut DbConnection,
    incoming: &Incoming<'_>,
    content_hash: &str,
) -> ApiResult<Option<Outcome>> {
    let Some(receipt) = stored(conn, incoming.id)? else {
        return Ok(None);
    };
    if receipt.kind != incoming.kind.as_str() || receipt.content_hash != content_hash {
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

/// Stores a submission exactly once. `store` writes the submission's own rows and returns the
/// answer body; it runs inside the transaction that claims the id, after the claim. Any unique
/// violation (a racing replay, or a racing first survey of the same household) rolls everything
/// back and the whole attempt is repeated, so it then sees what the other request committed.
pub fn ingest<F>(
    conn: &mut DbConnection,
    vault: &Vault,
    incoming: &Incoming<'_>,
    now: DateTime<Utc>,
    mut store: F,
) -> ApiResult<Outcome>
where
    F: FnMut(&mut DbConnection) -> ApiResult<Value>,
{
    let content_hash = vault.keyed_hash(incoming.canonical.as_bytes());
    const ATTEMPTS: usize = 4;
    for attempt in 1..=ATTEMPTS {
        // The caller looked for a receipt just before; later attempts follow a collision and
        // must look again.
        if attempt > 1 || !incoming.replay_checked {
            if let Some(outcome) = replay_with_hash(conn, incoming, &content_hash)? {
                return Ok(outcome);
            }
        }
        let result = write_transaction(conn, |conn| -> ApiResult<Answer> {
            // Claim the id first: a concurrent request for the same id now waits or fails here.
            diesel::insert_into(submissions::table)
                .values((
                    submissions::id.eq(incoming.id),
                    submissions::kind.eq(incoming.kind.as_str()),
                    submissions::user_id.eq(incoming.user_id),
                    submissions::village_code.eq(incoming.village_code),
                    submissions::content_hash.eq(&content_hash),
                    submissions::body_sealed
                        .eq(vault.seal(Purpose::Submission, incoming.canonical.as_bytes())),
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
/// (a racing request stored the same key first), a serialization failure, or a deadlock
/// PostgreSQL broke by aborting us.
fn is_retryable(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| match cause.downcast_ref::<DieselError>() {
            Some(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::SerializationFailure,
                _,
            )) => true,
            Some(DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)) => {
                info.message().contains("deadlock detected")
            }
            _ => false,
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
