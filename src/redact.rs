//! What of a URL may be shown. A watcher's or a webhook's URL may carry credentials: a user
//! name and password (`https://user:pass@host/`) or a key in its query string
//! (`?api_key=...`). Wherever a URL is printed, logged or sent to a receiver, those parts read
//! `***`; only the HTTP client sees the real URL. [`SensitiveUrl`] holds such a URL and shows
//! only its redacted form, so the raw one takes a deliberate [`SensitiveUrl::expose`].
//!
//! The rule, in one place: the user name and password are replaced by one `***`; a query
//! (or fragment) parameter's value is replaced by `***` when its name, split into words at every
//! character that is not a letter or digit and where lower case turns upper, has a word that ends
//! in one of [`SECRET_WORDS`]: `api_key`, `apiKey`, `access_token`, `X-Amz-Signature`, `sig`,
//! `client_secret`, `auth`, `password` and `sessionid` are all caught. A secret inside the path
//! cannot be recognised: put it in `headers` instead.

use std::fmt;

use url::Url;

/// What stands in for a secret.
pub const MASK: &str = "***";

/// A query parameter is a secret when one of its name's words ends in one of these.
pub const SECRET_WORDS: &[&str] = &[
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "pass",
    "sig",
    "signature",
    "auth",
    "authorization",
    "credential",
    "credentials",
    "session",
    "sessionid",
    "sid",
    "jwt",
];

/// `text` as it may be shown: credentials and secret query values masked. Text that does not
/// parse as a URL (a config error quoting it) is masked by the same rule, reading everything
/// before the last `@` of the authority as credentials.
pub fn url(text: &str) -> String {
    match Url::parse(text) {
        Ok(url) if url.has_host() => parsed(&url),
        // `user:pass@host` parses too, as a URL of scheme `user`.
        _ => unparsed(text),
    }
}

fn parsed(url: &Url) -> String {
    let mut shown = url.clone();
    if !url.username().is_empty() || url.password().is_some() {
        // Only URLs without a host refuse these, and those have no credentials to hide.
        let _ = shown.set_password(None);
        let _ = shown.set_username(MASK);
    }
    if let Some(query) = url.query() {
        shown.set_query(Some(&parameters(query)));
    }
    if let Some(fragment) = url.fragment() {
        shown.set_fragment(Some(&parameters(fragment)));
    }
    shown.into()
}

fn unparsed(text: &str) -> String {
    let (text, fragment) = split_at(text, '#');
    let (text, query) = split_at(text, '?');
    let authority = text.find("://").map_or(0, |i| i + 3);
    let mut shown = match text[authority..].rfind('@') {
        Some(at) => format!("{}{MASK}{}", &text[..authority], &text[authority + at..]),
        None => text.to_owned(),
    };
    for (mark, part) in [('?', query), ('#', fragment)] {
        if let Some(part) = part {
            shown.push(mark);
            shown.push_str(&parameters(part));
        }
    }
    shown
}

fn split_at(text: &str, mark: char) -> (&str, Option<&str>) {
    match text.split_once(mark) {
        Some((before, after)) => (before, Some(after)),
        None => (text, None),
    }
}

/// `a=1&api_key=s3cret` -> `a=1&api_key=***`, separators and encoding kept as they were.
fn parameters(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for piece in text.split_inclusive(['&', ';']) {
        let (pair, separator) = match piece.strip_suffix(['&', ';']) {
            Some(pair) => (pair, &piece[pair.len()..]),
            None => (piece, ""),
        };
        match secret_value(pair) {
            Some(value) => {
                shown.push_str(&pair[..pair.len() - value.len()]);
                shown.push_str(MASK);
            }
            None => shown.push_str(pair),
        }
        shown.push_str(separator);
    }
    shown
}

/// The value of a `name=value` parameter whose name marks a secret.
fn secret_value(pair: &str) -> Option<&str> {
    let (name, value) = pair.split_once('=')?;
    (!value.is_empty() && is_secret_name(&decoded(name))).then_some(value)
}

/// A parameter name as a server reads it: `+` is a space, `%5F` an underscore.
fn decoded(name: &str) -> String {
    url::form_urlencoded::parse(name.as_bytes())
        .next()
        .map(|(name, _)| name.into_owned())
        .unwrap_or_default()
}

/// Whether a query parameter of this name holds a secret (the module doc states the rule).
fn is_secret_name(name: &str) -> bool {
    words(name)
        .iter()
        .any(|word| SECRET_WORDS.iter().any(|secret| word.ends_with(secret)))
}

/// Lower-cased words: `X-Amz-Signature` -> x, amz, signature; `apiKey` -> api, key.
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            words.push(std::mem::take(&mut word));
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower {
            words.push(std::mem::take(&mut word));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_lowercase());
    }
    words.push(word);
    words.retain(|w| !w.is_empty());
    words
}

/// Every webhook secret (`whsec_...`) in `text` masked: for messages that quote what a user
/// wrote, where a secret may sit under the wrong key.
pub fn webhook_secrets(text: &str) -> String {
    let prefix = crate::sign::SECRET_PREFIX;
    let mut shown = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(prefix) {
        let after = &rest[start + prefix.len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || "+/=-_".contains(c)))
            .unwrap_or(after.len());
        shown.push_str(&rest[..start]);
        shown.push_str(prefix);
        shown.push_str(MASK);
        rest = &after[end..];
    }
    shown.push_str(rest);
    shown
}

