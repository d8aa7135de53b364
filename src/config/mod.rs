//! watchers.toml: raw serde types, defaults, validation, secret resolution, and the runtime
//! types every other part reads. Nothing after load handles an unparsed string.
//!
//! This file loads the file and validates the top level; each section has its own file:
//! `watcher`, `field`, `hooks`, `http`, `browser`, `admin` (the admin endpoint's keys), with
//! `diagnostic` for what is reported, `values` for the value types keys share, `secret` for
//! reading a secret wherever it is kept and `chunks` for reading the file a watcher at a time.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub(crate) const DEFAULT_SCHEDULE: &str = "every 15m";
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;
const DEFAULT_STATE_DIR: &str = "pagehook-state";
/// Recorded values kept per watcher: years of daily changes, yet a bounded store.
pub(crate) const DEFAULT_HISTORY_LIMIT: usize = 1000;

mod admin;
mod browser;
mod chunks;
mod cluster;
mod css;
mod diagnostic;
mod field;
mod hooks;
mod http;
mod secret;
mod values;
mod watcher;

pub use admin::AdminToken;
pub use cluster::{Cluster, Node, ShardBy, shard_of};
pub(crate) use diagnostic::{ConfigError, Diagnostic};
pub use hooks::Webhook;
pub(crate) use watcher::Watcher;

use diagnostic::without_quoted_strings;
use field::{Compiled, RawField, RawRule};
use hooks::RawWebhook;
use values::ByteSize;
use watcher::RawWatcher;

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) state_dir: PathBuf,
    /// Where /healthz and /metrics are served; None turns the admin endpoint off.
    pub(crate) admin_listen: Option<std::net::SocketAddr>,
    /// What the admin endpoint asks for, but on /healthz; None leaves it open.
    pub(crate) admin_token: Option<AdminToken>,
    pub webhooks: BTreeMap<String, Arc<Webhook>>,
    pub watchers: Vec<Arc<Watcher>>,
    /// Page requests in flight at once (`daemon.max_concurrency`).
    pub(crate) max_concurrency: usize,
    /// The `[browser]` table (see `config/browser`).
    pub(crate) browser: crate::fetch::browser::BrowserConfig,
    /// The `[cluster]` table and this node's part of it: `watchers` holds only that part.
    pub cluster: Cluster,
    /// The watchers in the file, on every shard.
    pub watchers_in_file: usize,
}

impl Config {
    pub(crate) fn watcher(&self, name: &str) -> Option<&Arc<Watcher>> {
        self.watchers.iter().find(|w| w.name == name)
    }
}

/// A watcher's or webhook's name: 1-128 characters from a-z, 0-9, - and _. It keys the store,
/// so an import checks its names by this rule too.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A config and the odd-but-legal settings worth a warning.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub(crate) warnings: Vec<Diagnostic>,
}

/// Where a config's outside inputs come from, so tests need no process environment.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
    /// For `[cluster] shard = "hostname"`.
    fn hostname(&self) -> Option<String> {
        cluster::hostname()
    }
}

/// The real process environment.
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Read and validate a config file, keeping this node's watchers.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    load_for(path, Node::Own { flag: None })
}

/// Read and validate a config file as `node`.
pub fn load_for(path: &Path, node: Node<'_>) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
        errors: vec![Diagnostic {
            file: path.to_owned(),
            line: 1,
            column: 1,
            message: format!("cannot read config: {err}"),
        }],
    })?;
    parse_for(&text, path, &ProcessEnv, node)
}

/// Validate config text as if read from `path` (relative secret files resolve beside it).
pub fn parse(text: &str, path: &Path, env: &dyn Environment) -> Result<Loaded, ConfigError> {
    parse_for(text, path, env, Node::Own { flag: None })
}

