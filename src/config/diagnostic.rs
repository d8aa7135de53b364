//! What validation found: a `Diagnostic` at FILE:LINE:COL, the `ConfigError` that gathers them
//! all, and the redaction every message passes through before it is shown.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use super::Validator;
use crate::redact::{self};

/// One finding of validation, pointing into the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Diagnostic {
    pub(crate) file: PathBuf,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (file, line, column) = (self.file.display(), self.line, self.column);
        write!(f, "{file}:{line}:{column}: {}", self.message)
    }
}

impl Diagnostic {
    /// The same place and message, marked as a warning: legal, but probably not meant.
    pub(crate) fn as_warning(&self) -> String {
        let (file, line, column) = (self.file.display(), self.line, self.column);
        format!("{file}:{line}:{column}: warning: {}", self.message)
    }
}

/// Every error found in a config file (warnings travel separately, on success).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub(crate) errors: Vec<Diagnostic>,
}

/// serde quotes a mistyped value back (`invalid type: string "whsec_...", expected a map`), and
/// a value under the wrong key may be a secret; the message's place already points at it.
pub(super) fn without_quoted_strings(message: &str) -> String {
    const QUOTED: &str = "string \"";
    let mut shown = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(QUOTED) {
        shown.push_str(&rest[..start]);
        shown.push_str("a string");
        // Debug-escaped: a quote inside the value is `\"`.
        let quoted = &rest[start + QUOTED.len()..];
        let mut escaped = false;
        let end = quoted
            .char_indices()
            .find(|&(_, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes
            })
            .map_or(quoted.len(), |(i, _)| i + 1);
        rest = &quoted[end..];
    }
    shown.push_str(rest);
    shown
}

