//! Who may see personal data in full: the one check behind every `reveal=true`.

use super::Caller;
use crate::domain::Role;
use crate::error::{bad_query, ApiResult};

/// Checks a reveal request: only reviewers and the city may, with a reason of at most 200
/// characters; the caller audits each reveal. `Ok(false)` when none was asked for.
pub fn reveal_allowed(
    caller: &Caller,
    reveal: Option<bool>,
    reason: Option<&str>,
) -> ApiResult<bool> {
    if reveal != Some(true) {
        return Ok(false);
    }
    caller.require_role(&[Role::CountyReviewer, Role::CityAdmin])?;
    if reason.is_some_and(|r| r.chars().count() > 200) {
        return Err(bad_query("reason", "最多 200 个字符"));
    }
    Ok(true)
}
