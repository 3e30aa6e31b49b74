//! Who may see personal data in full: the one check behind every `reveal=true`.

use super::Caller;
use crate::domain::Role;
use crate::error::{bad_query, ApiResult};

/// Checks a reveal request: only reviewers and the city may, and only with a reason (at most
/// 200 characters), which goes into the audit row; the caller audits each reveal. `Ok(false)`
/// when none was asked for.
pub fn reveal_allowed(
    caller: &Caller,
    reveal: Option<bool>,
    reason: Option<&str>,
) -> ApiResult<bool> {
    if reveal != Some(true) {
        return Ok(false);
    }
    caller.require_role(&[Role::CountyReviewer, Role::CityAdmin])?;
    let reason = reason.map(str::trim).unwrap_or_default();
    if reason.is_empty() {
        return Err(bad_query("reason", "查看完整身份证号须填写查看理由"));
    }
    if reason.chars().count() > 200 {
        return Err(bad_query("reason", "最多 200 个字符"));
    }
    Ok(true)
}
