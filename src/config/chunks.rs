//! watchers.toml read one `[[watchers]]` table at a time. `toml` builds a tree of the whole
//! document before anything is deserialized, a kilobyte-sized map node per table: at 100,000
//! watchers that tree outweighed the running daemon several times over. So the file is cut at
//! its top-level table headers. The other tables are parsed as one document in which the
//! watchers are blanked out (spaces, so every offset stays where it was), and each watcher is
//! parsed alone, its spans then moved to where it sits in the file.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;
use toml_parser::Source;
use toml_parser::lexer::TokenKind;

use super::OneOrMany;
use super::field::{RawDecimal, RawDirection, RawField, RawFieldNotify, RawKind, RawRule};
use super::values::ByteSize;
use super::watcher::RawWatcher;

/// A file cut into its watchers and the rest.
pub(super) struct Cut {
    /// The file with each watcher's table blanked out.
    pub(super) rest: String,
    /// Where each `[[watchers]]` table is, with its sub-tables, in file order.
    pub(super) watchers: Vec<Range<usize>>,
}

/// Cut `text` at its top-level `[[watchers]]` headers, or None for a shape this does not cut
/// (`watchers = [...]` written inline, a header it cannot read): that file is parsed whole,
/// which reports its errors as before.
pub(super) fn cut(text: &str) -> Option<Cut> {
    let mut tokens = Source::new(text).lex().peekable();
    let mut watchers = Vec::new();
    let mut current: Option<usize> = None;
    let (mut depth, mut line_start, mut in_root) = (0usize, true, true);
    while let Some(token) = tokens.next() {
        let span = token.span();
        match token.kind() {
            TokenKind::Whitespace | TokenKind::Comment => continue,
            TokenKind::Newline => {
                line_start = true;
                continue;
            }
            TokenKind::LeftSquareBracket if depth == 0 && line_start => {
                let array = tokens.next_if(|t| {
                    t.kind() == TokenKind::LeftSquareBracket && t.span().start() == span.end()
                });
                let mut key = Vec::new();
                loop {
                    let token = tokens.next()?;
                    match token.kind() {
                        TokenKind::RightSquareBracket => break,
                        TokenKind::Whitespace | TokenKind::Dot => {}
                        TokenKind::Atom => {
                            key.push(&text[token.span().start()..token.span().end()])
                        }
                        // A quoted part may spell `watchers`: not worth reading here.
                        _ => return None,
                    }
                }
                if array.is_some() {
                    tokens.next_if(|t| t.kind() == TokenKind::RightSquareBracket)?;
                }
                in_root = false;
                match (array.is_some(), key.as_slice()) {
                    (true, ["watchers"]) => {
                        if let Some(start) = current.replace(span.start()) {
                            watchers.push(start..span.start());
                        }
                    }
                    // A sub-table of the watcher above, as `[watchers.fields.price]`.
                    (_, ["watchers", ..]) if current.is_some() => {}
                    (_, ["watchers", ..]) => return None,
                    _ => {
                        if let Some(start) = current.take() {
                            watchers.push(start..span.start());
                        }
                    }
                }
            }
            TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => depth += 1,
            TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => {
                depth = depth.saturating_sub(1);
            }
            TokenKind::Atom | TokenKind::BasicString | TokenKind::LiteralString
                if in_root && depth == 0 && line_start =>
            {
                let key = &text[span.start()..span.end()];
                if key.trim_matches(['"', '\'']).starts_with("watchers") {
                    return None;
                }
            }
            _ => {}
        }
        line_start = false;
    }
    if let Some(start) = current {
        watchers.push(start..text.len());
    }
    let mut rest = text.as_bytes().to_vec();
    for range in &watchers {
        for byte in &mut rest[range.clone()] {
            if !matches!(byte, b'\n' | b'\r') {
                *byte = b' ';
            }
        }
    }
    let rest = String::from_utf8(rest).expect("only ASCII bytes were written");
    Some(Cut { rest, watchers })
}

