//! A Standard Webhooks receiver: verifies each request with `sign`, answers 204 or 401, and
//! hands every request's outcome to its caller. `pagehook receive` prints them; `pagehook demo`
//! turns them into one line per event.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::sign::{self, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Secret, VerifyError};

/// What the receiver checks requests against, and where verified events go.
pub struct Options {
    /// Any of these may have signed a request, as while a sender rotates its secret.
    pub secrets: Vec<Secret>,
    /// How far a request's `webhook-timestamp` may be from the receiver's clock.
    pub tolerance_secs: u64,
    /// Each verified event is appended here as one JSON line before the 204 goes out, so an
    /// event the sender sees acknowledged is never missing from the file.
    pub out: Option<File>,
}

/// One request, as the receiver judged it.
#[derive(Debug, Clone)]
pub enum Received {
    Verified(Verified),
    Rejected(Rejected),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The `webhook-id` header: the event id, the same on every retry.
    pub id: String,
    pub received_at: DateTime<Utc>,
    /// The body, parsed.
    pub event: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub status: u16,
    pub reason: String,
    pub received_at: DateTime<Utc>,
}

impl Verified {
    /// The line `--out` appends: the id beside the event, so a consumer can drop the duplicates
    /// that at-least-once delivery brings.
    pub fn to_json_line(&self) -> String {
        json!({
            "id": self.id,
            "received_at": self.received_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "event": self.event,
        })
        .to_string()
    }
}

/// Judge one request: the signature and timestamp per Standard Webhooks, then a JSON body.
/// Pure: the clock comes in as `now`.
pub fn judge(
    secrets: &[Secret],
    tolerance_secs: u64,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verified, (StatusCode, String)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let id = header(HEADER_ID);
    sign::verify(
        secrets,
        id,
        header(HEADER_TIMESTAMP),
        header(HEADER_SIGNATURE),
        body,
        now.timestamp(),
        tolerance_secs,
    )
    .map_err(|err| (StatusCode::UNAUTHORIZED, unauthorized_reason(&err)))?;
    let event = serde_json::from_slice(body).map_err(|err| {
        let reason = format!("signature verified, but the body is not JSON: {err}");
        (StatusCode::BAD_REQUEST, reason)
    })?;
    Ok(Verified {
        id: id.expect("verify checked the id header").to_owned(),
        received_at: now,
        event,
    })
}

/// The 401 body: the verifier's reason plus the usual cause, so a developer on the sending end
/// knows what to fix without reading the receiver's source.
fn unauthorized_reason(err: &VerifyError) -> String {
    let hint = match err {
        VerifyError::MissingHeader(_) => "is the request signed per Standard Webhooks?",
        VerifyError::BadTimestamp => "send unix seconds, digits only",
        VerifyError::TimestampOutOfTolerance => {
            "a replayed request, or a clock that is off: check NTP on both ends"
        }
        VerifyError::NoMatchingSignature => "a different secret, or the body changed after signing",
    };
    format!("{err} ({hint})")
}

struct Shared {
    secrets: Vec<Secret>,
    tolerance_secs: u64,
    // A std mutex: held only for one small append, never across an await.
    out: Option<Mutex<File>>,
    events: mpsc::Sender<Received>,
}

/// Serve on `listener` until `shutdown`, sending each request's outcome to `events`.
pub async fn serve(
    listener: TcpListener,
    options: Options,
    events: mpsc::Sender<Received>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        secrets: options.secrets,
        tolerance_secs: options.tolerance_secs,
        out: options.out.map(Mutex::new),
        events,
    });
    let router = Router::new().fallback(handle).with_state(shared);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let now = Utc::now();
    let judged = if method == Method::POST {
        judge(&shared.secrets, shared.tolerance_secs, &headers, &body, now)
    } else {
        let reason = format!("webhooks arrive as POST, not {method}");
        Err((StatusCode::METHOD_NOT_ALLOWED, reason))
    };
    let (answer, received) = match judged {
        Ok(verified) => match append(&shared, &verified) {
            Ok(()) => (
                (StatusCode::NO_CONTENT, String::new()),
                Received::Verified(verified),
            ),
            // Not 2xx: the sender keeps the event and retries once the file is writable.
            Err(err) => reject(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot append to --out: {err}"),
                now,
            ),
        },
        Err((status, reason)) => reject(status, reason, now),
    };
    // The caller may have stopped listening while the server drains; the answer stands.
    let _ = shared.events.send(received).await;
    answer
}

fn reject(
    status: StatusCode,
    reason: String,
    received_at: DateTime<Utc>,
) -> ((StatusCode, String), Received) {
    let rejected = Rejected {
        status: status.as_u16(),
        reason: reason.clone(),
        received_at,
    };
    ((status, reason), Received::Rejected(rejected))
}

