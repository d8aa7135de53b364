//! Webhook signing and verification per the Standard Webhooks spec
//! (<https://www.standardwebhooks.com/>).

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

type HmacSha256 = Hmac<Sha256>;

pub(crate) const SECRET_PREFIX: &str = "whsec_";
const MIN_SECRET_LEN: usize = 24;
const MAX_SECRET_LEN: usize = 64;
/// 256 bits, the strength of HMAC-SHA256 itself, so the key is never the weak link.
const GENERATED_SECRET_LEN: usize = 32;

// Secrets get copied around by hand and padding is often lost on the way,
// so accept it either way; what we emit is always padded.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A signing secret's key bytes. Debug and Display are redacted so a secret
/// can sit in config structs that get logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps raw key bytes without the length check that parsing applies,
    /// so callers generating keys must pick 24..=64 random bytes themselves.
    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    /// A fresh secret of 32 bytes from the operating system's CSPRNG: what `pagehook secret`
    /// prints and `pagehook demo` signs with.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = vec![0; GENERATED_SECRET_LEN];
        getrandom::fill(&mut bytes)?;
        Ok(Secret(bytes))
    }

    /// The `whsec_<base64>` form that [`FromStr`] accepts.
    pub fn to_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

// Variants deliberately carry no part of the input (not even base64's
// offending byte), since these errors end up in logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret must start with \"whsec_\"")]
    MissingPrefix,
    #[error("secret is not valid base64 after \"whsec_\"")]
    InvalidBase64,
    #[error("secret is {0} bytes long; at least 24 are required")]
    TooShort(usize),
    #[error("secret is {0} bytes long; at most 64 are allowed")]
    TooLong(usize),
}

impl FromStr for Secret {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let encoded = s
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let bytes = LENIENT_BASE64
            .decode(encoded)
            .map_err(|_| SecretError::InvalidBase64)?;
        match bytes.len() {
            n if n < MIN_SECRET_LEN => Err(SecretError::TooShort(n)),
            n if n > MAX_SECRET_LEN => Err(SecretError::TooLong(n)),
            _ => Ok(Secret(bytes)),
        }
    }
}

