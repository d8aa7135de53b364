//! The browser keys: the `[browser]` table, and a watcher's `browser` and `wait_for`.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::{RawWatcher, Validator, Watcher, css};
use crate::fetch::browser::{BrowserConfig, BrowserPage, DEFAULT_MAX_TABS, Source};

/// More tabs than this is a typo: each is a renderer process of 50-100 MB.
const MAX_TABS_LIMIT: i64 = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBrowser {
    executable: Option<Spanned<PathBuf>>,
    endpoint: Option<Spanned<String>>,
    max_tabs: Option<Spanned<i64>>,
    load_media: Option<bool>,
}

impl Validator<'_> {
    pub(super) fn browser_config(&mut self, raw: Option<Spanned<RawBrowser>>) -> BrowserConfig {
        let Some(raw) = raw else {
            return BrowserConfig::default();
        };
        let span = raw.span();
        let raw = raw.into_inner();
        let source = match (&raw.executable, &raw.endpoint) {
            (Some(_), Some(_)) => {
                self.error(
                    span,
                    "[browser]: set `executable` or `endpoint`, not both: pagehook either starts a browser or uses a running one",
                );
                Source::Discover
            }
            (Some(path), None) => Source::Executable(self.beside_config(path.get_ref())),
            (None, Some(endpoint)) => match Url::parse(endpoint.get_ref()) {
                Ok(url) if matches!(url.scheme(), "ws" | "wss") => Source::Endpoint(url),
                _ => {
                    self.error(
                        endpoint.span(),
                        "`endpoint` must be a DevTools WebSocket URL, ws://HOST:PORT/devtools/browser/ID (or wss://)",
                    );
                    Source::Discover
                }
            },
            (None, None) => Source::Discover,
        };
        let max_tabs = match &raw.max_tabs {
            None => DEFAULT_MAX_TABS,
            Some(n) if (1..=MAX_TABS_LIMIT).contains(n.get_ref()) => *n.get_ref() as usize,
            Some(n) => {
                self.error(
                    n.span(),
                    format!("`max_tabs` must be between 1 and {MAX_TABS_LIMIT}"),
                );
                DEFAULT_MAX_TABS
            }
        };
        BrowserConfig {
            source,
            max_tabs,
            load_media: raw.load_media.unwrap_or(false),
        }
    }

    /// The watcher's `browser` and `wait_for`: None for a page fetched over HTTP.
    pub(super) fn browser_page(&mut self, raw: &RawWatcher) -> Option<BrowserPage> {
        let wanted = raw.browser.as_ref().is_some_and(|b| *b.get_ref());
        let wait_for = raw.wait_for.as_ref().and_then(|w| {
            if !wanted {
                self.error(
                    w.span(),
                    "`wait_for` needs `browser = true`: without the browser no script runs to render it",
                );
                return None;
            }
            match css::selector(w.get_ref()) {
                Ok(_) => Some(w.get_ref().clone()),
                Err(err) => {
                    self.error(w.span(), format!("invalid CSS selector in wait_for: {err}"));
                    None
                }
            }
        });
        wanted.then_some(BrowserPage { wait_for })
    }

    /// Say so when watchers need a browser that cannot be found: the config is valid, and
    /// installing one fixes it, so a warning.
    pub(super) fn browser_available(&mut self, config: &BrowserConfig, watchers: &[&Watcher]) {
        let Some(first) = watchers.first() else {
            return;
        };
        if let Some(why) = config.unavailable() {
            let who = match watchers.len() {
                1 => format!("watcher `{}` uses", first.name),
                n => format!("{n} watchers (`{}` first) use", first.name),
            };
            let msg = format!("{who} the browser, and it cannot start: {why}");
            self.warn(0..0, msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::testing::NoEnv;
    use crate::config::{ConfigError, Loaded, parse};
    use crate::fetch::browser::Source;

    const HOOK: &str = "[webhooks.a]\nurl = \"https://a.example\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n";

    fn load(text: &str) -> Result<Loaded, ConfigError> {
        parse(&format!("{HOOK}{text}"), Path::new("w.toml"), &NoEnv)
    }

    fn errors(text: &str) -> Vec<String> {
        load(text)
            .unwrap_err()
            .errors
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const WATCHER: &str = "[[watchers]]\nname = \"w\"\nurl = \"https://s.example/p\"\nfields.p = { css = \".price\" }\n";

    #[test]
    fn browser_keys_compile_and_defaults_apply() {
        let loaded = load(&format!(
            "[browser]\nendpoint = \"ws://127.0.0.1:9222/devtools/browser/x\"\nmax_tabs = 4\nload_media = true\n[defaults]\nbrowser = true\n{WATCHER}wait_for = \"#app .price\"\n[[watchers]]\nname = \"plain\"\nurl = \"https://s.example/q\"\nbrowser = false\nfields.p = {{ css = \".price\" }}\n"
        ))
        .unwrap();
        let config = loaded.config;
        assert_eq!(config.browser.max_tabs, 4);
        assert!(config.browser.load_media);
        assert!(matches!(config.browser.source, Source::Endpoint(_)));
        let page = config.watchers[0].browser.as_ref().unwrap();
        assert_eq!(page.wait_for.as_deref(), Some("#app .price"));
        assert!(config.watchers[1].browser.is_none());
        // An endpoint is asked only when used: no warning about a missing browser.
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn bad_browser_keys_are_errors_at_their_place() {
        let errs = errors(&format!(
            "[browser]\nendpoint = \"http://127.0.0.1:9222\"\nmax_tabs = 0\n{WATCHER}browser = true\nwait_for = \"div >\"\n"
        ));
        assert_eq!(errs.len(), 3, "{errs:?}");
        // Watchers are read before the [browser] table.
        assert!(
            errs[0].starts_with("w.toml:12:12: invalid CSS selector in wait_for: a combinator"),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("w.toml:5:12: `endpoint` must be"),
            "{errs:?}"
        );
        assert!(
            errs[2].starts_with("w.toml:6:12: `max_tabs` must be"),
            "{errs:?}"
        );
        let errs = errors(&format!("{WATCHER}wait_for = \"#app\"\n"));
        assert!(
            errs[0].contains("`wait_for` needs `browser = true`"),
            "{errs:?}"
        );
        let errs = errors("[browser]\nexecutable = \"/x\"\nendpoint = \"ws://h/\"\n");
        assert!(errs[0].contains("not both"), "{errs:?}");
        let errs = errors("[browser]\nexecutabel = \"/x\"\n");
        assert!(errs[0].contains("unknown field `executabel`"), "{errs:?}");
    }

    #[test]
    fn a_browser_that_cannot_be_found_is_a_warning() {
        let loaded = load(&format!(
            "[browser]\nexecutable = \"/nonexistent/chromium\"\n{WATCHER}browser = true\n"
        ))
        .unwrap();
        let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.as_warning()).collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("watcher `w` uses the browser, and it cannot start: [browser] executable /nonexistent/chromium is not an executable file"),
            "{warnings:?}"
        );
        // No browser watcher: nothing to say.
        let loaded = load(&format!(
            "[browser]\nexecutable = \"/nonexistent/chromium\"\n{WATCHER}"
        ))
        .unwrap();
        assert!(loaded.warnings.is_empty());
    }
}
