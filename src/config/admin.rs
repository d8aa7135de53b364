//! `[daemon] admin_listen` and the admin token: where the admin endpoint listens and what
//! guards it. Beyond loopback it must be guarded: /metrics names every watcher and endpoint,
//! and the dashboard shows more.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use toml::Spanned;

use super::secret::{Kept, Keys, Sources};
use super::{RawDaemon, Validator};

/// Overrides `[daemon] admin_listen`.
const ADMIN_LISTEN_VAR: &str = "PAGEHOOK_ADMIN_LISTEN";

/// Where the admin token is kept. A token has no fixed prefix, so one misplaced under a key
/// that should name where it is kept cannot be recognised: messages name these keys instead of
/// quoting them.
const KEYS: Keys = Keys {
    inline: "admin_token",
    env: "admin_token_env",
    file: "admin_token_file",
    credential: "admin_token_credential",
    prefix: None,
};

/// Anyone who reaches the port may try tokens as fast as it answers: fewer characters than
/// this are within reach of such guessing.
const MIN_TOKEN_LEN: usize = 16;

/// The admin token, kept only as its SHA-256. A request's token is hashed too and the digests
/// compared in constant time, so how long a comparison takes tells neither the token's bytes
/// nor its length. Equality (for a reload) compares digests.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken([u8; 32]);

/// Why a text cannot be the admin token; never quotes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the admin token is empty")]
    Empty,
    #[error(
        "the admin token must be printable ASCII without spaces: an Authorization header carries it"
    )]
    NotPrintable,
    #[error(
        "the admin token is too short: use at least {MIN_TOKEN_LEN} characters, better 32 random ones (`openssl rand -hex 32` makes one), since anyone who reaches admin_listen can try tokens as fast as it answers"
    )]
    TooShort,
}

impl FromStr for AdminToken {
    type Err = TokenError;

    fn from_str(text: &str) -> Result<Self, TokenError> {
        if text.is_empty() {
            Err(TokenError::Empty)
        } else if !text.bytes().all(|b| b.is_ascii_graphic()) {
            Err(TokenError::NotPrintable)
        } else if text.len() < MIN_TOKEN_LEN {
            Err(TokenError::TooShort)
        } else {
            Ok(AdminToken(digest(text.as_bytes())))
        }
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken([redacted])")
    }
}