/// A watcher's table, or the place and message of what is wrong with it.
pub(super) type Parsed = Result<Spanned<Box<RawWatcher>>, (Range<usize>, String)>;

/// One `[[watchers]]` table, parsed alone.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct One {
    watchers: Vec<Spanned<Box<RawWatcher>>>,
}

/// The watcher at `range` of `text`, its spans true to the whole file; the error's span is
/// too.
pub(super) fn watcher(text: &str, range: &Range<usize>) -> Parsed {
    match toml::from_str::<One>(&text[range.clone()]) {
        Ok(One { mut watchers }) if watchers.len() == 1 => {
            Ok(watchers.pop().expect("one").shift(range.start))
        }
        Ok(_) => Err((
            range.start..range.start,
            "expected one watcher table".into(),
        )),
        Err(err) => {
            let span = err.span().unwrap_or(0..0);
            let at = range.start + span.start..range.start + span.end;
            Err((at, err.message().to_owned()))
        }
    }
}

/// Moves every span in a value by `by` bytes.
trait Shift {
    fn shift(self, by: usize) -> Self;
}

impl<T: Shift> Shift for Spanned<T> {
    fn shift(self, by: usize) -> Self {
        let span = self.span();
        Spanned::new(span.start + by..span.end + by, self.into_inner().shift(by))
    }
}

impl<T: Shift> Shift for Option<T> {
    fn shift(self, by: usize) -> Self {
        self.map(|v| v.shift(by))
    }
}

impl<T: Shift> Shift for Box<T> {
    fn shift(self, by: usize) -> Self {
        Box::new((*self).shift(by))
    }
}

impl<V: Shift> Shift for BTreeMap<String, V> {
    fn shift(self, by: usize) -> Self {
        self.into_iter().map(|(k, v)| (k, v.shift(by))).collect()
    }
}

/// Values with no span inside.
macro_rules! unspanned {
    ($($t:ty),*) => {
        $(impl Shift for $t {
            fn shift(self, _: usize) -> Self {
                self
            }
        })*
    };
}

unspanned!(
    String,
    bool,
    i64,
    OneOrMany,
    ByteSize,
    RawKind,
    RawDirection,
    RawDecimal
);

impl Shift for RawWatcher {
    fn shift(self, by: usize) -> Self {
        // Destructured whole, so a new key does not compile until its span moves too.
        let RawWatcher {
            name,
            url,
            schedule,
            jitter,
            webhook,
            fields,
            timeout,
            max_body_size,
            max_value_size,
            history_limit,
            notify,
            currency,
            connect_timeout,
            per_host_concurrency,
            per_host_delay,
            failure_threshold,
            method,
            body,
            headers,
            cookies,
            user_agent,
            proxy,
            browser,
            wait_for,
        } = self;
        RawWatcher {
            name: name.shift(by),
            url: url.shift(by),
            schedule: schedule.shift(by),
            jitter: jitter.shift(by),
            webhook: webhook.shift(by),
            fields: fields.shift(by),
            timeout: timeout.shift(by),
            max_body_size: max_body_size.shift(by),
            max_value_size: max_value_size.shift(by),
            history_limit: history_limit.shift(by),
            notify: notify.shift(by),
            currency: currency.shift(by),
            connect_timeout: connect_timeout.shift(by),
            per_host_concurrency: per_host_concurrency.shift(by),
            per_host_delay: per_host_delay.shift(by),
            failure_threshold: failure_threshold.shift(by),
            method: method.shift(by),
            body: body.shift(by),
            headers: headers.shift(by),
            cookies: cookies.shift(by),
            user_agent: user_agent.shift(by),
            proxy: proxy.shift(by),
            browser: browser.shift(by),
            wait_for: wait_for.shift(by),
        }
    }
}

