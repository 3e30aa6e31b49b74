//! The authenticated caller as a plain value: who they are, their role and how far their scope
//! reaches. The HTTP layer builds it from a bearer token (`http::caller`); services take it.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{DivisionCode, Role};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// The authenticated user of a request, with their role and scope, checked against the
/// database on every request so that logout, a revoked session or a disabled account take
/// effect at once rather than when the access token expires.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub session_id: String,
    pub name: String,
    pub phone: String,
    pub role: Role,
    /// A county reviewer's county, or the county of a field user's villages.
    pub county_code: Option<DivisionCode>,
    /// The villages assigned to an enumerator or first secretary.
    pub village_codes: Vec<DivisionCode>,
}

/// How far a caller's scope reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeLevel {
    /// The assigned villages only (enumerators, first secretaries).
    Villages,
    /// One county (county reviewers).
    County,
    /// The whole city (city administrators).
    City,
}

impl Caller {
    pub fn scope_level(&self) -> ScopeLevel {
        match self.role {
            Role::Enumerator | Role::FirstSecretary => ScopeLevel::Villages,
            Role::CountyReviewer => ScopeLevel::County,
            Role::CityAdmin => ScopeLevel::City,
        }
    }

    /// A SQL `LIKE` pattern for the village codes of the caller's county (county reviewers).
    pub fn county_pattern(&self) -> String {
        self.county_code
            .as_ref()
            .map_or_else(|| "%".to_owned(), DivisionCode::county_pattern)
    }

    /// Refuses callers whose role is not listed (403 `forbidden_role`).
    pub fn require_role(&self, roles: &[Role]) -> ApiResult<()> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                ErrorCode::ForbiddenRole,
                format!("{}无权执行此操作", self.role.label()),
            ))
        }
    }

    pub fn can_access_village(&self, village: &DivisionCode) -> bool {
        match self.scope_level() {
            ScopeLevel::City => true,
            ScopeLevel::County => self.county_code.as_ref() == Some(&village.county()),
            ScopeLevel::Villages => self.village_codes.contains(village),
        }
    }

    /// Whether the caller may read a whole county (reviewers of it and the city).
    pub fn can_access_county(&self, county: &DivisionCode) -> bool {
        match self.scope_level() {
            ScopeLevel::City => true,
            ScopeLevel::County | ScopeLevel::Villages => self.county_code.as_ref() == Some(county),
        }
    }

    pub fn require_village(&self, village: &DivisionCode) -> ApiResult<()> {
        if self.can_access_village(village) {
            Ok(())
        } else {
            Err(out_of_scope(format!("村 {village} 不在您的管辖范围内")))
        }
    }

    pub fn require_county(&self, county: &DivisionCode) -> ApiResult<()> {
        if self.can_access_county(county) {
            Ok(())
        } else {
            Err(out_of_scope(format!(
                "县（市、区）{county} 不在您的管辖范围内"
            )))
        }
    }
}

fn out_of_scope(detail: String) -> ApiError {
    ApiError::forbidden(ErrorCode::OutOfScope, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, county: Option<&str>, villages: &[&str]) -> Caller {
        let code = |c: &str| DivisionCode::parse(c).expect("valid");
        Caller {
            user_id: "u".into(),
            session_id: "s".into(),
            name: "n".into(),
            phone: "13800000000".into(),
            role,
            county_code: county.map(code),
            village_codes: villages.iter().map(|v| code(v)).collect(),
        }
    }

    #[test]
    fn scope_follows_the_role() {
        let v = DivisionCode::parse("220802100201").expect("valid");
        let other = DivisionCode::parse("220881100201").expect("valid");
        let enumerator = caller(Role::Enumerator, Some("220802000000"), &["220802100201"]);
        assert!(enumerator.can_access_village(&v) && !enumerator.can_access_village(&other));
        let reviewer = caller(Role::CountyReviewer, Some("220802000000"), &[]);
        assert!(reviewer.can_access_village(&v) && !reviewer.can_access_village(&other));
        assert!(
            reviewer.can_access_county(&v.county()) && !reviewer.can_access_county(&other.county())
        );
        let admin = caller(Role::CityAdmin, None, &[]);
        assert!(admin.can_access_village(&other) && admin.can_access_county(&other.county()));
        assert_eq!(
            enumerator
                .require_role(&[Role::CityAdmin])
                .map_err(|e| e.code())
                .err(),
            Some(ErrorCode::ForbiddenRole)
        );
    }
}