impl Validator<'_> {
    pub(super) fn diagnostic(&self, span: Range<usize>, message: String) -> Diagnostic {
        // Messages quote what the user wrote, and a secret may sit under the wrong key.
        let message = redact::webhook_secrets(&message);
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            message,
        }
    }

    pub(super) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        if let Some(d) = self.first_report(false, span, message.into()) {
            self.errors.push(d);
        }
    }

    pub(super) fn warn(&mut self, span: Range<usize>, message: impl Into<String>) {
        if let Some(d) = self.first_report(true, span, message.into()) {
            self.warnings.push(d);
        }
    }

    /// The diagnostic, unless this one was reported already.
    pub(super) fn first_report(
        &mut self,
        warning: bool,
        span: Range<usize>,
        message: String,
    ) -> Option<Diagnostic> {
        self.reported
            .insert((warning, span.start, message.clone()))
            .then(|| self.diagnostic(span, message))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Loaded;
    use crate::config::testing::*;

    #[test]
    fn a_syntax_error_names_line_and_column() {
        let errs = errors("[[watchers]]\nname = \"a\"\nurl = = \"x\"\n");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("watchers.toml:3:7: "), "{errs:?}");
    }

    #[test]
    fn an_unknown_key_is_an_error_at_its_place() {
        let err = &errors(&format!(
            "[webhooks.a]\nurl = \"https://a.example\"\nsecret = \"{SECRET}\"\n\n[[watchers]]\nname = \"a\"\n  shedule = \"every 5m\"\n"
        ))[0];
        assert!(
            err.starts_with("watchers.toml:7:3: unknown field `shedule`"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"[webhooks.a]
url = "ftp://a.example/hook"
secret = "whsec_short"

[webhooks.b]
url = "https://b.example/hook"
secret_env = "NOT_SET"

[webhooks.c]
url = "https://c.example/hook"
secret_env = "PAGEHOOK_SECRET"

[[watchers]]
name = "Bad Name"
url = "not a url"
schedule = "*/5 * * *"
webhook = "nope"
fields.price = { css = "span[" }

[[watchers]]
name = "dup"
url = "https://shop.example/1"
webhook = "c"
fields.title = { css = "h1", regex = "(" }

[[watchers]]
name = "dup"
url = "https://shop.example/2"
webhook = "b"
"#;
        let errs = errors(text);
        let expect = [
            "watchers.toml:2:7: URL `ftp://a.example/hook` must be http:// or https:// with a host",
            "watchers.toml:3:10: secret is ",
            "watchers.toml:7:14: environment variable `NOT_SET` is not set",
            "watchers.toml:14:8: invalid watcher name `Bad Name`",
            "watchers.toml:15:7: invalid URL `not a url`",
            "watchers.toml:16:12: invalid cron expression \"*/5 * * *\"",
            "watchers.toml:17:11: unknown webhook `nope` (defined: a, b, c)",
            "watchers.toml:18:24: invalid CSS selector `span[`: Unexpected EOL",
            "watchers.toml:24:38: invalid regex: unclosed group",
            "watchers.toml:27:8: duplicate watcher name `dup`",
            "watchers.toml:26:1: watcher has no `fields`",
        ];
        assert_errors(&errs, &expect);
    }

    #[test]
    fn config_errors_keep_their_place_and_lose_their_secrets() {
        let errs = errors(&format!(
            r#"[webhooks]
secret = "{SECRET}"

[webhooks.a]
url = "https://bob:hunter2pw@/hook?token=t0ken"
secret_env = "{SECRET}"

[webhooks.b]
url = "ftp://bob:hunter2pw@b.example/hook"
secret_file = "{SECRET}"

[webhooks.c]
url = "https://c.example"
secret_credential = "{SECRET}"
"#
        ));
        let expect = ["watchers.toml:2:10: invalid type: a string, expected struct RawWebhook"];
        assert_errors(&errs, &expect);
        let errs = errors(&format!(
            r#"[webhooks.a]
url = "https://bob:hunter2pw@/hook?token=t0ken"
secret_env = "{SECRET}"

[webhooks.b]
url = "ftp://bob:hunter2pw@b.example/hook"
secret_file = "{SECRET}"

[webhooks.c]
url = "https://c.example"
secret_credential = "{SECRET}"
"#
        ));
        let expect = [
            "watchers.toml:2:7: invalid URL `https://***@/hook?token=***`: empty host",
            "watchers.toml:3:14: `secret_env` names where the secret is kept, and this is the secret itself",
            "watchers.toml:6:7: URL `ftp://***@b.example/hook` must be http:// or https://",
            "watchers.toml:7:15: `secret_file` names where the secret is kept",
            "watchers.toml:11:21: `secret_credential` names where the secret is kept",
        ];
        assert_errors(&errs, &expect);
        let errs = errors(&format!(
            "{HOOK}[[watchers]]\nname = \"w\"\nurl = \"https://s.example\"\nfields.p = {{ css = \"p\", type = \"{SECRET}\" }}\n"
        ));
        assert_errors(&errs, &["watchers.toml:7:32: unknown variant `whsec_***`"]);
        let secret = &SECRET["whsec_".len()..];
        let mistakes = [
            format!("[webhooks]\nsecret = \"{SECRET}\"\n"),
            format!(
                "[webhooks.a]\nurl = \"https://a.example\"\nretry = \"{SECRET}\"\nsecret = \"x\"\n"
            ),
            format!("[webhooks.a]\nurl = \"https://a.example\"\nheaders = \"{SECRET}\"\n"),
            format!("[webhooks.a]\nurl = \"https://a.example\"\nsecret_env = \"{SECRET}\"\n"),
            format!("[webhooks.a]\nurl = \"https://a.example\"\nsecret_env = \"x\\\"{SECRET}\"\n"),
        ];
        for text in mistakes {
            let errs = errors(&text);
            assert!(
                errs.iter()
                    .all(|e| e.starts_with("watchers.toml:") && !e.contains(secret)),
                "{errs:?}"
            );
        }
    }

    #[test]
    fn a_problem_of_a_default_is_reported_once_not_per_watcher() {
        let watchers: String = (0..5)
            .map(|i| format!("[[watchers]]\nname = \"w{i}\"\nurl = \"https://s.example/{i}\"\n"))
            .collect();
        let loaded = parse_text(&format!(
            "{HOOK}[defaults]\nbody = \"q=1\"\nschedule = \"every 10s\"\ntimeout = \"1m\"\nfields.t = {{ css = \"h1\" }}\n{watchers}"
        ))
        .unwrap();
        assert_warnings(
            &loaded,
            &[
                "watchers.toml:5:8: `body` is sent with GET",
                "watchers.toml:6:12: timeout (1m) is longer",
            ],
        );

        let errs = errors(&format!(
            "{HOOK}[defaults]\nfields.t = {{ css = \"div >\" }}\ntimeout = \"soon\"\n{watchers}"
        ));
        assert_errors(
            &errs,
            &[
                "watchers.toml:5:20: invalid CSS selector `div >`: a combinator",
                "watchers.toml:6:11: invalid duration `soon`",
            ],
        );
    }

    #[test]
    fn odd_but_legal_settings_are_warnings() {
        let loaded = parse_text(&format!(
            "[webhooks.a]\nurl = \"https://a.example\"\nsecret = \"{SECRET}\"\n[webhooks.unused]\nurl = \"https://b.example\"\nsecret = \"{SECRET}\"\n[[watchers]]\nname = \"w\"\nurl = \"https://s.example\"\nwebhook = \"a\"\nschedule = \"every 10s\"\ntimeout = \"1m\"\nfields.t = {{ css = \"h1\" }}\n"
        ))
        .unwrap();
        assert_warnings(
            &loaded,
            &[
                "watchers.toml:11:12: timeout (1m) is longer",
                "watchers.toml:4:11: webhook `unused` is not used",
            ],
        );
    }

    /// `loaded` warns exactly these, in this order, each starting as given.
    fn assert_warnings(loaded: &Loaded, expect: &[&str]) {
        let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings.len(), expect.len(), "{warnings:#?}");
        for (warning, want) in warnings.iter().zip(expect) {
            assert!(warning.starts_with(want), "{warnings:#?}");
        }
    }
}