impl Shift for RawField {
    fn shift(self, by: usize) -> Self {
        let RawField {
            css,
            jsonld,
            json,
            attr,
            currency,
            notify,
            regex,
            max_value_size,
            kind,
            required,
        } = self;
        RawField {
            css: css.shift(by),
            jsonld: jsonld.shift(by),
            json: json.shift(by),
            attr: attr.shift(by),
            currency: currency.shift(by),
            notify: notify.shift(by),
            regex: regex.shift(by),
            max_value_size: max_value_size.shift(by),
            kind,
            required,
        }
    }
}

impl Shift for RawFieldNotify {
    fn shift(self, by: usize) -> Self {
        match self {
            RawFieldNotify::Enabled(on) => RawFieldNotify::Enabled(on),
            RawFieldNotify::Rule(rule) => RawFieldNotify::Rule(rule.shift(by)),
        }
    }
}

impl Shift for RawRule {
    fn shift(self, by: usize) -> Self {
        let RawRule {
            on,
            min_change_pct,
            min_change_abs,
            below,
            above,
        } = self;
        RawRule {
            on: on.shift(by),
            min_change_pct: min_change_pct.shift(by),
            min_change_abs: min_change_abs.shift(by),
            below: below.shift(by),
            above: above.shift(by),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_cut_at_its_watchers_and_their_sub_tables_stay_with_them() {
        let text = "[daemon]\nstate_dir = \"s\"\n[[watchers]] # one\nname = \"a\"\nbody = '''\n[[watchers]]\n'''\n[watchers.fields.p]\ncss = \"p\"\n[webhooks.h]\nurl = \"x\"\n  [[watchers]]\nname = \"b\"\nheaders = [\n[1],\n]\n";
        let cut = cut(text).unwrap();
        let a = text.find("[[watchers]] # one").unwrap();
        let hooks = text.find("[webhooks.h]").unwrap();
        let b = text.find("[[watchers]]\nname = \"b\"").unwrap();
        assert_eq!(cut.watchers, [a..hooks, b..text.len()]);
        assert_eq!(cut.rest.len(), text.len());
        assert!(cut.rest.starts_with("[daemon]\nstate_dir = \"s\"\n   "));
        assert!(cut.rest[hooks..].starts_with("[webhooks.h]\nurl = \"x\"\n  "));
        assert_eq!(cut.rest.lines().count(), text.lines().count());
        assert!(!cut.rest.contains("name"));
    }

    /// As when the file was parsed whole: the first shape error in the file is the one told,
    /// at its own line, whether it is in a watcher or not.
    #[test]
    fn a_shape_error_is_told_at_its_place_and_only_the_first() {
        use crate::config::testing::{HOOK, errors};
        let good =
            "[[watchers]]\nname = \"a\"\nurl = \"https://s.example\"\nfields.p = { css = \"p\" }\n";
        let bad_watcher = "[[watchers]]\nname = \"b\"\nurl = 5\n";
        let bad_daemon = "[daemon]\nmax_concurrency = \"x\"\n";
        let watcher_first = errors(&format!("{HOOK}{good}{bad_watcher}{bad_daemon}"));
        assert_eq!(watcher_first.len(), 1, "{watcher_first:?}");
        assert!(
            watcher_first[0].starts_with("watchers.toml:10:7: invalid type: integer"),
            "{watcher_first:?}"
        );
        let daemon_first = errors(&format!("{HOOK}{bad_daemon}{good}{bad_watcher}"));
        assert_eq!(daemon_first.len(), 1, "{daemon_first:?}");
        assert!(
            daemon_first[0].starts_with("watchers.toml:5:19: invalid type: a string"),
            "{daemon_first:?}"
        );
    }

    #[test]
    fn shapes_it_does_not_read_are_parsed_whole() {
        for text in [
            "watchers = [{ name = \"a\" }]\n",
            "[watchers]\nname = \"a\"\n",
            "[[\"watchers\"]]\nname = \"a\"\n",
            "[[watchers]\nname = \"a\"\n",
        ] {
            assert!(cut(text).is_none(), "{text}");
        }
    }
}
