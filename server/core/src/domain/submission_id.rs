//! A submission id: the UUID a phone gives each submission, the key of exactly-once.

use crate::domain::Rule;
use std::fmt;

use super::Invalid;

/// The client-made id of a submission: a UUID, written in its canonical lowercase form so the
/// same id always compares equal however the app formatted it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct SubmissionId(String);

impl SubmissionId {
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        uuid::Uuid::try_parse(value.trim())
            .map(|u| Self(u.hyphenated().to_string()))
            .map_err(|_| Invalid::new(Rule::UuidFormat, "须为 UUID"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubmissionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalises_uuids() {
        let a = SubmissionId::parse("0190B7C2-6D1E-7C3A-9A51-3F2D8E0B4C11").expect("valid");
        assert_eq!(a.as_str(), "0190b7c2-6d1e-7c3a-9a51-3f2d8e0b4c11");
        assert!(SubmissionId::parse("not-a-uuid").is_err());
    }
}