/// [`parse`] as `node`.
pub fn parse_for(
    text: &str,
    path: &Path,
    env: &dyn Environment,
    node: Node<'_>,
) -> Result<Loaded, ConfigError> {
    let mut v = Validator {
        file: path,
        text,
        env,
        errors: Vec::new(),
        warnings: Vec::new(),
        reported: HashSet::new(),
        compiled: Compiled::default(),
    };
    let cut = chunks::cut(text);
    let parsed = toml::from_str::<RawConfig>(cut.as_ref().map_or(text, |cut| &cut.rest));
    let mut raw = match parsed {
        Ok(raw) => raw,
        Err(err) => {
            // serde stops at the first shape error; semantic checks below report all at once.
            let span = err.span().unwrap_or(0..0);
            // A watcher before that place may hold the file's first one, as it would whole.
            let earlier = cut.iter().flat_map(|cut| &cut.watchers).find_map(|range| {
                (range.start < span.start)
                    .then(|| chunks::watcher(text, range).err())
                    .flatten()
            });
            let (span, message) = earlier.unwrap_or((span, err.message().to_owned()));
            v.error(span, without_quoted_strings(message.trim_end()));
            return Err(ConfigError { errors: v.errors });
        }
    };
    let watchers = match &cut {
        Some(cut) => RawWatchers::Cut(text, &cut.watchers),
        None => RawWatchers::Parsed(std::mem::take(&mut raw.watchers)),
    };
    match v.config(raw, watchers, node) {
        Some(config) if v.errors.is_empty() => Ok(Loaded {
            config,
            warnings: v.warnings,
        }),
        _ => Err(ConfigError { errors: v.errors }),
    }
}

/// The `[[watchers]]` tables, parsed with the rest of the file or one at a time.
enum RawWatchers<'a> {
    Parsed(Vec<Spanned<Box<RawWatcher>>>),
    Cut(&'a str, &'a [Range<usize>]),
}

impl<'a> RawWatchers<'a> {
    fn len(&self) -> usize {
        match self {
            RawWatchers::Parsed(all) => all.len(),
            RawWatchers::Cut(_, ranges) => ranges.len(),
        }
    }

