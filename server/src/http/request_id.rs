//! The id of the request being served, reachable from anywhere inside its handling (error
//! bodies need it and have no access to the request).

tokio::task_local! {
    pub(super) static REQUEST_ID: String;
}

pub const HEADER: &str = "x-request-id";

/// The current request's id, if called while serving a request.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Accepts a caller-supplied id when it is short and plain, so ids from a proxy or the app
/// can be followed through the logs; otherwise makes a fresh UUIDv7.
pub fn accept_or_generate(incoming: Option<&str>) -> String {
    match incoming {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) =>
        {
            id.to_owned()
        }
        _ => uuid::Uuid::now_v7().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids_are_kept_and_others_replaced() {
        assert_eq!(accept_or_generate(Some("abc-123")), "abc-123");
        assert_ne!(accept_or_generate(Some("a b")), "a b");
        assert_ne!(accept_or_generate(Some(&"x".repeat(65))), "x".repeat(65));
        assert_eq!(accept_or_generate(None).len(), 36);
    }
}
