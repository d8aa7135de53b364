//! Whether a failed request is worth another try within the same check, and after how long.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;

/// Tries per check, the first included.
pub(super) const MAX_ATTEMPTS: u32 = 3;
/// Waits before the second and third try when the server names none.
const BACKOFF: [Duration; 2] = [Duration::from_millis(250), Duration::from_millis(1000)];
/// The longest `Retry-After` honoured inside a check; a server asking for longer gets its rest
/// and the check fails, to be tried again at its next slot.
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Statuses that say "not now" rather than "no".
pub(super) fn is_transient_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// The wait before try `attempt + 1` after try `attempt` (1-based) failed transiently, or None
/// when the check should give up.
pub(super) fn delay(attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
    if attempt >= MAX_ATTEMPTS {
        return None;
    }
    match retry_after {
        Some(wait) if wait > MAX_RETRY_AFTER => None,
        Some(wait) => Some(wait),
        None => BACKOFF.get(attempt as usize - 1).copied(),
    }
}

/// `Retry-After` as delay-seconds or an HTTP date, as a delay from `now` (zero for a date
/// already past). The fetcher and the webhook deliverer both honour it.
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or_default())
}

/// Whether a transport error may go away on a second try: the connection was refused, reset or
/// closed before an answer came. Timeouts are not retried: the check's time is already spent.
/// Nor is an answer that came but could not be read as HTTP (a head too large, a malformed
/// header): the server sends the same again.
pub(super) fn is_transient_transport(err: &reqwest::Error) -> bool {
    if err.is_timeout() || err.is_redirect() || err.is_builder() || err.is_body() || err.is_decode()
    {
        return false;
    }
    (err.is_connect() || err.is_request()) && !is_malformed_answer(err)
}

fn is_malformed_answer(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_then_give_up() {
        assert_eq!(delay(1, None), Some(Duration::from_millis(250)));
        assert_eq!(delay(2, None), Some(Duration::from_secs(1)));
        assert_eq!(delay(3, None), None);
    }

    #[test]
    fn retry_after_is_honoured_up_to_a_bound() {
        assert_eq!(
            delay(1, Some(Duration::from_secs(7))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(delay(1, Some(Duration::ZERO)), Some(Duration::ZERO));
        assert_eq!(delay(1, Some(Duration::from_secs(31))), None);
        assert_eq!(delay(3, Some(Duration::from_secs(1))), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T06:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            parse_retry_after(" 12 ", now),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 06:00:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 05:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
    }

    #[test]
    fn transient_statuses() {
        for code in [429, 502, 503, 504] {
            assert!(is_transient_status(StatusCode::from_u16(code).unwrap()));
        }
        for code in [400, 404, 500, 501] {
            assert!(!is_transient_status(StatusCode::from_u16(code).unwrap()));
        }
    }
}