/// The `webhook-signature` header value: `v1,<base64 HMAC-SHA256>` over
/// `{id}.{timestamp}.{body}` for each secret, space-separated. List the
/// current secret first; an empty slice yields an empty string.
pub fn sign(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    secrets
        .iter()
        .map(|s| {
            let tag = s.mac(id, &timestamp, body).finalize().into_bytes();
            format!("v1,{}", STANDARD.encode(tag))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a unix timestamp in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is outside the allowed tolerance")]
    TimestampOutOfTolerance,
    #[error("no webhook-signature entry matches any secret")]
    NoMatchingSignature,
}

/// Checks a received webhook the way a Standard Webhooks receiver does: the
/// timestamp must be within `tolerance_secs` of `now` in either direction,
/// and some `v1,` entry of `signature` must match one of `secrets`.
pub fn verify(
    secrets: &[Secret],
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let id = id.ok_or(VerifyError::MissingHeader(HEADER_ID))?;
    let timestamp = timestamp.ok_or(VerifyError::MissingHeader(HEADER_TIMESTAMP))?;
    let signature = signature.ok_or(VerifyError::MissingHeader(HEADER_SIGNATURE))?;

    // Digits only, since `i64::from_str` also takes a leading `+` or `-`,
    // which no conforming sender emits.
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::BadTimestamp);
    }
    let ts: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
    if now.abs_diff(ts) > tolerance_secs {
        return Err(VerifyError::TimestampOutOfTolerance);
    }

    // The signed content uses the header exactly as sent, so odd but valid
    // forms like leading zeros still verify.
    let macs: Vec<HmacSha256> = secrets.iter().map(|s| s.mac(id, timestamp, body)).collect();
    let matched = signature
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|tag| {
            macs.iter()
                .any(|mac| mac.clone().verify_slice(&tag).is_ok())
        });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known-answer vector from the Standard Webhooks spec.
    const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn spec() -> Secret {
        KEY.parse().unwrap()
    }

    fn other() -> Secret {
        Secret::from_bytes(vec![7; 32])
    }

    fn check(secrets: &[Secret], sig: &str, body: &[u8], now: i64) -> Result<(), VerifyError> {
        let ts = TS.to_string();
        verify(secrets, Some(ID), Some(&ts), Some(sig), body, now, 300)
    }

    #[test]
    fn spec_known_answer() {
        assert_eq!(sign(&[spec()], ID, TS, BODY), SIG);
        assert_eq!(check(&[spec()], SIG, BODY, TS), Ok(()));
    }

    #[test]
    fn rotation_signs_with_each_and_verifies_with_either() {
        let both = [spec(), other()];
        let sig = sign(&both, ID, TS, BODY);
        let parts: Vec<&str> = sig.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], SIG);
        assert!(parts[1].starts_with("v1,") && parts[1] != SIG);
        assert_eq!(check(&[spec()], &sig, BODY, TS), Ok(()));
        assert_eq!(check(&[other()], &sig, BODY, TS), Ok(()));
        // A receiver holding both secrets accepts a sender still on the old one.
        let old_only = sign(&[other()], ID, TS, BODY);
        assert_eq!(check(&both, &old_only, BODY, TS), Ok(()));
    }

    #[test]
    fn ignores_unknown_versions_and_garbage_entries() {
        let tag = &SIG[3..];
        let sig = format!("v2,abc v1,!!! v1a,{tag} {SIG}");
        assert_eq!(check(&[spec()], &sig, BODY, TS), Ok(()));
        let v2_only = format!("v2,{tag}");
        let no_match = Err(VerifyError::NoMatchingSignature);
        assert_eq!(check(&[spec()], &v2_only, BODY, TS), no_match);
    }

    #[test]
    fn rejects_tampering_and_wrong_secret() {
        let no_match = Err(VerifyError::NoMatchingSignature);
        let tampered = br#"{"test": 2432232315}"#;
        assert_eq!(check(&[spec()], SIG, tampered, TS), no_match);
        assert_eq!(check(&[other()], SIG, BODY, TS), no_match);
        assert_eq!(check(&[], SIG, BODY, TS), no_match);
    }

    #[test]
    fn enforces_tolerance_both_ways() {
        let out = Err(VerifyError::TimestampOutOfTolerance);
        assert_eq!(check(&[spec()], SIG, BODY, TS + 300), Ok(()));
        assert_eq!(check(&[spec()], SIG, BODY, TS + 301), out);
        assert_eq!(check(&[spec()], SIG, BODY, TS - 300), Ok(()));
        assert_eq!(check(&[spec()], SIG, BODY, TS - 301), out);
    }

    #[test]
    fn rejects_missing_headers_and_bad_timestamps() {
        let s = [spec()];
        let ts = TS.to_string();
        let v = |id, ts, sig| verify(&s, id, ts, sig, BODY, TS, 300);
        let missing = VerifyError::MissingHeader;
        assert_eq!(v(None, Some(&ts), Some(SIG)), Err(missing(HEADER_ID)));
        assert_eq!(v(Some(ID), None, Some(SIG)), Err(missing(HEADER_TIMESTAMP)));
        assert_eq!(v(Some(ID), Some(&ts), None), Err(missing(HEADER_SIGNATURE)));
        for bad in [
            "",
            "abc",
            "+1614265330",
            " 1614265330",
            "1.5",
            "99999999999999999999",
        ] {
            let got = v(Some(ID), Some(bad), Some(SIG));
            assert_eq!(got, Err(VerifyError::BadTimestamp), "{bad:?}");
        }
    }

    #[test]
    fn debug_and_display_are_redacted() {
        let s = spec();
        let bytes = format!("{:?}", s.0);
        let bytes = &bytes[1..bytes.len() - 1];
        let b64 = &KEY["whsec_".len()..];
        let list = vec![s.clone(), s.clone()];
        let shown = [
            format!("{s:?}"),
            format!("{s}"),
            format!("{list:?}"),
            format!("{list:#?}"),
        ];
        for text in shown {
            assert!(!text.contains(b64) && !text.contains(bytes), "{text}");
        }
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(
            format!("{list:?}"),
            "[Secret([redacted]), Secret([redacted])]"
        );
    }

    #[test]
    fn parse_errors_do_not_echo_input() {
        let too_long = format!("whsec_{}", STANDARD.encode([1u8; 65]));
        let cases = [
            (&KEY["whsec_".len()..], SecretError::MissingPrefix),
            (
                "whsec_MfKQ9r8G*YqrTwjUPD8ILPZIo2LaLaSw",
                SecretError::InvalidBase64,
            ),
            ("whsec_MfKQ9r8GKYo=", SecretError::TooShort(8)),
            (&too_long, SecretError::TooLong(65)),
        ];
        for (input, want) in cases {
            let err = input.parse::<Secret>().unwrap_err();
            assert_eq!(err, want);
            let payload = input.strip_prefix("whsec_").unwrap_or(input);
            for text in [err.to_string(), format!("{err:?}")] {
                assert!(!text.contains(payload), "{text}");
            }
        }
        let msg = SecretError::TooShort(8).to_string();
        assert_eq!(msg, "secret is 8 bytes long; at least 24 are required");
    }

    #[test]
    fn parse_accepts_unpadded_and_round_trips() {
        let key = vec![0xAB; 25];
        let padded = Secret::from_bytes(key.clone()).to_whsec();
        assert!(padded.ends_with('='));
        for text in [padded.as_str(), padded.trim_end_matches('=')] {
            assert_eq!(text.parse::<Secret>().unwrap().0, key);
        }
        assert_eq!(spec().to_whsec(), KEY);
        assert_eq!(spec().0.len(), 24);
    }

    #[test]
    fn generated_secrets_parse_back_and_differ() {
        let (a, b) = (Secret::generate().unwrap(), Secret::generate().unwrap());
        assert_eq!(a.0.len(), GENERATED_SECRET_LEN);
        assert_ne!(a.0, b.0);
        let text = a.to_whsec();
        assert_eq!(text.parse::<Secret>().unwrap().0, a.0);
    }
}