impl AdminToken {
    /// Whether `shown`, as a request presents it, is this token.
    pub(crate) fn admits(&self, shown: &[u8]) -> bool {
        digest(shown).ct_eq(&self.0).into()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Validator<'_> {
    /// The admin endpoint's address (None: off) and token, from the `[daemon]` table at `span`
    /// and the environment.
    pub(super) fn admin(
        &mut self,
        span: Range<usize>,
        daemon: &RawDaemon,
    ) -> (Option<SocketAddr>, Option<AdminToken>) {
        let sources = Sources {
            inline: daemon.admin_token.as_ref(),
            env: daemon.admin_token_env.as_ref(),
            file: daemon.admin_token_file.as_ref(),
            credential: daemon.admin_token_credential.as_ref(),
        };
        let token = self.admin_token(span, &sources);
        // A token that is set but wrong has its own error; the address needs no second one.
        let guarded = sources.is_set();
        // Shards on one host share the file, not a port: the environment names each one's.
        let listen = match self.env.var(ADMIN_LISTEN_VAR).filter(|a| !a.is_empty()) {
            Some(addr) => self.admin_listen(&Spanned::new(0..0, addr), ADMIN_LISTEN_VAR, guarded),
            None => daemon
                .admin_listen
                .as_ref()
                .and_then(|a| self.admin_listen(a, "admin_listen", guarded)),
        };
        (listen, token)
    }

    fn admin_token(
        &mut self,
        span: Range<usize>,
        sources: &Sources<'_, String>,
    ) -> Option<AdminToken> {
        let (text, at) = match self.kept("[daemon]", span, &KEYS, sources) {
            Kept::Unset | Kept::Invalid => return None,
            Kept::Inline(text, at) => (text.clone(), at),
            Kept::Read(text, at) => (text, at),
        };
        // A file's final newline is no part of the token.
        match text.trim().parse() {
            Ok(token) => Some(token),
            Err(err) => {
                self.error(at, err.to_string());
                None
            }
        }
    }

    fn admin_listen(
        &mut self,
        raw: &Spanned<String>,
        key: &str,
        guarded: bool,
    ) -> Option<SocketAddr> {
        let Ok(addr) = raw.get_ref().parse::<SocketAddr>() else {
            let msg = format!(
                "invalid {key} `{}`: write IP:PORT, e.g. \"127.0.0.1:9480\"",
                raw.get_ref()
            );
            self.error(raw.span(), msg);
            return None;
        };
        if !addr.ip().is_loopback() && !guarded {
            let msg = format!(
                "{key} {addr} is not a loopback address: set {} (or {}, {}, {}) so that other hosts cannot read /metrics and the rest of the admin endpoint without it (/healthz stays open), or listen on 127.0.0.1",
                KEYS.inline, KEYS.env, KEYS.file, KEYS.credential
            );
            self.error(raw.span(), msg);
        }
        Some(addr)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::TokenError;
    use crate::config::testing::*;
    use crate::config::*;

    const TOKEN: &str = "9f2c4e1ab37d58e6c0a1";

    /// A valid config with `daemon` in its `[daemon]` table.
    fn config(daemon: &str) -> String {
        format!(
            "[daemon]\n{daemon}{HOOK}[[watchers]]\nname = \"w\"\nurl = \"https://s.example\"\nfields.t = {{ css = \"h1\" }}\n"
        )
    }

    fn env(vars: &[(&'static str, &'static str)]) -> FakeEnv {
        let mut all: HashMap<_, _> = vars.iter().copied().collect();
        all.insert("PAGEHOOK_SECRET", SECRET);
        FakeEnv(all)
    }

    /// `text` as the config at `path`, in `env`.
    fn parse_at(path: &Path, text: &str, env: &FakeEnv) -> Result<Loaded, Vec<String>> {
        parse(text, path, env).map_err(|err| err.errors.iter().map(ToString::to_string).collect())
    }

    fn token() -> Option<AdminToken> {
        Some(TOKEN.parse().unwrap())
    }

    #[test]
    fn the_token_is_read_from_each_of_its_four_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin-token"), format!("{TOKEN}\n")).unwrap();
        let creds = tempfile::tempdir().unwrap();
        std::fs::write(creds.path().join("admin"), TOKEN).unwrap();
        let creds = &*creds.path().to_str().unwrap().to_owned().leak();
        for (daemon, vars) in [
            (format!("admin_token = \"{TOKEN}\"\n"), vec![]),
            (
                "admin_token_env = \"PAGEHOOK_ADMIN_TOKEN\"\n".to_owned(),
                vec![("PAGEHOOK_ADMIN_TOKEN", TOKEN)],
            ),
            // Relative to the config, and the file's newline is no part of the token.
            ("admin_token_file = \"admin-token\"\n".to_owned(), vec![]),
            (
                "admin_token_credential = \"admin\"\n".to_owned(),
                vec![("CREDENTIALS_DIRECTORY", creds)],
            ),
            // From a shell, a credential is the file of that name beside the config.
            (
                "admin_token_credential = \"admin-token\"\n".to_owned(),
                vec![],
            ),
        ] {
            let at = dir.path().join("watchers.toml");
            let loaded = parse_at(&at, &config(&daemon), &env(&vars))
                .unwrap_or_else(|e| panic!("{daemon}: {e:?}"));
            assert_eq!(loaded.config.admin_token, token(), "{daemon}");
        }
        let open = parse_text(&config("")).unwrap();
        assert_eq!(open.config.admin_token, None, "no token unless set");
    }

    #[test]
    fn one_source_and_a_strong_token() {
        let errs = errors(&config(&format!(
            "admin_token = \"{TOKEN}\"\nadmin_token_env = \"PAGEHOOK_ADMIN_TOKEN\"\n"
        )));
        assert_errors(
            &errs,
            &[
                "watchers.toml:1:1: [daemon]: set only one of admin_token, admin_token_env, admin_token_file and admin_token_credential",
            ],
        );
        for (value, want) in [
            ("", "watchers.toml:2:15: the admin token is empty"),
            ("  ", "watchers.toml:2:15: the admin token is empty"),
            (
                "0123456789abcde",
                "watchers.toml:2:15: the admin token is too short: use at least 16 characters",
            ),
            (
                "0123456789 abcdef",
                "watchers.toml:2:15: the admin token must be printable ASCII without spaces",
            ),
        ] {
            let errs = errors(&config(&format!("admin_token = \"{value}\"\n")));
            assert_errors(&errs, &[want]);
        }
        // An empty variable is an empty token, not a missing one.
        let text = config("admin_token_env = \"PAGEHOOK_ADMIN_TOKEN\"\n");
        let empty = env(&[("PAGEHOOK_ADMIN_TOKEN", "")]);
        let errs = parse_at(Path::new("watchers.toml"), &text, &empty).unwrap_err();
        assert_errors(&errs, &["watchers.toml:2:19: the admin token is empty"]);
    }

    #[test]
    fn beyond_loopback_a_token_is_required_and_then_no_warning() {
        for addr in ["0.0.0.0:9480", "192.0.2.7:9480", "[::]:9480"] {
            let errs = errors(&config(&format!("admin_listen = \"{addr}\"\n")));
            let addr: std::net::SocketAddr = addr.parse().unwrap();
            assert_errors(
                &errs,
                &[&format!(
                    "watchers.toml:2:16: admin_listen {addr} is not a loopback address: set admin_token (or admin_token_env, admin_token_file, admin_token_credential) so that other hosts cannot"
                )],
            );
            let guarded = parse_text(&config(&format!(
                "admin_listen = \"{addr}\"\nadmin_token = \"{TOKEN}\"\n"
            )))
            .unwrap();
            assert_eq!(guarded.config.admin_listen, Some(addr));
            assert!(guarded.warnings.is_empty(), "{:?}", guarded.warnings);
        }
        // On loopback too, a token set is a token required.
        let local = parse_text(&config(&format!(
            "admin_listen = \"127.0.0.1:9480\"\nadmin_token = \"{TOKEN}\"\n"
        )))
        .unwrap();
        assert_eq!(local.config.admin_token, token());

        // A token set but unreadable has its error; the address gets no second one.
        let errs = errors(&config(
            "admin_listen = \"0.0.0.0:9480\"\nadmin_token_env = \"PAGEHOOK_ADMIN_TOKEN\"\n",
        ));
        assert_errors(
            &errs,
            &["watchers.toml:3:19: the environment variable admin_token_env names is not set"],
        );
    }

    #[test]
    fn the_address_from_the_environment_follows_the_same_rule() {
        let (at, vars) = (
            Path::new("watchers.toml"),
            env(&[("PAGEHOOK_ADMIN_LISTEN", "0.0.0.0:9481")]),
        );
        let text = config("admin_listen = \"127.0.0.1:9480\"\n");
        let errs = parse_at(at, &text, &vars).unwrap_err();
        assert_errors(
            &errs,
            &[
                "watchers.toml:1:1: PAGEHOOK_ADMIN_LISTEN 0.0.0.0:9481 is not a loopback address: set admin_token",
            ],
        );
        let text = config(&format!(
            "admin_listen = \"127.0.0.1:9480\"\nadmin_token = \"{TOKEN}\"\n"
        ));
        let loaded = parse_at(at, &text, &vars).unwrap();
        assert_eq!(
            loaded.config.admin_listen,
            Some("0.0.0.0:9481".parse().unwrap())
        );
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn the_token_never_reaches_debug_output_or_errors() {
        let loaded = parse_text(&config(&format!("admin_token = \"{TOKEN}\"\n"))).unwrap();
        let shown = format!("{:?}", loaded.config);
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(shown.contains("AdminToken([redacted])"), "{shown}");

        // The token itself where a key should say where it is kept: not echoed back.
        let short = "0123456789abcde";
        let mut errs = Vec::new();
        for key in [
            "admin_token_env",
            "admin_token_file",
            "admin_token_credential",
        ] {
            errs.extend(errors(&config(&format!("{key} = \"{TOKEN}\"\n"))));
            errs.extend(errors(&config(&format!("{key} = \"{TOKEN}/x\"\n"))));
        }
        errs.extend(errors(&config(&format!("admin_token = \"{short}\"\n"))));
        errs.extend(errors(&config(&format!("admin_token = [\"{TOKEN}\"]\n"))));
        assert_eq!(errs.len(), 8, "{errs:#?}");
        for err in &errs {
            assert!(!err.contains(TOKEN) && !err.contains(short), "{err}");
        }
    }

    #[test]
    fn weak_tokens_are_refused_and_a_token_prints_redacted() {
        assert_eq!("".parse::<AdminToken>(), Err(TokenError::Empty));
        assert_eq!(
            "with a space inside!".parse::<AdminToken>(),
            Err(TokenError::NotPrintable)
        );
        assert_eq!(
            "short-t0ken".parse::<AdminToken>(),
            Err(TokenError::TooShort)
        );
        let token: AdminToken = TOKEN.parse().unwrap();
        assert_eq!(format!("{token:?}"), "AdminToken([redacted])");
    }
}
