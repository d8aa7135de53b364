//! `export` and `import`: watchers' state and history as JSON lines, so a watcher that moves to
//! another shard keeps its baseline, its `seq` and its history.
//!
//! The file is a header line, `{"pagehook_export":1,"version":..,"exported_at":..}`, then one
//! [`Record`] a line: the state and the history exactly as the store holds them. An import reads
//! and checks the whole file before it writes anything, and merges each record whose watcher this
//! config has: the newer state wins, the histories are joined.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::OpsError;
use crate::config::{Watcher, is_valid_name};
use crate::store::{HistoryEntry, Rewrite, Store, StoreError, WatcherState};

/// The export format this pagehook writes and reads. A change to what a record means gets a
/// new number; a new optional field of the state or of a history entry, which older readers
/// pass over, needs none. A record's own fields are strict, so a hand-edited typo is caught.
const FORMAT: u64 = 1;

/// An export page holds records until it is about this large: a daemon with 100,000 watchers
/// exports through many answers rather than one of hundreds of megabytes.
pub(super) const EXPORT_PAGE_BYTES: usize = 1024 * 1024;

/// The first line of an export file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) pagehook_export: u64,
    /// The pagehook that wrote it.
    pub(crate) version: String,
    pub(crate) exported_at: DateTime<Utc>,
}

impl Header {
    pub(crate) fn now() -> Header {
        Header {
            pagehook_export: FORMAT,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            exported_at: Utc::now(),
        }
    }
}

/// One watcher, as the store holds it: the state and the whole history, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    pub(crate) watcher: String,
    pub(crate) state: WatcherState,
    pub(crate) history: Vec<HistoryEntry>,
}

/// Why an export file cannot be imported; nothing has been written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
}

fn at(line: usize, message: impl Into<String>) -> ReadError {
    ReadError::Line {
        line,
        message: message.into(),
    }
}

/// The records of an export file, each checked as it is read: the header first, its format,
/// every line a record, every name valid, no watcher twice. Blank lines are allowed (a file
/// joined from several keeps its newlines); a second header, as from `cat a.jsonl b.jsonl`, is
/// checked like the first and passed over. It holds one line at a time, so `import` reads a
/// file through once to check it all and again to send it, whatever its size.
pub(crate) struct ExportReader<R> {
    lines: std::io::Lines<R>,
    number: usize,
    header_seen: bool,
    first_line: HashMap<String, usize>,
    done: bool,
}

impl<R: BufRead> ExportReader<R> {
    pub(crate) fn new(input: R) -> Self {
        ExportReader {
            lines: input.lines(),
            number: 0,
            header_seen: false,
            first_line: HashMap::new(),
            done: false,
        }
    }

    /// The next record, None at the end, or what is wrong with the next line.
    fn next_record(&mut self) -> Result<Option<Record>, ReadError> {
        for line in self.lines.by_ref() {
            self.number += 1;
            let (number, line) = (self.number, line?);
            if line.trim().is_empty() {
                continue;
            }
            let value: serde_json::Value = serde_json::from_str(&line)
                .map_err(|err| at(number, format!("not a JSON line: {err}")))?;
            if let Some(format) = value.get("pagehook_export") {
                check_header(number, format, &value)?;
                self.header_seen = true;
                continue;
            }
            if !self.header_seen {
                return Err(at(
                    number,
                    "not a pagehook export: the file must start with the header line that `pagehook export` writes, {\"pagehook_export\":1,...}",
                ));
            }
            let record: Record = serde_json::from_value(value)
                .map_err(|err| at(number, format!("not a watcher record: {err}")))?;
            if !is_valid_name(&record.watcher) {
                return Err(at(
                    number,
                    format!(
                        "invalid watcher name `{}`: use 1-128 characters from a-z, 0-9, - and _",
                        record.watcher
                    ),
                ));
            }
            if let Some(first) = self.first_line.insert(record.watcher.clone(), number) {
                return Err(at(
                    number,
                    format!(
                        "watcher `{}` again (first on line {first}); export each watcher once",
                        record.watcher
                    ),
                ));
            }
            return Ok(Some(record));
        }
        if !self.header_seen {
            return Err(at(1, "the file is empty: not a pagehook export"));
        }
        Ok(None)
    }
}

impl<R: BufRead> Iterator for ExportReader<R> {
    type Item = Result<Record, ReadError>;

    /// Ends after the first error.
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_record().transpose();
        self.done = !matches!(next, Some(Ok(_)));
        next
    }
}

