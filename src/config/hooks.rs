//! `[webhooks.NAME]`: the endpoint, its defaults, and where its secrets are read from (inline,
//! an env var, a file, or a systemd credential).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use toml::Spanned;

use super::{OneOrMany, Validator};
use crate::redact::SensitiveUrl;
use crate::sign::Secret;

pub(crate) const DEFAULT_RETRY: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];
pub(crate) const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(15);
pub(crate) const DEFAULT_WEBHOOK_CONCURRENCY: usize = 4;
const MAX_WEBHOOK_CONCURRENCY: usize = 256;

/// One receiving endpoint.
#[derive(Clone, PartialEq)]
pub struct Webhook {
    pub(crate) name: String,
    pub(crate) url: SensitiveUrl,
    /// The first signs as the current secret; the rest keep receivers working while they rotate.
    pub(crate) secrets: Vec<Secret>,
    /// The delay before each retry; its length is the number of retries.
    pub(crate) retry: Vec<Duration>,
    pub(crate) headers: HeaderMap,
    pub(crate) timeout: Duration,
    /// Attempts in flight at once to this endpoint.
    pub(crate) concurrency: usize,
}

impl fmt::Debug for Webhook {
    // Extra headers usually carry credentials, so only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secrets", &self.secrets)
            .field("retry", &self.retry)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub(super) url: Spanned<String>,
    pub(super) secret: Option<Spanned<OneOrMany>>,
    pub(super) secret_env: Option<Spanned<String>>,
    pub(super) secret_file: Option<Spanned<PathBuf>>,
    pub(super) secret_credential: Option<Spanned<String>>,
    pub(super) retry: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) concurrency: Option<Spanned<i64>>,
}

