//! The survey operations the JSON API and the console share: intake of household and village
//! surveys, the survey list and review queue, one survey, one household, a field user's own
//! submissions, review (one and bulk) and duplicate pairs. Each checks its caller's role and
//! scope itself, so no caller can forget to.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::duplicate_list::DuplicatePage;
use super::duplicates::{self, PairAction, PairDecision, PairOutcome, PairRequest};
use super::input::{HouseholdSurveyRequest, VillageSurveyRequest};
use super::review::{self, BulkOutcome, BulkReviewRequest, ReviewOutcome, ReviewRequest};
use super::validate::{HouseholdSurvey, VillageSurvey};
use super::views::{HouseholdView, MySubmissions, SurveyDetail, SurveyPage};
use super::{bulk, duplicate_list, ingest, validate, views};
use crate::auth::{reveal_allowed, Caller};
use crate::db::Db;
use crate::domain::{Role, Rule, SubmissionId};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::privacy::Vault;
use crate::submissions::{self, Kind, Outcome, Received, Validated};

pub use super::duplicate_list::DuplicateFilter;
pub use super::views::{Cursor, SurveyFilter};

/// Who reviews: county reviewers in their county, the city anywhere.
const REVIEWERS: [Role; 2] = [Role::CountyReviewer, Role::CityAdmin];

/// 403 `forbidden_role` unless the caller reviews surveys.
pub fn require_reviewer(caller: &Caller) -> ApiResult<()> {
    caller.require_role(&REVIEWERS)
}

/// A survey's id from a path (400 `invalid_path` naming `id`).
pub fn survey_id(raw: &str) -> ApiResult<SubmissionId> {
    SubmissionId::parse(raw).map_err(|e| ApiError::BadRequest {
        code: ErrorCode::InvalidPath,
        detail: format!("id：{}", e.message),
        field: Some("id".into()),
    })
}

/// Whether a reader asks to see ID and phone numbers in full, and why.
#[derive(Debug, Clone, Default)]
pub struct Reveal {
    pub wanted: bool,
    /// For the audit log.
    pub reason: Option<String>,
}

impl Reveal {
    /// Checked against the caller (see [`reveal_allowed`]): whether to reveal.
    fn allowed(&self, caller: &Caller) -> ApiResult<bool> {
        reveal_allowed(caller, Some(self.wanted), self.reason.as_deref())
    }
}

impl Validated for HouseholdSurvey {
    fn submission_id(&self) -> &str {
        self.id.as_str()
    }
    fn village_code(&self) -> &str {
        self.village.as_str()
    }
}

impl Validated for VillageSurvey {
    fn submission_id(&self) -> &str {
        self.id.as_str()
    }
    fn village_code(&self) -> &str {
        self.village.as_str()
    }
}

/// Receives a household survey exactly once (see [`submissions::prepare`]): validated and
/// sealed here, stored in the next group commit.
pub async fn submit_household(
    db: &Db,
    vault: &Vault,
    caller: Caller,
    input: HouseholdSurveyRequest,
    value: &Value,
    now: DateTime<Utc>,
) -> ApiResult<Outcome> {
    caller.require_role(&submissions::SUBMITTERS)?;
    let received = Received {
        kind: Kind::HouseholdSurvey,
        user_id: &caller.user_id,
        claimed_id: &input.submission_id,
        claimed_village: &input.village_code,
        value,
    };
    let prepared = submissions::prepare(vault, &received, || {
        validate::household(&input, &caller, now)
    })?;
    let vault = vault.clone();
    submissions::commit_in_batch(db, prepared, now, move |conn, survey| {
        ingest::household(conn, &vault, &caller, survey, now)
    })
    .await
}

/// Receives a village post-demand survey exactly once, like [`submit_household`].
pub async fn submit_village(
    db: &Db,
    vault: &Vault,
    caller: Caller,
    input: VillageSurveyRequest,
    value: &Value,
    now: DateTime<Utc>,
) -> ApiResult<Outcome> {
    caller.require_role(&submissions::SUBMITTERS)?;
    let received = Received {
        kind: Kind::VillageSurvey,
        user_id: &caller.user_id,
        claimed_id: &input.submission_id,
        claimed_village: &input.village_code,
        value,
    };
    let prepared = submissions::prepare(vault, &received, || {
        validate::village_survey(&input, &caller, now)
    })?;
    submissions::commit_in_batch(db, prepared, now, move |conn, survey| {
        ingest::village(conn, survey, &caller.user_id, now)
    })
    .await
}

