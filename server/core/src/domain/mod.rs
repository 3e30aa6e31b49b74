//! Domain types that parse and validate at the edge: once a value has one of these types it is
//! known to be well formed, so code further in never re-checks it.

mod binary;
mod division_code;
pub mod enums;
mod id_number;
mod month;
mod phone;
mod submission_id;
pub mod time;

pub use binary::Binary;
pub use division_code::DivisionCode;
pub use enums::*;
pub use id_number::IdNumber;
pub use month::Month;
pub use phone::Phone;
pub use submission_id::SubmissionId;

/// A string that is not one of an enum's wire values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` 不是允许的取值")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

/// Why a value was refused: a stable snake_case rule name for programs, a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub rule: Rule,
    pub message: String,
}

impl Invalid {
    pub fn new(rule: Rule, message: impl Into<String>) -> Self {
        Self {
            rule,
            message: message.into(),
        }
    }
}