fn append(shared: &Shared, verified: &Verified) -> std::io::Result<()> {
    let Some(out) = &shared.out else {
        return Ok(());
    };
    let mut line = verified.to_json_line();
    line.push('\n');
    let mut file = out.lock().expect("out file lock");
    // One write per line, so a concurrent reader of the file never sees half an event.
    file.write_all(line.as_bytes())?;
    file.flush()
}

/// How `pagehook receive` shows a request: a header line, then the event indented.
pub fn describe(received: &Received) -> String {
    match received {
        Received::Verified(v) => {
            let at = v.received_at.format("%H:%M:%SZ");
            let kind = v.event["type"].as_str().unwrap_or("(no type)");
            let mut head = format!("{at}  verified  {kind}  {}", v.id);
            let data = &v.event["data"];
            if let Some(watcher) = data["watcher"].as_str() {
                head.push_str(&format!("  watcher={watcher}"));
            }
            if let Some(seq) = data["seq"].as_u64() {
                head.push_str(&format!(" seq={seq}"));
            }
            let body = serde_json::to_string_pretty(&v.event).expect("a JSON value serialises");
            let indented: Vec<String> = body.lines().map(|l| format!("    {l}")).collect();
            format!("{head}\n{}", indented.join("\n"))
        }
        Received::Rejected(r) => {
            let at = r.received_at.format("%H:%M:%SZ");
            format!("{at}  REJECTED  {}  {}", r.status, r.reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const BODY: &[u8] = br#"{"type":"watch.changed","data":{"watcher":"w","seq":3}}"#;

    fn at(ts: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(ts, 0).unwrap()
    }

    fn signed(secret: &Secret, ts: i64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let sig = sign::sign(std::slice::from_ref(secret), "evt_1", ts, body);
        headers.insert(HEADER_ID, HeaderValue::from_static("evt_1"));
        headers.insert(HEADER_TIMESTAMP, ts.to_string().parse().unwrap());
        headers.insert(HEADER_SIGNATURE, sig.parse().unwrap());
        headers
    }

    #[test]
    fn a_signed_request_is_verified_and_becomes_one_json_line() {
        let secret: Secret = KEY.parse().unwrap();
        let headers = signed(&secret, 1_700_000_000, BODY);
        let verified = judge(&[secret], 300, &headers, BODY, at(1_700_000_100)).unwrap();
        assert_eq!(verified.id, "evt_1");
        assert_eq!(verified.event["data"]["seq"], 3);
        let line = verified.to_json_line();
        assert!(!line.contains('\n'));
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            parsed,
            json!({"id": "evt_1", "received_at": "2023-11-14T22:15:00Z",
                   "event": serde_json::from_slice::<Value>(BODY).unwrap()})
        );
    }

    #[test]
    fn tampering_a_wrong_secret_and_a_stale_timestamp_are_401_with_a_reason() {
        let secret: Secret = KEY.parse().unwrap();
        let other = Secret::from_bytes(vec![9; 32]);
        let ts = 1_700_000_000;
        let headers = signed(&secret, ts, BODY);
        let tampered = br#"{"type":"watch.changed","data":{"watcher":"w","seq":4}}"#;
        let cases = [
            (
                judge(
                    std::slice::from_ref(&secret),
                    300,
                    &headers,
                    tampered,
                    at(ts),
                ),
                "no webhook-signature entry matches",
            ),
            (
                judge(&[other], 300, &headers, BODY, at(ts)),
                "no webhook-signature entry matches",
            ),
            (
                judge(
                    std::slice::from_ref(&secret),
                    300,
                    &headers,
                    BODY,
                    at(ts + 301),
                ),
                "webhook-timestamp is outside the allowed tolerance",
            ),
            (
                judge(&[secret], 300, &HeaderMap::new(), BODY, at(ts)),
                "missing webhook-id header",
            ),
        ];
        for (result, want) in cases {
            let (status, reason) = result.unwrap_err();
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert!(reason.starts_with(want), "{reason}");
        }
    }

    #[test]
    fn a_signed_body_that_is_not_json_is_a_bad_request() {
        let secret: Secret = KEY.parse().unwrap();
        let headers = signed(&secret, 1_700_000_000, b"hello");
        let (status, _) = judge(&[secret], 300, &headers, b"hello", at(1_700_000_000)).unwrap_err();
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn describe_shows_the_event_and_the_reason() {
        let verified = Received::Verified(Verified {
            id: "evt_1".into(),
            received_at: at(1_700_000_000),
            event: serde_json::from_slice(BODY).unwrap(),
        });
        let text = describe(&verified);
        assert!(
            text.starts_with("22:13:20Z  verified  watch.changed  evt_1  watcher=w seq=3\n    {"),
            "{text}"
        );
        let rejected = Received::Rejected(Rejected {
            status: 401,
            reason: "bad".into(),
            received_at: at(1_700_000_000),
        });
        assert_eq!(describe(&rejected), "22:13:20Z  REJECTED  401  bad");
    }
}