/// Several secrets in one env var or file sit on separate lines (or are space-separated).
pub(super) fn split_secrets(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

impl Validator<'_> {
    pub(super) fn webhook(&mut self, name: &str, raw: Spanned<RawWebhook>) -> Option<Webhook> {
        let span = raw.span();
        let raw = raw.into_inner();
        let url = self.http_url(&raw.url);
        let secrets = self.secrets(name, span.clone(), &raw);
        let retry = match &raw.retry {
            Some(list) => list.iter().filter_map(|d| self.duration(d)).collect(),
            None => DEFAULT_RETRY.to_vec(),
        };
        let timeout = raw
            .timeout
            .as_ref()
            .and_then(|t| self.duration(t))
            .unwrap_or(DEFAULT_WEBHOOK_TIMEOUT);
        let concurrency = match &raw.concurrency {
            None => DEFAULT_WEBHOOK_CONCURRENCY,
            Some(n) if (1..=MAX_WEBHOOK_CONCURRENCY as i64).contains(n.get_ref()) => {
                *n.get_ref() as usize
            }
            Some(n) => {
                self.error(
                    n.span(),
                    format!("`concurrency` must be between 1 and {MAX_WEBHOOK_CONCURRENCY}"),
                );
                DEFAULT_WEBHOOK_CONCURRENCY
            }
        };
        let mut headers = HeaderMap::new();
        for (key, value) in &raw.headers {
            let name = HeaderName::from_bytes(key.as_bytes());
            let val = HeaderValue::from_str(value.get_ref());
            match (name, val) {
                (Ok(name), Ok(mut val)) => {
                    val.set_sensitive(true);
                    headers.insert(name, val);
                }
                (Err(_), _) => self.error(value.span(), format!("invalid header name `{key}`")),
                (_, Err(_)) => {
                    self.error(value.span(), format!("invalid value for header `{key}`"))
                }
            }
        }
        Some(Webhook {
            name: name.to_owned(),
            url: url?,
            secrets: secrets?,
            retry,
            headers,
            timeout,
            concurrency,
        })
    }

    pub(super) fn secrets(
        &mut self,
        hook: &str,
        span: Range<usize>,
        raw: &RawWebhook,
    ) -> Option<Vec<Secret>> {
        let sources = [
            raw.secret.is_some(),
            raw.secret_env.is_some(),
            raw.secret_file.is_some(),
            raw.secret_credential.is_some(),
        ];
        let (texts, at): (Vec<String>, Range<usize>) = match sources.iter().filter(|s| **s).count()
        {
            0 => {
                self.error(
                    span,
                    format!("webhook `{hook}` needs a secret: set secret, secret_env, secret_file or secret_credential (`pagehook secret` makes one)"),
                );
                return None;
            }
            1 => {
                if let Some(s) = &raw.secret {
                    (s.get_ref().clone().into_vec(), s.span())
                } else if let Some(var) = &raw.secret_env {
                    if self.names_a_secret("secret_env", var.get_ref(), var.span()) {
                        return None;
                    }
                    match self.env.var(var.get_ref()) {
                        Some(value) => (split_secrets(&value), var.span()),
                        None => {
                            let msg =
                                format!("environment variable `{}` is not set", var.get_ref());
                            self.error(var.span(), msg);
                            return None;
                        }
                    }
                } else if let Some(name) = &raw.secret_credential {
                    if self.names_a_secret("secret_credential", name.get_ref(), name.span()) {
                        return None;
                    }
                    match self.credential(name) {
                        Some(value) => (split_secrets(&value), name.span()),
                        None => return None,
                    }
                } else {
                    let file = raw.secret_file.as_ref().expect("counted above");
                    let named = file.get_ref().to_string_lossy();
                    if self.names_a_secret("secret_file", &named, file.span()) {
                        return None;
                    }
                    let path = self.beside_config(file.get_ref());
                    match std::fs::read_to_string(&path) {
                        Ok(value) => (split_secrets(&value), file.span()),
                        Err(err) => {
                            let msg = format!("cannot read secret_file {}: {err}", path.display());
                            self.error(file.span(), msg);
                            return None;
                        }
                    }
                }
            }
            _ => {
                self.error(
                    span,
                    format!("webhook `{hook}`: set only one of secret, secret_env, secret_file and secret_credential"),
                );
                return None;
            }
        };
        if texts.is_empty() {
            self.error(at, "the secret is empty");
            return None;
        }
        let mut secrets = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            match text.trim().parse::<Secret>() {
                Ok(secret) => secrets.push(secret),
                Err(err) => {
                    let which = if texts.len() > 1 {
                        format!("secret #{}: ", i + 1)
                    } else {
                        String::new()
                    };
                    self.error(at.clone(), format!("{which}{err}"));
                }
            }
        }
        (secrets.len() == texts.len()).then_some(secrets)
    }

    /// `secret_env`, `secret_file` and `secret_credential` name where the secret is kept; the
    /// secret itself in their place is a slip worth naming (and never echoing).
    pub(super) fn names_a_secret(&mut self, key: &str, value: &str, span: Range<usize>) -> bool {
        if !value.trim().starts_with(crate::sign::SECRET_PREFIX) {
            return false;
        }
        let msg = format!(
            "`{key}` names where the secret is kept, and this is the secret itself: move it to `secret`, or keep it elsewhere and name that"
        );
        self.error(span, msg);
        true
    }

    /// A secret handed over by systemd's `LoadCredential=`: the file `name` in
    /// `$CREDENTIALS_DIRECTORY`, readable only by the service, never in the unit or the config.
    /// Outside the service (`pagehook check` or `status` from a shell) that variable is unset and
    /// the file `name` beside the config is read instead: where the shipped unit loads it from.
    pub(super) fn credential(&mut self, name: &Spanned<String>) -> Option<String> {
        let plain = !name.get_ref().is_empty()
            && !name.get_ref().contains('/')
            && !name.get_ref().starts_with('.');
        if !plain {
            let msg = format!(
                "invalid credential name `{}`: a file name, as in LoadCredential=NAME:PATH",
                name.get_ref()
            );
            self.error(name.span(), msg);
            return None;
        }
        let path = match self.env.var("CREDENTIALS_DIRECTORY") {
            Some(dir) => Path::new(&dir).join(name.get_ref()),
            None => self.beside_config(Path::new(name.get_ref())),
        };
        match std::fs::read_to_string(&path) {
            Ok(value) => Some(value),
            Err(err) => {
                let msg = format!("cannot read credential {}: {err}", path.display());
                self.error(name.span(), msg);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use crate::config::testing::*;
    use crate::config::*;

    #[test]
    fn secrets_never_reach_debug_output_or_errors() {
        let loaded = parse_text(
            "[webhooks.a]\nurl = \"https://a.example\"\nsecret_env = \"PAGEHOOK_SECRET\"\nheaders = { Authorization = \"Bearer tok3n\" }\n",
        )
        .unwrap();
        let shown = format!("{:?}", loaded.config);
        assert!(
            !shown.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") && !shown.contains("tok3n"),
            "{shown}"
        );
        assert!(shown.contains("authorization"));

        let leaked = "whsec_c2VjcmV0LXRvby1zaG9ydA==";
        let errs = errors(&format!(
            "[webhooks.a]\nurl = \"https://a.example\"\nsecret = \"{leaked}\"\n"
        ));
        assert!(errs.iter().all(|e| !e.contains("c2VjcmV0")), "{errs:?}");
    }

    #[test]
    fn urls_with_credentials_print_redacted() {
        let loaded = parse_text(&format!(
            "[webhooks.a]\nurl = \"https://hook:pw1@a.example/in?token=t0k\"\nsecret = \"{SECRET}\"\n[[watchers]]\nname = \"w\"\nurl = \"https://me:pw2@s.example/p?api_key=k3y&id=7\"\nfields.t = {{ css = \"h1\" }}\n"
        ))
        .unwrap();
        let config = &loaded.config;
        let watcher = &config.watchers[0];
        assert_eq!(
            watcher.url.to_string(),
            "https://***@s.example/p?api_key=***&id=7"
        );
        assert_eq!(
            watcher.url.expose().as_str(),
            "https://me:pw2@s.example/p?api_key=k3y&id=7"
        );
        let shown = format!("{config:?}");
        for secret in ["pw1", "t0k", "pw2", "k3y"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn rotation_takes_several_secrets_from_a_list_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), format!("{SECRET}\n{SECRET}\n")).unwrap();
        let text = format!(
            "[webhooks.a]\nurl = \"https://a.example\"\nsecret = [\"{SECRET}\", \"{SECRET}\"]\n[webhooks.b]\nurl = \"https://b.example\"\nsecret_file = \"secret\"\n"
        );
        let loaded = parse(
            &text,
            &dir.path().join("watchers.toml"),
            &FakeEnv(HashMap::new()),
        )
        .unwrap();
        assert_eq!(loaded.config.webhooks["a"].secrets.len(), 2);
        assert_eq!(loaded.config.webhooks["b"].secrets.len(), 2);
    }

    #[test]
    fn a_secret_comes_from_a_systemd_credential_or_beside_the_config() {
        let creds = tempfile::tempdir().unwrap();
        std::fs::write(creds.path().join("hook-secret"), format!("{SECRET}\n")).unwrap();
        let text =
            "[webhooks.a]\nurl = \"https://a.example\"\nsecret_credential = \"hook-secret\"\n";
        let dir = creds.path().to_str().unwrap().to_owned();
        let env = FakeEnv([("CREDENTIALS_DIRECTORY", &*dir.leak())].into());
        let loaded = parse(text, Path::new("/nowhere/watchers.toml"), &env).unwrap();
        assert_eq!(loaded.config.webhooks["a"].secrets.len(), 1);

        // From a shell, the same name is the file beside the config.
        let config = creds.path().join("watchers.toml");
        let loaded = parse(text, &config, &FakeEnv(HashMap::new())).unwrap();
        assert_eq!(loaded.config.webhooks["a"].secrets.len(), 1);

        let errs = errors(text);
        assert!(
            errs[0].starts_with("watchers.toml:3:21: cannot read credential hook-secret: "),
            "{errs:?}"
        );
        let errs =
            errors("[webhooks.a]\nurl = \"https://a.example\"\nsecret_credential = \"../etc/x\"\n");
        assert!(errs[0].contains("invalid credential name"), "{errs:?}");
    }
}
