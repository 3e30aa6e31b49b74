//! The check-in operations the JSON API and the console share: intake, a month's attendance
//! and the list of check-ins. Each keeps to its caller's scope itself.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::attendance::{self, Attendance, CheckinList, Filter};
use super::input::{self, Checkin, CheckinRequest};
use super::{store, CheckinPolicy};
use crate::auth::Caller;
use crate::db::{Db, DbConnection};
use crate::error::ApiResult;
use crate::privacy::Vault;
use crate::submissions::{self, Kind, Outcome, Received, Validated};
use crate::villages::geofences::Geofences;

impl Validated for Checkin {
    fn submission_id(&self) -> &str {
        self.id.as_str()
    }
    fn village_code(&self) -> &str {
        self.village.as_str()
    }
}

/// What a check-in is checked against: the seals, the village geofences, the rules.
pub struct Verification<'a> {
    pub vault: &'a Vault,
    pub geofences: &'a Geofences,
    pub policy: &'a CheckinPolicy,
}

/// Receives a check-in exactly once (see [`submissions::receive`]): stored accepted or
/// flagged, never refused for doubtful facts.
pub fn submit(
    conn: &mut DbConnection,
    with: &Verification<'_>,
    caller: &Caller,
    request: &CheckinRequest,
    value: &Value,
    now: DateTime<Utc>,
) -> ApiResult<Outcome> {
    caller.require_role(&submissions::SUBMITTERS)?;
    let received = Received {
        kind: Kind::Checkin,
        user_id: &caller.user_id,
        claimed_id: &request.submission_id,
        claimed_village: &request.village_code,
        value,
    };
    submissions::receive(
        conn,
        with.vault,
        &received,
        now,
        || input::validate(request, caller, now),
        |conn, checkin| {
            store::store(
                conn,
                with.vault,
                with.geofences,
                with.policy,
                checkin,
                &caller.user_id,
                now,
            )
        },
    )
}

/// A month's attendance in the caller's scope and the filter's area.
pub async fn attendance(
    db: &Db,
    vault: &Vault,
    policy: &CheckinPolicy,
    caller: Caller,
    filter: Filter,
) -> ApiResult<Attendance> {
    let (vault, policy) = (vault.clone(), policy.clone());
    db.run(move |conn| attendance::compute(conn, &vault, &policy, &caller, &filter))
        .await
}

/// A month's check-ins in the caller's scope and the filter's area, newest first: only the
/// flagged ones (`Some(true)`), only the accepted (`Some(false)`) or all; at most `limit`.
pub async fn list_checkins(
    db: &Db,
    caller: Caller,
    filter: Filter,
    flagged: Option<bool>,
    limit: i64,
) -> ApiResult<CheckinList> {
    db.run(move |conn| attendance::list(conn, &caller, &filter, flagged, limit))
        .await
}