    /// Each watcher in file order, or the place and message of the first that does not parse.
    fn into_iter(self) -> Box<dyn Iterator<Item = chunks::Parsed> + 'a> {
        match self {
            RawWatchers::Parsed(all) => Box::new(all.into_iter().map(Ok)),
            RawWatchers::Cut(text, ranges) => {
                Box::new(ranges.iter().map(move |range| chunks::watcher(text, range)))
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    daemon: Option<Spanned<RawDaemon>>,
    defaults: Option<Spanned<RawWatcher>>,
    #[serde(default)]
    webhooks: BTreeMap<Spanned<String>, Spanned<RawWebhook>>,
    // Boxed, so the list grows by pointers, not by whole watchers: it matters at 10,000.
    #[serde(default)]
    watchers: Vec<Spanned<Box<RawWatcher>>>,
    proxies: Option<Spanned<http::RawProxies>>,
    browser: Option<Spanned<browser::RawBrowser>>,
    cluster: Option<Spanned<cluster::RawCluster>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    state_dir: Option<PathBuf>,
    admin_listen: Option<Spanned<String>>,
    admin_token: Option<Spanned<String>>,
    admin_token_env: Option<Spanned<String>>,
    admin_token_file: Option<Spanned<PathBuf>>,
    admin_token_credential: Option<Spanned<String>>,
    max_concurrency: Option<Spanned<i64>>,
}

/// A string or a list of strings, as TOML users write either.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

struct Validator<'a> {
    file: &'a Path,
    text: &'a str,
    env: &'a dyn Environment,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// What was reported, by kind, place and message: a key in [defaults] is checked again
    /// for every watcher that inherits it, yet its problem is one problem.
    reported: HashSet<(bool, usize, String)>,
    compiled: Compiled,
}

impl Validator<'_> {
    /// The config, or None when a watcher's table does not parse: like any shape error, it
    /// is then the one error told.
    fn config(
        &mut self,
        raw: RawConfig,
        raw_watchers: RawWatchers<'_>,
        node: Node<'_>,
    ) -> Option<Config> {
        let (daemon_span, daemon) = raw
            .daemon
            .map_or((0..0, RawDaemon::default()), |d| (d.span(), d.into_inner()));
        let (admin_listen, admin_token) = self.admin(daemon_span, &daemon);
        let state_dir = resolve_state_dir(daemon.state_dir, self.file, self.env);

        // Watchers are checked against every declared webhook, valid or not, so one bad
        // webhook is reported once, not again at each watcher that uses it.
        let mut declared = BTreeMap::new();
        let mut webhooks = BTreeMap::new();
        for (name, hook) in raw.webhooks {
            let span = name.span();
            let name = name.into_inner();
            self.check_name(&span, "webhook", &name);
            if let Some(hook) = self.webhook(&name, hook) {
                webhooks.insert(name.clone(), Arc::new(hook));
            }
            declared.insert(name, span);
        }

        let defaults = match raw.defaults {
            Some(d) => {
                if let Some(name) = &d.get_ref().name {
                    self.error(
                        name.span(),
                        "`name` cannot be set in [defaults]: each watcher needs its own",
                    );
                }
                d.into_inner()
            }
            None => RawWatcher::default(),
        };

        let max_concurrency = self.max_concurrency(daemon.max_concurrency.as_ref());
        let pool = raw.proxies.and_then(|p| self.proxies(p));
        let cluster = self.cluster(raw.cluster, node);
        let watchers_in_file = raw_watchers.len();
        let mut watchers = Vec::with_capacity(watchers_in_file / cluster.shards as usize + 1);
        let mut seen = BTreeSet::new();
        let mut used = BTreeSet::new();
        for raw in raw_watchers.into_iter() {
            let raw = match raw {
                Ok(raw) => raw,
                Err((span, message)) => {
                    self.errors.clear();
                    self.warnings.clear();
                    self.error(span, without_quoted_strings(message.trim_end()));
                    return None;
                }
            };
            let span = raw.span();
            let raw = (*raw.into_inner()).or(&defaults);
            if let Some(name) = &raw.name
                && !seen.insert(name.get_ref().clone())
            {
                let msg = format!("duplicate watcher name `{}`", name.get_ref());
                self.error(name.span(), msg);
            }
            if let Some(w) = self.watcher(span, raw, &declared, pool.as_ref()) {
                used.extend(w.webhooks.iter().cloned());
                // Every watcher is validated on every node, so that all nodes agree on
                // whether the file is valid; only this node's own are kept.
                if cluster.keeps(&w) {
                    watchers.push(Arc::new(w));
                }
            }
        }
        for (name, span) in declared.iter().filter(|(n, _)| !used.contains(*n)) {
            self.warn(
                span.clone(),
                format!("webhook `{name}` is not used by any watcher"),
            );
        }
        let browser = self.browser_config(raw.browser);
        let rendered: Vec<&Watcher> = watchers
            .iter()
            .filter(|w| w.browser.is_some())
            .map(|w| &**w)
            .collect();
        self.browser_available(&browser, &rendered);
        http::share_host_policies(&mut watchers);
        if watchers_in_file == 0 && self.errors.is_empty() {
            self.warn(0..0, "no [[watchers]] defined: there is nothing to check");
        } else if watchers.is_empty() && self.errors.is_empty() {
            let msg = format!(
                "shard {} of {} owns none of the {watchers_in_file} watchers: it has nothing to check",
                cluster.node.as_ref().map_or(0, |i| *i),
                cluster.shards
            );
            self.warn(0..0, msg);
        }

        Some(Config {
            state_dir,
            admin_listen,
            admin_token,
            webhooks,
            watchers,
            max_concurrency,
            browser,
            cluster,
            watchers_in_file,
        })
    }