fn check_header(
    number: usize,
    format: &serde_json::Value,
    line: &serde_json::Value,
) -> Result<(), ReadError> {
    let version = line
        .get("version")
        .and_then(|v| v.as_str())
        .unwrap_or("an unknown version");
    if format.as_u64() != Some(FORMAT) {
        return Err(at(
            number,
            format!(
                "an export of format {format} (written by pagehook {version}); this pagehook ({}) reads format {FORMAT}: import it with the pagehook that wrote it, or export again with this one",
                env!("CARGO_PKG_VERSION")
            ),
        ));
    }
    serde_json::from_value::<Header>(line.clone())
        .map(drop)
        .map_err(|err| at(number, format!("a broken header: {err}")))
}

/// What happened to one imported watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The store had no state for it.
    New,
    /// The imported state is newer and took the place of the local one.
    Replaced,
    /// The local state is as new or newer, and stays.
    Kept,
}

/// The merge rule: the newer state wins (the higher `seq`, then the later `last_check`; a tie
/// keeps the local one), and the histories are joined whichever state wins, so a watcher that
/// was checked on both shards keeps both timelines.
pub(crate) fn merge(
    local: Option<&WatcherState>,
    local_history: &[HistoryEntry],
    incoming: &Record,
    limit: usize,
) -> (Rewrite, Verdict) {
    let newer = |local: &WatcherState| {
        (incoming.state.seq, incoming.state.last_check) > (local.seq, local.last_check)
    };
    let (state, verdict) = match local {
        None => (Some(incoming.state.clone()), Verdict::New),
        Some(local) if newer(local) => (Some(incoming.state.clone()), Verdict::Replaced),
        Some(_) => (None, Verdict::Kept),
    };
    let history = merged_history(local_history, &incoming.history, limit);
    let history = (history != local_history).then_some(history);
    (Rewrite { state, history }, verdict)
}

/// Both histories as one, in time order, each entry once, the newest `limit` of them.
fn merged_history(
    local: &[HistoryEntry],
    incoming: &[HistoryEntry],
    limit: usize,
) -> Vec<HistoryEntry> {
    let mut all: Vec<&HistoryEntry> = local.iter().chain(incoming).collect();
    // Stable: at one instant the local entries stay first, in their order.
    all.sort_by_key(|entry| entry.checked_at);
    let mut merged: Vec<HistoryEntry> = Vec::with_capacity(all.len());
    for entry in all {
        let seen = merged
            .iter()
            .rev()
            .take_while(|kept| kept.checked_at == entry.checked_at)
            .any(|kept| kept == entry);
        if !seen {
            merged.push(entry.clone());
        }
    }
    let excess = merged.len().saturating_sub(limit);
    merged.drain(..excess);
    merged
}

/// Which watchers an export takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Selection {
    /// These configured watchers; none named: every configured watcher.
    Configured(Vec<String>),
    /// The watchers the store has state for and the config does not: moved to another shard,
    /// or deleted.
    Unowned,
}

/// Part of an export: the records after the previous page's `next`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExportPage {
    pub(crate) records: Vec<Record>,
    /// Selected watchers with no state yet, so nothing to export.
    pub(crate) without_state: Vec<String>,
    /// Ask again with this as `after` for the rest; None when this page is the last.
    pub(crate) next: Option<String>,
}

/// The selected watchers after `after`, until the records pass `page_bytes`.
pub(crate) fn export(
    store: &Store,
    watchers: &[std::sync::Arc<Watcher>],
    selection: &Selection,
    after: Option<&str>,
    page_bytes: usize,
) -> Result<ExportPage, OpsError> {
    let names: Vec<String> = match selection {
        Selection::Configured(named) if named.is_empty() => {
            watchers.iter().map(|w| w.name.clone()).collect()
        }
        Selection::Configured(named) => {
            if let Some(unknown) = named
                .iter()
                .find(|n| !watchers.iter().any(|w| &w.name == *n))
            {
                return Err(OpsError::UnknownWatcher(unknown.clone()));
            }
            named.clone()
        }
        Selection::Unowned => {
            let configured: HashSet<&str> = watchers.iter().map(|w| w.name.as_str()).collect();
            store
                .known_watchers()?
                .into_iter()
                .filter(|name| !configured.contains(name.as_str()))
                .collect()
        }
    };
    let start = match after {
        None => 0,
        Some(after) => {
            names.iter().position(|n| n == after).ok_or_else(|| {
                OpsError::Client(format!(
                    "the daemon's watchers changed during the export (`{after}` is gone): run the export again"
                ))
            })? + 1
        }
    };
    let mut page = ExportPage {
        records: Vec::new(),
        without_state: Vec::new(),
        next: None,
    };
    let mut bytes = 0;
    for name in &names[start..] {
        if bytes >= page_bytes {
            page.next = page.records.last().map(|r: &Record| r.watcher.clone());
            break;
        }
        match store.whole_watcher(name)? {
            Some((state, history)) => {
                let record = Record {
                    watcher: name.clone(),
                    state,
                    history,
                };
                bytes += serde_json::to_vec(&record).map_or(0, |b| b.len());
                page.records.push(record);
            }
            None => page.without_state.push(name.clone()),
        }
    }
    Ok(page)
}

