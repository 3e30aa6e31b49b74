//! Login throttling: the wait a phone's failures earn, and the refusals (429) of attempts that
//! come too soon or from an address or against a phone that failed too often.

use chrono::NaiveDateTime;

use super::store;
use super::AuthPolicy;
use crate::db::DbConnection;
use crate::error::{ApiError, ApiResult};

/// The wait after `failures` consecutive failures of one key: none for the first few (typos),
/// then the first delay, doubling with each further failure up to the maximum.
pub fn delay_after(policy: &AuthPolicy, failures: i64) -> Option<std::time::Duration> {
    let beyond = failures - i64::from(policy.free_failures);
    if beyond <= 0 {
        return None;
    }
    let doublings = (beyond - 1).min(30) as u32;
    Some(
        policy
            .first_delay
            .saturating_mul(1 << doublings)
            .min(policy.max_delay),
    )
}

/// Whole seconds from `now` until `then`, at least 1 (for `Retry-After`).
fn seconds_until(then: NaiveDateTime, now: NaiveDateTime) -> u64 {
    let millis = (then - now).num_milliseconds().max(1);
    (millis as u64).div_ceil(1000)
}

/// Refuses (429) an attempt that comes before its key's wait has passed, or that the
/// per-address or per-phone limit stops (README, "Login throttling"). The password is not
/// checked then and the refusal is not a failure, so hammering does not lengthen the wait.
///
/// The key is (phone, address), or (phone, address, device) for a device that has logged in to
/// the account before: someone else's failures, from another address or on another device, do
/// not delay the owner. Known devices are also exempt from the two coarse limits.
pub fn throttle(
    conn: &mut DbConnection,
    policy: &AuthPolicy,
    phone: &str,
    addr: &str,
    known_device: Option<&str>,
    now: NaiveDateTime,
) -> ApiResult<()> {
    let retained = now - store::ATTEMPT_RETENTION;
    let streak = store::failures_for_key(conn, phone, addr, known_device, retained)?;
    if let (Some(wait), Some(latest)) = (delay_after(policy, streak.count), streak.latest) {
        let free_at = latest + chrono::Duration::from_std(wait).map_err(ApiError::internal)?;
        if now < free_at {
            let retry_after = seconds_until(free_at, now);
            return Err(ApiError::RateLimited {
                retry_after,
                detail: format!(
                    "该手机号在此地址已连续 {} 次登录失败，请 {retry_after} 秒后再试",
                    streak.count
                ),
            });
        }
    }
    if known_device.is_some() {
        return Ok(());
    }
    let window = chrono::Duration::from_std(policy.login_window).map_err(ApiError::internal)?;
    let by_addr = store::failures_for_addr(conn, addr, phone, now - window)?;
    if !by_addr.includes && by_addr.phones >= i64::from(policy.max_phones_per_addr) {
        return Err(ApiError::RateLimited {
            retry_after: seconds_until(by_addr.oldest.unwrap_or(now) + window, now),
            detail: format!(
                "此地址近 {} 分钟内已有 {} 个手机号登录失败，暂不能再尝试其他手机号",
                window.num_minutes(),
                by_addr.phones
            ),
        });
    }
    let by_phone = store::failures_for_phone(conn, phone, retained)?;
    if by_phone.count >= i64::from(policy.max_failures_per_phone) {
        return Err(ApiError::RateLimited {
            retry_after: seconds_until(
                by_phone.oldest.unwrap_or(now) + store::ATTEMPT_RETENTION,
                now,
            ),
            detail: "该手机号近一天登录失败次数过多，暂时只能从曾经登录过的设备登录".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_after_the_free_failures_up_to_the_cap() {
        let policy = AuthPolicy::default();
        let waits: Vec<Option<u64>> = [0, 3, 4, 5, 6, 13, 14, 1000]
            .into_iter()
            .map(|n| delay_after(&policy, n).map(|d| d.as_secs()))
            .collect();
        assert_eq!(
            waits,
            [
                None,
                None,
                Some(1),
                Some(2),
                Some(4),
                Some(512),
                Some(900),
                Some(900)
            ]
        );
    }
}