    fn check_name(&mut self, span: &Range<usize>, what: &str, name: &str) -> bool {
        let ok = is_valid_name(name);
        if !ok {
            self.error(
                span.clone(),
                format!(
                    "invalid {what} name `{name}`: use 1-128 characters from a-z, 0-9, - and _"
                ),
            );
        }
        ok
    }

    fn beside_config(&self, path: &Path) -> PathBuf {
        beside(self.file, path)
    }
}

fn beside(file: &Path, path: &Path) -> PathBuf {
    match file.parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_owned(),
    }
}

/// An explicit relative state_dir belongs to the config file, like secret_file does; the
/// fallback is where the user runs pagehook.
fn resolve_state_dir(dir: Option<PathBuf>, file: &Path, env: &dyn Environment) -> PathBuf {
    match dir {
        Some(dir) => beside(file, &dir),
        None => env
            .var("STATE_DIRECTORY")
            .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), PathBuf::from),
    }
}

/// Where the state of the config at `path` lives, read from its `[daemon]` table without
/// compiling a watcher: all a command needs to reach the running daemon. None when the file
/// does not parse; loading it says why.
pub fn state_dir(path: &Path, env: &dyn Environment) -> Option<PathBuf> {
    let text = std::fs::read_to_string(path).ok()?;
    let cut = chunks::cut(&text)?;
    let raw: RawConfig = toml::from_str(&cut.rest).ok()?;
    let state_dir = raw.daemon.and_then(|d| d.into_inner().state_dir);
    Some(resolve_state_dir(state_dir, path, env))
}

