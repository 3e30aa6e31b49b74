//! A mainland mobile phone number, the login name of every user.

use crate::domain::Rule;
use std::fmt;

use serde::Serialize;

use super::Invalid;

/// A mainland China mobile number: 11 digits starting with 1. Spaces, dashes and a leading
/// `+86` are accepted on input and dropped, so one person cannot hold two accounts by
/// formatting their number differently.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let digits: String = value
            .trim()
            .trim_start_matches("+86")
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .collect();
        let ok = digits.len() == 11
            && digits.starts_with('1')
            && digits.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            return Err(Invalid::new(
                Rule::PhoneFormat,
                "须为以 1 开头的 11 位大陆手机号",
            ));
        }
        Ok(Self(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_formatting() {
        assert_eq!(
            Phone::parse("+86 138-0000-0000").map(|p| p.0),
            Ok("13800000000".to_owned())
        );
    }

    #[test]
    fn refuses_non_mobile_numbers() {
        for bad in [
            "",
            "0431-1234567",
            "2380000000",
            "138000000001",
            "1380000000a",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }
}