/// Household surveys in the caller's scope matching the filter, a page at a time.
pub async fn list_surveys(db: &Db, caller: Caller, filter: SurveyFilter) -> ApiResult<SurveyPage> {
    db.run(move |conn| views::list(conn, &caller, &filter))
        .await
}

/// One household survey in the caller's scope, revealed only to reviewers (audited).
pub async fn get_survey(
    db: &Db,
    vault: &Vault,
    caller: Caller,
    id: SubmissionId,
    reveal: Reveal,
) -> ApiResult<SurveyDetail> {
    let revealed = reveal.allowed(&caller)?;
    let vault = vault.clone();
    db.run_as(revealed, move |conn| {
        views::survey(
            conn,
            &vault,
            &caller,
            id.as_str(),
            revealed,
            reveal.reason.as_deref(),
        )
    })
    .await
}

/// One household in the caller's scope with its versions, revealed only to reviewers (audited).
pub async fn get_household(
    db: &Db,
    vault: &Vault,
    caller: Caller,
    id: String,
    reveal: Reveal,
) -> ApiResult<HouseholdView> {
    let revealed = reveal.allowed(&caller)?;
    let vault = vault.clone();
    db.run_as(revealed, move |conn| {
        views::household(
            conn,
            &vault,
            &caller,
            &id,
            revealed,
            reveal.reason.as_deref(),
        )
    })
    .await
}

/// The caller's own submissions received or changed after `since`.
pub async fn my_submissions(
    db: &Db,
    caller: Caller,
    since: Option<DateTime<Utc>>,
) -> ApiResult<MySubmissions> {
    db.run(move |conn| views::submissions_of(conn, &caller, since))
        .await
}

/// Decides one household survey.
pub async fn review(
    db: &Db,
    caller: Caller,
    id: SubmissionId,
    request: ReviewRequest,
) -> ApiResult<ReviewOutcome> {
    require_reviewer(&caller)?;
    let reason = review::checked_reason(request.decision, request.reason.as_deref())?;
    let now = Utc::now();
    db.transaction(move |conn| {
        review::decide(
            conn,
            &caller,
            id.as_str(),
            request.decision,
            reason.as_deref(),
            request.seen_version,
            now,
        )
    })
    .await
}

/// Decides many surveys at once, by ids or by a filter (see [`bulk`]).
pub async fn bulk_review(
    db: &Db,
    caller: Caller,
    request: BulkReviewRequest,
) -> ApiResult<BulkOutcome> {
    require_reviewer(&caller)?;
    let reason = bulk::checked(&request)?;
    let now = Utc::now();
    db.write(move |conn| bulk::decide(conn, &caller, &request, reason.as_deref(), now))
        .await
}

/// Flagged household pairs in the caller's scope matching the filter, a page at a time.
pub async fn list_duplicates(
    db: &Db,
    caller: Caller,
    filter: DuplicateFilter,
) -> ApiResult<DuplicatePage> {
    require_reviewer(&caller)?;
    db.run(move |conn| duplicate_list::list(conn, &caller, &filter))
        .await
}

/// Decides a flagged pair of households `a` and `b` (either order; 400 `invalid_path` unless
/// both are UUIDs).
pub async fn decide_pair(
    db: &Db,
    caller: Caller,
    a: String,
    b: String,
    request: PairRequest,
) -> ApiResult<PairOutcome> {
    require_reviewer(&caller)?;
    for (field, id) in [("a", &a), ("b", &b)] {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(ApiError::BadRequest {
                code: ErrorCode::InvalidPath,
                detail: format!("{field}：户的 ID 须为 UUID"),
                field: Some(field.into()),
            });
        }
    }
    let needs_reason = matches!(request.action, PairAction::KeepApart | PairAction::Unmerge);
    let reason = review::checked_text("reason", request.reason.as_deref(), needs_reason)?;
    if request.action == PairAction::Merge && request.survivor.is_none() {
        return Err(ApiError::field(
            "survivor",
            Rule::Required,
            "合并时须指定保留的户",
        ));
    }
    let now = Utc::now();
    db.transaction(move |conn| {
        duplicates::decide(
            conn,
            &caller,
            &PairDecision {
                households: (&a, &b),
                action: request.action,
                survivor: request.survivor.as_deref(),
                reason: reason.as_deref(),
                seen_version: request.seen_version,
            },
            now,
        )
    })
    .await
}