/// What an import did, by watcher.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ImportReport {
    pub(crate) new: Vec<String>,
    pub(crate) replaced: Vec<String>,
    /// The local state is as new or newer (its history still took the imported entries).
    pub(crate) kept: Vec<String>,
    /// Records for watchers this config does not have: normal when every shard imports every
    /// file.
    pub(crate) skipped: Vec<String>,
}

impl ImportReport {
    /// How many watchers were merged (new, replaced or kept).
    pub(crate) fn merged(&self) -> usize {
        self.new.len() + self.replaced.len() + self.kept.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.merged() == 0 && self.skipped.is_empty()
    }

    /// Add a later batch's report.
    pub(crate) fn add(&mut self, other: ImportReport) {
        self.new.extend(other.new);
        self.replaced.extend(other.replaced);
        self.kept.extend(other.kept);
        self.skipped.extend(other.skipped);
    }
}

/// Merge each record whose watcher is configured, each in its own transaction, then flush:
/// an error stops at one watcher, with every watcher before it merged whole and none half.
pub(crate) async fn import(
    store: &Store,
    watchers: &[std::sync::Arc<Watcher>],
    records: &[Record],
) -> Result<ImportReport, StoreError> {
    let configured: HashMap<&str, &Watcher> =
        watchers.iter().map(|w| (w.name.as_str(), &**w)).collect();
    let mut report = ImportReport::default();
    for record in records {
        let Some(watcher) = configured.get(record.watcher.as_str()) else {
            report.skipped.push(record.watcher.clone());
            continue;
        };
        let verdict = store.rewrite_watcher(&record.watcher, |state, history| {
            merge(state, history, record, watcher.history_limit)
        })?;
        match verdict {
            Verdict::New => &mut report.new,
            Verdict::Replaced => &mut report.replaced,
            Verdict::Kept => &mut report.kept,
        }
        .push(record.watcher.clone());
    }
    store.flush().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn at_minute(minute: i64) -> DateTime<Utc> {
        "2026-11-27T06:00:00Z".parse::<DateTime<Utc>>().unwrap()
            + chrono::TimeDelta::minutes(minute)
    }

    fn state(seq: u64, checked_minute: i64, price: &str) -> WatcherState {
        WatcherState {
            values: Some([("price".to_string(), json!(price))].into()),
            seq,
            last_check: Some(at_minute(checked_minute)),
            last_success: Some(at_minute(checked_minute)),
            ..Default::default()
        }
    }

    fn entry(minute: i64, price: &str) -> HistoryEntry {
        HistoryEntry {
            checked_at: at_minute(minute),
            kind: "changed".into(),
            changed: vec!["price".into()],
            event_id: Some(format!("evt_{minute}")),
            values: [("price".to_string(), json!(price))].into(),
        }
    }

    fn record(name: &str, state: WatcherState, history: Vec<HistoryEntry>) -> Record {
        Record {
            watcher: name.into(),
            state,
            history,
        }
    }

    fn prices(history: &[HistoryEntry]) -> Vec<&str> {
        history
            .iter()
            .map(|e| e.values["price"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn the_newer_state_wins_whichever_side_it_is_on() {
        let incoming = record("w", state(5, 10, "$5"), vec![]);
        let (rewrite, verdict) = merge(None, &[], &incoming, 10);
        assert_eq!(verdict, Verdict::New);
        assert_eq!(rewrite.state, Some(incoming.state.clone()));

        let older = state(3, 20, "$3");
        let (rewrite, verdict) = merge(Some(&older), &[], &incoming, 10);
        assert_eq!(
            verdict,
            Verdict::Replaced,
            "a higher seq wins over a later check"
        );
        assert_eq!(rewrite.state, Some(incoming.state.clone()));

        let newer = state(6, 1, "$6");
        let (rewrite, verdict) = merge(Some(&newer), &[], &incoming, 10);
        assert_eq!(verdict, Verdict::Kept);
        assert_eq!(rewrite, Rewrite::default(), "nothing to write");

        let (_, verdict) = merge(Some(&state(5, 9, "$4")), &[], &incoming, 10);
        assert_eq!(verdict, Verdict::Replaced, "same seq: the later check wins");
        let (_, verdict) = merge(Some(&state(5, 11, "$4")), &[], &incoming, 10);
        assert_eq!(verdict, Verdict::Kept);
        let (rewrite, verdict) = merge(Some(&incoming.state), &[], &incoming, 10);
        assert_eq!(verdict, Verdict::Kept, "a tie keeps the local state");
        assert_eq!(
            rewrite,
            Rewrite::default(),
            "importing twice changes nothing"
        );
    }

    #[test]
    fn histories_join_in_time_order_each_entry_once_and_trimmed_to_the_limit() {
        let local = vec![entry(1, "a"), entry(3, "c"), entry(5, "e")];
        let incoming = record(
            "w",
            state(1, 6, "f"),
            vec![entry(2, "b"), entry(3, "c"), entry(4, "d"), entry(6, "f")],
        );
        let (rewrite, _) = merge(Some(&state(9, 5, "e")), &local, &incoming, 10);
        let history = rewrite.history.expect("history grew");
        assert_eq!(prices(&history), ["a", "b", "c", "d", "e", "f"]);
        assert_eq!(rewrite.state, None, "the local state is newer and stays");

        let (rewrite, _) = merge(Some(&state(9, 5, "e")), &local, &incoming, 4);
        assert_eq!(prices(&rewrite.history.unwrap()), ["c", "d", "e", "f"]);

        // Two different entries at one instant are both kept.
        let same_time = HistoryEntry {
            kind: "quiet".into(),
            ..entry(3, "c2")
        };
        let incoming = record("w", state(1, 6, "f"), vec![same_time, entry(1, "a")]);
        let (rewrite, _) = merge(None, &local, &incoming, 10);
        assert_eq!(prices(&rewrite.history.unwrap()), ["a", "c", "c2", "e"]);

        let (rewrite, _) = merge(None, &[], &record("w", state(0, 1, "a"), vec![]), 0);
        assert_eq!(rewrite.history, None, "history_limit 0 keeps none");
    }

    fn header(format: u64) -> String {
        format!(
            r#"{{"pagehook_export":{format},"version":"9.9.9","exported_at":"2026-11-27T06:00:00Z"}}"#
        )
    }

    fn line(record: &Record) -> String {
        serde_json::to_string(record).unwrap()
    }

    #[test]
    fn a_file_reads_back_what_was_exported_and_every_flaw_names_its_line() {
        let a = record("a", state(2, 1, "$1"), vec![entry(1, "$1")]);
        let b = record("b", state(0, 1, "$2"), vec![]);
        let text = format!("{}\n{}\n\n{}\n", header(1), line(&a), line(&b));
        let read = |text: &str| ExportReader::new(text.as_bytes()).collect::<Result<Vec<_>, _>>();
        assert_eq!(read(&text).unwrap(), [a.clone(), b.clone()]);

        let error = |text: String| read(&text).unwrap_err().to_string();
        let other = error(format!("{}\n{}\n", header(2), line(&a)));
        assert!(
            other.starts_with(
                "line 1: an export of format 2 (written by pagehook 9.9.9); this pagehook"
            ),
            "{other}"
        );
        let broken = error(format!(
            "{}\n{}\n{{\"watcher\":\"c\"\n",
            header(1),
            line(&a)
        ));
        assert!(broken.starts_with("line 3: not a JSON line"), "{broken}");
        let wrong = error(format!(
            "{}\n{{\"watcher\":\"c\",\"state\":{{}}}}\n",
            header(1)
        ));
        assert!(
            wrong.starts_with("line 2: not a watcher record: missing field"),
            "{wrong}"
        );
        let name = error(format!(
            "{}\n{}\n",
            header(1),
            line(&record("C d", state(0, 1, "$1"), vec![]))
        ));
        assert!(
            name.starts_with("line 2: invalid watcher name `C d`"),
            "{name}"
        );
        let twice = error(format!("{}\n{}\n{}\n", header(1), line(&a), line(&a)));
        assert!(
            twice.starts_with("line 3: watcher `a` again (first on line 2)"),
            "{twice}"
        );
        let headless = error(format!("{}\n", line(&a)));
        assert!(
            headless.starts_with("line 1: not a pagehook export"),
            "{headless}"
        );
        assert!(error(String::new()).contains("the file is empty"));
    }

    fn configured(names: &[&str], history_limit: usize) -> Vec<Arc<Watcher>> {
        let mut text = format!(
            "[webhooks.a]\nurl = \"https://a.example\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n[defaults]\nhistory_limit = {history_limit}\n"
        );
        for name in names {
            text += &format!(
                "[[watchers]]\nname = \"{name}\"\nurl = \"https://s.example/{name}\"\nfields.price = {{ css = \".price\" }}\n"
            );
        }
        crate::config::parse(
            &text,
            std::path::Path::new("w.toml"),
            &crate::config::testing::NoEnv,
        )
        .unwrap()
        .config
        .watchers
    }

    #[tokio::test]
    async fn an_import_merges_configured_watchers_and_skips_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let watchers = configured(&["fresh", "older", "newer"], 3);
        store
            .commit("older", &state(1, 1, "$1"), &[])
            .await
            .unwrap();
        store
            .commit("newer", &state(9, 1, "$9"), &[])
            .await
            .unwrap();
        let records = [
            record(
                "fresh",
                state(4, 2, "$4"),
                vec![entry(1, "$3"), entry(2, "$4")],
            ),
            record("older", state(2, 2, "$2"), vec![]),
            record("newer", state(3, 2, "$3"), vec![]),
            record("elsewhere", state(7, 2, "$7"), vec![entry(2, "$7")]),
        ];
        let report = import(&store, &watchers, &records).await.unwrap();
        assert_eq!(report.new, ["fresh"]);
        assert_eq!(report.replaced, ["older"]);
        assert_eq!(report.kept, ["newer"]);
        assert_eq!(report.skipped, ["elsewhere"]);
        assert_eq!(store.watcher_state("fresh").unwrap(), records[0].state);
        assert_eq!(store.watcher_state("older").unwrap().seq, 2);
        assert_eq!(store.watcher_state("newer").unwrap().seq, 9);
        assert!(
            !store
                .known_watchers()
                .unwrap()
                .contains(&"elsewhere".to_owned())
        );

        let all = Selection::Configured(vec![]);
        let exported = export(&store, &watchers, &all, None, EXPORT_PAGE_BYTES).unwrap();
        assert_eq!(
            exported.records[0], records[0],
            "exported exactly as imported"
        );
        assert_eq!(exported.next, None);
        let again = import(&store, &watchers, &exported.records).await.unwrap();
        assert_eq!(
            again.kept,
            ["fresh", "older", "newer"],
            "a second import changes nothing"
        );
        assert_eq!(
            store.history("fresh", 10).unwrap().len(),
            2,
            "no entry twice"
        );

        let unowned = export(&store, &watchers[..1], &Selection::Unowned, None, 1).unwrap();
        assert_eq!(
            unowned.records[0].watcher, "newer",
            "the store's, in its order"
        );
        assert_eq!(
            unowned.next.as_deref(),
            Some("newer"),
            "a page as small as a record"
        );
        let rest = export(
            &store,
            &watchers[..1],
            &Selection::Unowned,
            Some("newer"),
            1,
        )
        .unwrap();
        assert_eq!(rest.records[0].watcher, "older");
        assert_eq!(rest.next, None, "the last page");

        let named = Selection::Configured(vec!["fresh".into(), "later".into()]);
        let more = configured(&["fresh", "later"], 3);
        let page = export(&store, &more, &named, None, EXPORT_PAGE_BYTES).unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(
            page.without_state,
            ["later"],
            "never checked, so nothing to export"
        );
    }

    #[tokio::test]
    async fn a_check_that_read_the_state_before_an_import_cannot_overwrite_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let watchers = configured(&["w"], 10);
        let read_by_check = store.watcher_state("w").unwrap();
        let imported = record("w", state(5, 1, "$5"), vec![entry(1, "$5")]);
        import(&store, &watchers, std::slice::from_ref(&imported))
            .await
            .unwrap();
        let baseline = state(0, 2, "$1");
        let err = store
            .commit_recorded(
                "w",
                Some(&read_by_check),
                &baseline,
                &[],
                Some(&entry(2, "$1")),
                10,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Moved(_)), "{err}");
        assert_eq!(store.watcher_state("w").unwrap(), imported.state);
        assert_eq!(store.history("w", 10).unwrap(), imported.history);
    }
}
