//! `[webhooks.NAME]`: the endpoint, its defaults, and its secrets (read where `secret` says,
//! see `config/secret`).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use toml::Spanned;

use super::secret::{Kept, Keys, Sources};
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

/// Where a webhook's secrets are kept. Every one begins `whsec_`, which tells a secret
/// misplaced under a key that should only name where it is kept.
const KEYS: Keys = Keys {
    inline: "secret",
    env: "secret_env",
    file: "secret_file",
    credential: "secret_credential",
    prefix: Some(crate::sign::SECRET_PREFIX),
};

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
        let sources = Sources {
            inline: raw.secret.as_ref(),
            env: raw.secret_env.as_ref(),
            file: raw.secret_file.as_ref(),
            credential: raw.secret_credential.as_ref(),
        };
        let owner = format!("webhook `{hook}`");
        let (texts, at) = match self.kept(&owner, span.clone(), &KEYS, &sources) {
            Kept::Unset => {
                self.error(
                    span,
                    format!(
                        "{owner} needs a secret: set {}, {}, {} or {} (`pagehook secret` makes one)",
                        KEYS.inline, KEYS.env, KEYS.file, KEYS.credential
                    ),
                );
                return None;
            }
            Kept::Invalid => return None,
            Kept::Inline(list, at) => (list.clone().into_vec(), at),
            Kept::Read(text, at) => (split_secrets(&text), at),
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