/// Every secret of `url` found in `text` replaced by the mask: for messages from libraries
/// (a proxy connector, say) that may quote what they were given.
fn scrub(url: &Url, text: String) -> String {
    let parameters = [url.query(), url.fragment()]
        .into_iter()
        .flatten()
        .flat_map(|part| part.split(['&', ';']))
        .filter_map(secret_value);
    let secrets = [url.username(), url.password().unwrap_or("")]
        .into_iter()
        .chain(parameters);
    let mut text = text;
    // Shorter strings would match innocent text, and reveal little.
    for secret in secrets.filter(|s| s.len() >= 3) {
        text = text.replace(secret, MASK);
    }
    text
}

/// A URL whose credentials must not be shown: `Display`, `Debug` and `Serialize` give the
/// redacted form; the HTTP client takes [`SensitiveUrl::expose`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SensitiveUrl(Url);

impl SensitiveUrl {
    pub fn new(url: Url) -> Self {
        SensitiveUrl(url)
    }

    /// The real URL, credentials included: for the request itself and for comparisons, never
    /// for output.
    pub fn expose(&self) -> &Url {
        &self.0
    }

    pub fn host_str(&self) -> Option<&str> {
        self.0.host_str()
    }

    pub fn port_or_known_default(&self) -> Option<u16> {
        self.0.port_or_known_default()
    }

    /// `text` with this URL's secrets masked.
    pub fn scrub(&self, text: String) -> String {
        scrub(&self.0, text)
    }
}

impl std::str::FromStr for SensitiveUrl {
    type Err = url::ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Url::parse(text).map(SensitiveUrl)
    }
}

impl fmt::Display for SensitiveUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&parsed(&self.0))
    }
}

impl fmt::Debug for SensitiveUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", parsed(&self.0))
    }
}

impl serde::Serialize for SensitiveUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&parsed(&self.0))
    }
}

impl<'de> serde::Deserialize<'de> for SensitiveUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Url::deserialize(d).map(SensitiveUrl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_secret_query_values_are_masked() {
        let cases = [
            (
                "https://user:pass@shop.example/p?id=7&api_key=s3cret",
                "https://***@shop.example/p?id=7&api_key=***",
            ),
            (
                "https://TOKEN123@api.example/v1",
                "https://***@api.example/v1",
            ),
            (
                "https://s.example/a?apiKey=1&X-Amz-Signature=ab&X-Amz-Credential=c&sig=d",
                "https://s.example/a?apiKey=***&X-Amz-Signature=***&X-Amz-Credential=***&sig=***",
            ),
            (
                "https://s.example/?access_token=t&client_secret=x&password=p&auth=a&key=k",
                "https://s.example/?access_token=***&client_secret=***&password=***&auth=***&key=***",
            ),
            (
                "https://s.example/?ApiKey=1;sessionid=2&token=&q=keyboard&author=me&design=x",
                "https://s.example/?ApiKey=***;sessionid=***&token=&q=keyboard&author=me&design=x",
            ),
            (
                "https://s.example/?api%5Fkey=1&api+key=2#access_token=3&state=ok",
                "https://s.example/?api%5Fkey=***&api+key=***#access_token=***&state=ok",
            ),
            (
                "https://shop.example/widget?color=red",
                "https://shop.example/widget?color=red",
            ),
        ];
        for (raw, shown) in cases {
            assert_eq!(url(raw), shown, "{raw}");
            let parsed = SensitiveUrl::new(Url::parse(raw).unwrap());
            assert_eq!(parsed.to_string(), shown);
            assert_eq!(format!("{parsed:?}"), format!("{shown:?}"));
            assert_eq!(serde_json::to_value(&parsed).unwrap(), shown);
            assert_eq!(
                parsed.expose().as_str(),
                raw,
                "the request uses the real URL"
            );
        }
    }

    #[test]
    fn text_that_is_no_url_is_masked_by_the_same_rule() {
        assert_eq!(
            url("https://bob:hunter2@/hook?token=abc"),
            "https://***@/hook?token=***"
        );
        assert_eq!(url("bob:hunter2@shop.example/p"), "***@shop.example/p");
        assert_eq!(url("not a url"), "not a url");
    }

    #[test]
    fn secret_names_are_recognised_by_their_words() {
        for name in [
            "key",
            "api_key",
            "apikey",
            "APIKey",
            "x-api-key",
            "accessToken",
            "refresh_token",
            "X-Amz-Security-Token",
            "oauth",
            "pwd",
            "PHPSESSID",
            "jwt",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "q",
            "id",
            "page",
            "author",
            "design",
            "keyword",
            "keys",
            "sort",
            "tokens_count",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn webhook_secrets_are_masked_wherever_they_stand() {
        assert_eq!(
            webhook_secrets("variable `whsec_MfKQ9r8+/w==` is not set; whsec_x, whsec_"),
            "variable `whsec_***` is not set; whsec_***, whsec_***"
        );
        assert_eq!(webhook_secrets("no secret here"), "no secret here");
    }

    #[test]
    fn scrub_masks_every_secret_a_message_quotes() {
        let url = Url::parse("http://alice:s3cret@h.example/?token=t0ken&q=shoes").unwrap();
        assert_eq!(
            scrub(&url, "alice s3cret t0ken shoes".into()),
            "*** *** *** shoes"
        );
    }
}
