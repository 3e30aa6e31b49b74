//! The id of the request being served, reachable from anywhere inside its handling (error
//! bodies need it and have no access to the request).

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `f` with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

pub const HEADER: &str = "x-request-id";

std::thread_local! {
    // The id carried into work the request hands to the blocking pool, where task-locals are
    // not visible (the audit log records it).
    static BLOCKING: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// The current request's id, if called while serving a request (also from its blocking work).
pub fn current() -> Option<String> {
    REQUEST_ID
        .try_with(Clone::clone)
        .ok()
        .or_else(|| BLOCKING.with(|b| b.borrow().clone()))
}

/// Makes `id` the current request id on this (blocking-pool) thread until the guard drops.
pub fn enter_blocking(id: Option<String>) -> BlockingGuard {
    BLOCKING.with(|b| *b.borrow_mut() = id);
    BlockingGuard(())
}

pub struct BlockingGuard(());

impl Drop for BlockingGuard {
    fn drop(&mut self) {
        BLOCKING.with(|b| *b.borrow_mut() = None);
    }
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
