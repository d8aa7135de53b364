//! The retry policy: what an endpoint's answer means, and how long to wait before trying again.

use std::time::Duration;

use reqwest::StatusCode;
use sha2::{Digest, Sha256};

/// How far each retry delay is spread, either way, so events that failed together do not all
/// come back at the same instant.
const JITTER: f64 = 0.2;
/// A `Retry-After` longer than this is taken as this: an endpoint cannot park an event for
/// weeks.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What an endpoint's answer means for the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Delivered,
    /// Try again later. `misconfigured` marks answers that retrying rarely fixes (a 404, a
    /// redirect), which are logged louder.
    Retry {
        reason: String,
        misconfigured: bool,
    },
    /// The endpoint asked not to be sent this event again.
    Stop {
        reason: String,
    },
}

/// The Standard Webhooks spec's reading of a status: only 2xx delivers, redirects are not
/// followed, 410 Gone stops, and everything else is worth another try.
pub(crate) fn classify(status: StatusCode) -> Verdict {
    let code = status.as_u16();
    match code {
        200..=299 => Verdict::Delivered,
        410 => Verdict::Stop {
            reason: "the endpoint answered 410 Gone".into(),
        },
        300..=399 => Verdict::Retry {
            reason: format!("HTTP {status}: redirects are not followed; configure the final URL"),
            misconfigured: true,
        },
        408 | 429 | 500..=599 => Verdict::Retry {
            reason: format!("HTTP {status}"),
            misconfigured: false,
        },
        _ => Verdict::Retry {
            reason: format!("HTTP {status}: check the webhook's URL, secret and headers"),
            misconfigured: true,
        },
    }
}

/// The delay before the next attempt after `attempts` have failed, or None when the retry
/// schedule is spent. `jitter` in [-1, 1] spreads the scheduled delay by up to ±20 %; an
/// endpoint's own `Retry-After` is honoured as given (up to a day).
pub(crate) fn next_delay(
    schedule: &[Duration],
    attempts: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<Duration> {
    let scheduled = *schedule.get((attempts as usize).checked_sub(1)?)?;
    Some(match retry_after {
        Some(asked) => asked.min(MAX_RETRY_AFTER),
        None => scheduled.mul_f64(1.0 + JITTER * jitter.clamp(-1.0, 1.0)),
    })
}

/// A jitter in [-1, 1] that is fixed for an event's nth attempt: retries spread out without a
/// random source, and a test can predict them.
pub(super) fn jitter_for(event_id: &str, attempts: u32) -> f64 {
    let digest = Sha256::new()
        .chain_update(event_id.as_bytes())
        .chain_update(attempts.to_be_bytes())
        .finalize();
    let n = u64::from_be_bytes(digest[..8].try_into().expect("32-byte digest"));
    n as f64 / u64::MAX as f64 * 2.0 - 1.0
}

/// How one attempt ended, for callers that count.
#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const SCHEDULE: [Duration; 3] = [
        Duration::from_secs(5),
        Duration::from_secs(300),
        Duration::from_secs(1800),
    ];

    #[test]
    fn next_delay_walks_the_schedule_then_gives_up() {
        let delays: Vec<Option<u64>> = (1..=4)
            .map(|n| next_delay(&SCHEDULE, n, None, 0.0).map(|d| d.as_secs()))
            .collect();
        assert_eq!(delays, [Some(5), Some(300), Some(1800), None]);
        assert_eq!(
            next_delay(&[], 1, None, 0.0),
            None,
            "retry = [] means one attempt"
        );
        assert_eq!(next_delay(&SCHEDULE, 0, None, 0.0), None);
    }

    #[test]
    fn jitter_spreads_by_at_most_a_fifth() {
        assert_eq!(
            next_delay(&SCHEDULE, 2, None, 1.0),
            Some(Duration::from_secs(360))
        );
        assert_eq!(
            next_delay(&SCHEDULE, 2, None, -1.0),
            Some(Duration::from_secs(240))
        );
        assert_eq!(
            next_delay(&SCHEDULE, 2, None, 7.0),
            Some(Duration::from_secs(360))
        );
        let spread: HashSet<u64> = (0..50)
            .map(|i| jitter_for(&format!("evt_{i}"), 1))
            .inspect(|j| assert!((-1.0..=1.0).contains(j)))
            .map(|j| ((j + 1.0) * 1000.0) as u64)
            .collect();
        assert!(spread.len() > 40, "jitter differs between events");
        assert_eq!(jitter_for("evt_a", 2), jitter_for("evt_a", 2));
    }

    #[test]
    fn retry_after_replaces_the_scheduled_delay_up_to_a_day() {
        let asked = Some(Duration::from_secs(42));
        assert_eq!(next_delay(&SCHEDULE, 1, asked, 1.0), asked);
        let week = Some(Duration::from_secs(7 * 24 * 3600));
        assert_eq!(next_delay(&SCHEDULE, 1, week, 0.0), Some(MAX_RETRY_AFTER));
        assert_eq!(next_delay(&SCHEDULE, 3, asked, 0.0), asked);
        assert_eq!(
            next_delay(&SCHEDULE, 4, asked, 0.0),
            None,
            "it does not add attempts"
        );
    }

    #[test]
    fn classify_follows_the_standard_webhooks_advice() {
        let verdict = |code| classify(StatusCode::from_u16(code).unwrap());
        for code in [200, 201, 202, 204, 299] {
            assert_eq!(verdict(code), Verdict::Delivered, "{code}");
        }
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(
                    verdict(code),
                    Verdict::Retry {
                        misconfigured: false,
                        ..
                    }
                ),
                "{code}"
            );
        }
        for code in [301, 302, 307, 308, 400, 401, 403, 404, 413] {
            assert!(
                matches!(
                    verdict(code),
                    Verdict::Retry {
                        misconfigured: true,
                        ..
                    }
                ),
                "{code}"
            );
        }
        assert!(matches!(verdict(410), Verdict::Stop { .. }));
    }
}
