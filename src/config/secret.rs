//! Where a secret is kept: inline, in an environment variable, in a file beside the config, or
//! in a systemd credential. Webhook secrets (`secret`, `secret_env`, ...) and the admin token
//! (`admin_token`, `admin_token_env`, ...) are both read here, by the same rules; what a secret
//! must look like is its reader's business.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::Validator;

/// The four keys of one kind of secret, as the config spells them.
pub(super) struct Keys {
    pub(super) inline: &'static str,
    pub(super) env: &'static str,
    pub(super) file: &'static str,
    pub(super) credential: &'static str,
    /// How every such secret begins, if they share a prefix: a name that begins so is the
    /// secret itself, misplaced. Without one a name cannot be told from a misplaced secret, so
    /// messages name the key instead of quoting what it says.
    pub(super) prefix: Option<&'static str>,
}

/// The four keys as written; exactly one may be set. `T` is what the inline key holds.
pub(super) struct Sources<'r, T> {
    pub(super) inline: Option<&'r Spanned<T>>,
    pub(super) env: Option<&'r Spanned<String>>,
    pub(super) file: Option<&'r Spanned<PathBuf>>,
    pub(super) credential: Option<&'r Spanned<String>>,
}

impl<T> Sources<'_, T> {
    pub(super) fn is_set(&self) -> bool {
        self.count() > 0
    }

    fn count(&self) -> usize {
        [
            self.inline.is_some(),
            self.env.is_some(),
            self.file.is_some(),
            self.credential.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count()
    }
}

/// What the keys gave, each with the place of the key that gave it.
pub(super) enum Kept<'r, T> {
    /// None of the keys is set.
    Unset,
    /// The keys are wrong, or what they name cannot be read: reported already.
    Invalid,
    Inline(&'r T, Range<usize>),
    /// Read from the environment, a file or a credential, untrimmed.
    Read(String, Range<usize>),
}

impl Validator<'_> {
    /// The secret `sources` hold. `owner` names, and `span` points at, the table they are in.
    pub(super) fn kept<'r, T>(
        &mut self,
        owner: &str,
        span: Range<usize>,
        keys: &Keys,
        sources: &Sources<'r, T>,
    ) -> Kept<'r, T> {
        match sources.count() {
            0 => return Kept::Unset,
            1 => {}
            _ => {
                let msg = format!(
                    "{owner}: set only one of {}, {}, {} and {}",
                    keys.inline, keys.env, keys.file, keys.credential
                );
                self.error(span, msg);
                return Kept::Invalid;
            }
        }
        if let Some(value) = sources.inline {
            return Kept::Inline(value.get_ref(), value.span());
        }
        let read = if let Some(var) = sources.env {
            self.read_env(keys, var)
        } else if let Some(name) = sources.credential {
            self.read_credential(keys, name)
        } else {
            let file = sources.file.expect("counted above");
            self.read_file(keys, file)
        };
        read.map_or(Kept::Invalid, |(text, at)| Kept::Read(text, at))
    }

    fn read_env(&mut self, keys: &Keys, var: &Spanned<String>) -> Option<(String, Range<usize>)> {
        if self.names_a_secret(keys, keys.env, var.get_ref(), var.span()) {
            return None;
        }
        match self.env.var(var.get_ref()) {
            Some(value) => Some((value, var.span())),
            None => {
                let what = keys.shown(
                    format!("environment variable `{}`", var.get_ref()),
                    format!("the environment variable {} names", keys.env),
                );
                self.error(var.span(), format!("{what} is not set"));
                None
            }
        }
    }

    fn read_file(
        &mut self,
        keys: &Keys,
        file: &Spanned<PathBuf>,
    ) -> Option<(String, Range<usize>)> {
        let named = file.get_ref().to_string_lossy();
        if self.names_a_secret(keys, keys.file, &named, file.span()) {
            return None;
        }
        let path = self.beside_config(file.get_ref());
        self.read_path(keys, keys.file, keys.file, &path, file.span())
    }

    /// A secret handed over by systemd's `LoadCredential=`: the file `name` in
    /// `$CREDENTIALS_DIRECTORY`, readable only by the service, never in the unit or the config.
    /// Outside the service (`pagehook check` or `status` from a shell) that variable is unset and
    /// the file `name` beside the config is read instead: where the shipped unit loads it from.
    fn read_credential(
        &mut self,
        keys: &Keys,
        name: &Spanned<String>,
    ) -> Option<(String, Range<usize>)> {
        if self.names_a_secret(keys, keys.credential, name.get_ref(), name.span()) {
            return None;
        }
        let plain = !name.get_ref().is_empty()
            && !name.get_ref().contains('/')
            && !name.get_ref().starts_with('.');
        if !plain {
            let what = keys.shown(
                format!("credential name `{}`", name.get_ref()),
                keys.credential.to_owned(),
            );
            let msg = format!("invalid {what}: a file name, as in LoadCredential=NAME:PATH");
            self.error(name.span(), msg);
            return None;
        }
        let path = match self.env.var("CREDENTIALS_DIRECTORY") {
            Some(dir) => Path::new(&dir).join(name.get_ref()),
            None => self.beside_config(Path::new(name.get_ref())),
        };
        self.read_path(keys, keys.credential, "credential", &path, name.span())
    }

    /// The file at `path`, which `key` names; `label` says what it is where the path is shown.
    fn read_path(
        &mut self,
        keys: &Keys,
        key: &str,
        label: &str,
        path: &Path,
        span: Range<usize>,
    ) -> Option<(String, Range<usize>)> {
        match std::fs::read_to_string(path) {
            Ok(value) => Some((value, span)),
            Err(err) => {
                let which = keys.shown(format!("{label} {}", path.display()), key.to_owned());
                self.error(span, format!("cannot read {which}: {err}"));
                None
            }
        }
    }

    /// `key` names where the secret is kept; the secret itself in its place is a slip worth
    /// naming (and never echoing).
    fn names_a_secret(&mut self, keys: &Keys, key: &str, value: &str, span: Range<usize>) -> bool {
        let Some(prefix) = keys.prefix else {
            return false;
        };
        if !value.trim().starts_with(prefix) {
            return false;
        }
        let msg = format!(
            "`{key}` names where the secret is kept, and this is the secret itself: move it to `{}`, or keep it elsewhere and name that",
            keys.inline
        );
        self.error(span, msg);
        true
    }
}

impl Keys {
    /// `quoted` where a name cannot be a misplaced secret (see `prefix`), else `unquoted`.
    fn shown(&self, quoted: String, unquoted: String) -> String {
        if self.prefix.is_some() {
            quoted
        } else {
            unquoted
        }
    }
}