/// Helpers for tests that build configs from text.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::HashMap;
    use std::path::Path;

    use super::{ConfigError, Environment, Loaded, parse};

    /// The webhook secret every test config reads from `PAGEHOOK_SECRET`.
    pub(crate) const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// An environment holding exactly these variables.
    pub(crate) struct FakeEnv(pub HashMap<&'static str, &'static str>);

    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }

    /// A webhook for test configs to name.
    pub(crate) const HOOK: &str =
        "[webhooks.a]\nurl = \"https://a.example\"\nsecret_env = \"PAGEHOOK_SECRET\"\n";

    /// Parse `text` as `watchers.toml` with `PAGEHOOK_SECRET` set.
    pub(crate) fn parse_text(text: &str) -> Result<Loaded, ConfigError> {
        let env = FakeEnv([("PAGEHOOK_SECRET", SECRET)].into());
        parse(text, Path::new("watchers.toml"), &env)
    }

    /// The errors of a config that must be rejected.
    pub(crate) fn errors(text: &str) -> Vec<String> {
        match parse_text(text) {
            Ok(_) => panic!("config should be rejected:\n{text}"),
            Err(err) => err.errors.iter().map(ToString::to_string).collect(),
        }
    }

    /// An environment with no variables set.
    pub(crate) struct NoEnv;

    impl Environment for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }

    /// `errs` holds exactly one error starting with each of `expect`.
    pub(crate) fn assert_errors(errs: &[String], expect: &[&str]) {
        for want in expect {
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "missing {want:?} in:\n{}",
                errs.join("\n")
            );
        }
        assert_eq!(errs.len(), expect.len(), "{}", errs.join("\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::schedule::DEFAULT_MAX_JITTER;

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../watchers.toml");
        let loaded = parse_text(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(loaded.config.watchers.len(), 2);
        let attic = &loaded.config.watchers[0];
        assert_eq!(attic.fields.len(), 3);
        assert_eq!(attic.webhooks, ["pipeline"]);
        assert_eq!(attic.timeout, Duration::from_secs(30));
        assert!(attic.offset < DEFAULT_MAX_JITTER);
    }

    /// `status` reaches the daemon by the state directory alone: it must be the one a full
    /// load finds, relative, absolute or from systemd.
    #[test]
    fn the_state_dir_read_alone_is_the_one_a_full_load_finds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchers.toml");
        let watcher = "[[watchers]]\nname = \"w\"\nurl = \"https://s.example\"\nfields.t = { css = \"h1\" }\n";
        let systemd = FakeEnv(
            [
                ("PAGEHOOK_SECRET", SECRET),
                ("STATE_DIRECTORY", "/var/lib/pagehook"),
            ]
            .into(),
        );
        for daemon in [
            "[daemon]\nstate_dir = \"state\"\n",
            "[daemon]\nstate_dir = \"/srv/ph\"\n",
            "",
        ] {
            let text = format!("{daemon}{HOOK}{watcher}");
            std::fs::write(&path, &text).unwrap();
            let full = parse(&text, &path, &systemd).unwrap().config.state_dir;
            assert_eq!(state_dir(&path, &systemd), Some(full.clone()), "{daemon}");
            assert_ne!(full, PathBuf::from(DEFAULT_STATE_DIR));
        }
        std::fs::write(&path, "[daemon\n").unwrap();
        assert_eq!(state_dir(&path, &systemd), None);
    }

    #[test]
    fn admin_listen_and_history_limit() {
        let watcher = |extra: &str| {
            format!(
                "[webhooks.a]\nurl = \"https://a.example\"\nsecret = \"{SECRET}\"\n[defaults]\nhistory_limit = 5\n[[watchers]]\nname = \"w\"\nurl = \"https://s.example\"\nfields.t = {{ css = \"h1\" }}\n{extra}"
            )
        };
        let loaded = parse_text(&format!(
            "[daemon]\nadmin_listen = \"127.0.0.1:9480\"\n{}",
            watcher("")
        ))
        .unwrap();
        assert_eq!(
            loaded.config.admin_listen,
            Some("127.0.0.1:9480".parse().unwrap())
        );
        assert_eq!(
            loaded.config.watchers[0].history_limit, 5,
            "from [defaults]"
        );
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

        let own = parse_text(&watcher("history_limit = 0\n")).unwrap();
        assert_eq!(own.config.watchers[0].history_limit, 0);
        assert_eq!(own.config.admin_listen, None, "off unless set");

        // Beyond loopback only with a token (see config/admin for the token's own tests).
        let errs = errors(&format!(
            "[daemon]\nadmin_listen = \"0.0.0.0:9480\"\n{}",
            watcher("")
        ));
        assert_errors(
            &errs,
            &[
                "watchers.toml:2:16: admin_listen 0.0.0.0:9480 is not a loopback address: set admin_token (or admin_token_env, admin_token_file, admin_token_credential)",
            ],
        );
        let guarded = parse_text(&format!(
            "[daemon]\nadmin_listen = \"0.0.0.0:9480\"\nadmin_token = \"0123456789abcdef\"\n{}",
            watcher("")
        ))
        .unwrap();
        assert!(guarded.warnings.is_empty(), "{:?}", guarded.warnings);
        let env = FakeEnv(
            [
                ("PAGEHOOK_SECRET", SECRET),
                ("PAGEHOOK_ADMIN_LISTEN", "127.0.0.1:9482"),
            ]
            .into(),
        );
        let text = format!(
            "[daemon]\nadmin_listen = \"127.0.0.1:9480\"\n{}",
            watcher("")
        );
        let overridden = parse(&text, Path::new("watchers.toml"), &env).unwrap();
        assert_eq!(
            overridden.config.admin_listen,
            Some("127.0.0.1:9482".parse().unwrap()),
            "the environment wins"
        );
        let errs = errors(&format!(
            "[daemon]\nadmin_listen = \"localhost\"\n{}",
            watcher("history_limit = -1\n")
        ));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with("watchers.toml:2:16: invalid admin_listen `localhost`"),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("watchers.toml:12:17: history_limit must be 0"),
            "{errs:?}"
        );
    }
}
