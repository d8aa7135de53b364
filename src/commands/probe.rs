//! `pagehook probe URL`: what URL-only mode finds on one page (price, availability, title and
//! where), the prices it passed over and why, and a `[[watchers]]` block to paste, pinned to
//! what was found. Paste a URL, get a working watcher.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_json::{Value, json};
use tokio::time::Instant;
use url::Url;

use super::{ConfigFile, Done, EXIT_CONFIG, Failure, failed};
use crate::check::{CheckError, fetch_page};
use crate::config::{self, Config, ProcessEnv, Watcher};
use crate::extract::{self, Extraction, Field, FieldKind, Origin, Rejected, Source, Survey};
use crate::fetch::Fetcher;

/// The fields URL-only mode reads, by the names the pasted block gives them.
const FIELDS: [(&str, &str); 2] = [("price", "price"), ("stock", "availability")];
/// Prices passed over that the human output lists; `--json` has them all.
const SHOWN_REJECTED: usize = 10;
/// The probe's placeholder webhook, which a config needs and the probe never sends to.
const NOWHERE: &str = "http://127.0.0.1:9/";
const PLACEHOLDER_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// `pagehook probe URL [--browser] [--json]`
pub async fn probe_url(file: &ConfigFile, url: &str, browser: bool, as_json: bool) -> Done {
    let url = Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| Failure::Usage(format!("not an http(s) URL: {url}")))?;
    let config = probe_config(file, &url, browser)?;
    let watcher = config.watchers[0].clone();
    let fetcher =
        Fetcher::with_browser(config.max_concurrency, config.browser.clone()).map_err(failed)?;
    let deadline = Instant::now() + watcher.timeout;
    let fetched = fetch_page(&watcher, &fetcher, deadline).await;
    // Before any exit: no browser outlives `probe`.
    fetcher.close().await;
    let found = match fetched {
        Ok(body) => read(watcher.clone(), body, deadline).await,
        Err(err) => Err(err),
    };
    match found {
        Ok(found) => print(&url, &found, as_json),
        Err(err) if as_json => {
            let line = json!({
                "url": url.as_str(), "ok": false, "reason": err.reason(), "error": err.to_string(),
            });
            out!("{line}");
            Ok(ExitCode::FAILURE)
        }
        Err(err) => Err(failed(format!("{url}: {} ({})", err, err.reason()))),
    }
}

/// The user's config with one watcher, `probe`, in place of theirs: the request options of
/// `[defaults]`, `[proxies]` and `[browser]` apply as they would to a watcher of their own.
/// Without a config file, pagehook's defaults.
fn probe_config(file: &ConfigFile, url: &Url, browser: bool) -> Result<Config, Failure> {
    let mut table = if file.path.exists() {
        // Loaded first so that its problems are told at their real FILE:LINE:COL.
        file.load(EXIT_CONFIG)?;
        let text = std::fs::read_to_string(&file.path).map_err(failed)?;
        text.parse::<toml::Table>().map_err(failed)?
    } else {
        toml::Table::new()
    };
    table.remove("watchers");
    if let Some(toml::Value::Table(defaults)) = table.get_mut("defaults") {
        defaults.remove("webhook");
    }
    let mut webhook = toml::Table::new();
    webhook.insert("url".into(), NOWHERE.into());
    webhook.insert("secret".into(), PLACEHOLDER_SECRET.into());
    table.insert(
        "webhooks".into(),
        toml::Value::Table([("probe".to_owned(), webhook.into())].into_iter().collect()),
    );
    let mut watcher = toml::Table::new();
    watcher.insert("name".into(), "probe".into());
    watcher.insert("url".into(), url.as_str().into());
    if browser {
        watcher.insert("browser".into(), true.into());
    }
    let fields: toml::Table = FIELDS
        .iter()
        .map(|(name, kind)| {
            let field: toml::Table = [("type".to_owned(), toml::Value::from(*kind))]
                .into_iter()
                .collect();
            (name.to_string(), field.into())
        })
        .collect();
    watcher.insert("fields".into(), fields.into());
    table.insert("watchers".into(), toml::Value::Array(vec![watcher.into()]));
    let text = toml::to_string(&table).map_err(failed)?;
    match config::parse(&text, &file.path, &ProcessEnv) {
        Ok(loaded) => Ok(loaded.config),
        // Only what the command line put in can be wrong here: the file itself loaded.
        Err(err) => Err(Failure::Usage(
            err.errors
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
        )),
    }
}

/// What the probe found: each field on its own, so one missing value keeps its reason without
/// hiding the other.
struct Found {
    fields: Vec<(String, Result<Extraction, String>)>,
    survey: Survey,
    /// Each found field's `[[watchers]]` line.
    pinned: Vec<String>,
    /// Read from the page as the browser rendered it, so the watcher needs the browser too.
    rendered: bool,
}

/// Extract and survey on a blocking thread, by `deadline`: hostile pages are bounded as in a
/// check.
async fn read(watcher: Arc<Watcher>, body: String, deadline: Instant) -> Result<Found, CheckError> {
    let stop = Arc::new(AtomicBool::new(false));
    let job = tokio::task::spawn_blocking({
        let stop = stop.clone();
        move || read_now(&watcher, &body, &stop)
    });
    let timeout = CheckError::Timeout {
        after: deadline.saturating_duration_since(Instant::now()),
        doing: "parsing the page",
    };
    match tokio::time::timeout_at(deadline, job).await {
        Ok(Ok(found)) => found.map_err(CheckError::from),
        Ok(Err(join)) => std::panic::resume_unwind(join.into_panic()),
        Err(_) => {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            Err(timeout)
        }
    }
}

fn read_now(
    watcher: &Watcher,
    body: &str,
    stop: &AtomicBool,
) -> Result<Found, extract::ExtractError> {
    let currency = watcher.fields.iter().find_map(|f| f.currency);
    let survey = extract::survey(body, currency, stop)?;
    let mut fields = Vec::new();
    let mut pinned = Vec::new();
    for field in &watcher.fields {
        let result = match extract::extract_until(std::slice::from_ref(field), body, stop) {
            Ok(found) => {
                pinned.push(pin(field, &found, body, stop));
                Ok(found)
            }
            Err(extract::ExtractError::Fields(failures)) => Err(failures
                .into_iter()
                .map(|(_, err)| err.to_string())
                .collect::<Vec<_>>()
                .join("; ")),
            Err(err) => return Err(err),
        };
        fields.push((field.name.clone(), result));
    }
    Ok(Found {
        fields,
        survey,
        pinned,
        rendered: watcher.browser.is_some(),
    })
}

/// The field's line for the pasted block. A price read off the visible page is pinned to the
/// element's CSS path, but only when that path alone gives the same value again; structured
/// data is where URL-only mode looks first, so there the automatic field is the pin.
/// Availability stays automatic: on the visible page it reads the buy button's state and the
/// stock wording together, and a selector would read only the button's unchanging text.
fn pin(field: &Field, found: &Extraction, body: &str, stop: &AtomicBool) -> String {
    let kind = FIELDS
        .iter()
        .find(|(name, _)| *name == field.name)
        .map_or("text", |(_, kind)| kind);
    let automatic = format!("fields.{} = {{ type = \"{kind}\" }}", field.name);
    let label = found
        .origins
        .get(&field.name)
        .map_or("the page", |o| o.label());
    let path = found.paths.get(&field.name);
    let Some(path) = path.filter(|_| field.kind == FieldKind::Price) else {
        return format!("{automatic}  # read from {label}");
    };
    let css = Field {
        source: match scraper::Selector::parse(path) {
            Ok(selector) => Source::Css {
                css: path.clone(),
                selector: extract::Css::new(selector, path).into(),
                attr: None,
            },
            Err(_) => return format!("{automatic}  # {label}; no path pins it"),
        },
        ..field.clone()
    };
    let again = extract::extract_until(std::slice::from_ref(&css), body, stop)
        .ok()
        .and_then(|e| e.values.get(&field.name).cloned());
    if again.is_some() && again.as_ref() == found.values.get(&field.name) {
        let quoted = toml::Value::from(path.as_str());
        format!(
            "fields.{} = {{ css = {quoted}, type = \"{kind}\" }}",
            field.name
        )
    } else {
        format!("{automatic}  # {label}; its path alone reads differently")
    }
}

fn print(url: &Url, found: &Found, as_json: bool) -> Done {
    let any = found.fields.iter().any(|(_, r)| r.is_ok());
    let block = any.then(|| watcher_block(url, found));
    // The visible page's other prices only matter where the visible page decided the price.
    let read_visibly = found.fields.iter().any(|(name, result)| {
        name == "price"
            && result
                .as_ref()
                .map_or(true, |e| e.origins.get(name) == Some(&Origin::Visible))
    });
    let rejected: &[Rejected] = match read_visibly {
        true => &found.survey.rejected,
        false => &[],
    };
    if as_json {
        let fields: serde_json::Map<String, Value> = found
            .fields
            .iter()
            .map(|(name, result)| {
                let entry = match result {
                    Ok(e) => json!({"value": e.values.get(name), "found_in": e.found_in(name)}),
                    Err(why) => json!({"value": null, "error": why}),
                };
                (name.clone(), entry)
            })
            .collect();
        let line = json!({
            "url": url.as_str(),
            "ok": any,
            "title": found.survey.title,
            "fields": fields,
            "rejected": rejected.iter().map(rejected_json).collect::<Vec<_>>(),
            "watcher": block,
        });
        out!("{line}");
    } else {
        out!("{url}");
        if let Some(title) = &found.survey.title {
            out!("  title: {title}");
        }
        for (name, result) in &found.fields {
            match result {
                Ok(e) => {
                    let value = e.values.get(name).map(show).unwrap_or_default();
                    let place = e.found_in(name).unwrap_or_default();
                    out!("  {name}: {value}  (found in {place})");
                }
                Err(why) => out!("  {name}: none ({why})"),
            }
        }
        if !rejected.is_empty() {
            out!("  prices passed over:");
            for r in rejected.iter().take(SHOWN_REJECTED) {
                out!("    {}  at `{}`: {}", r.text, r.path, r.why);
            }
            if rejected.len() > SHOWN_REJECTED {
                out!(
                    "    ... {} more (--json lists them)",
                    rejected.len() - SHOWN_REJECTED
                );
            }
        }
        out!("");
        match &block {
            Some(block) => {
                out!("Paste into watchers.toml:");
                out!("");
                write!(io::stdout().lock(), "{block}").map_err(Failure::Output)?;
            }
            None => out!(
                "Nothing to paste: give the watcher a `css` selector for the value (see `pagehook test`)."
            ),
        }
    }
    Ok(if any {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn rejected_json(r: &Rejected) -> Value {
    json!({"text": r.text, "path": r.path, "why": r.why.to_string()})
}

/// A value as a person reads it: `24.99 EUR` for a price.
fn show(value: &Value) -> String {
    match value {
        Value::Object(price) => match (price.get("amount"), price.get("currency")) {
            (Some(Value::String(amount)), Some(Value::String(currency))) => {
                format!("{amount} {currency}")
            }
            (Some(Value::String(amount)), _) => amount.clone(),
            _ => value.to_string(),
        },
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The `[[watchers]]` block for the page, with only the fields that were found.
fn watcher_block(url: &Url, found: &Found) -> String {
    let mut block = String::from("[[watchers]]\n");
    block.push_str(&format!("name = {}\n", toml::Value::from(name_for(url))));
    block.push_str(&format!("url = {}\n", toml::Value::from(url.as_str())));
    if found.rendered {
        block.push_str("browser = true\n");
    }
    for line in &found.pinned {
        block.push_str(line);
        block.push('\n');
    }
    block
}

/// A watcher name from the URL: its host and last path segment, as a slug.
fn name_for(url: &Url) -> String {
    let host = url.host_str().unwrap_or("page").trim_start_matches("www.");
    let last = url
        .path_segments()
        .and_then(|mut s| s.rfind(|s| !s.is_empty()))
        .unwrap_or("");
    let mut slug = String::new();
    for c in format!("{host} {last}")
        .chars()
        .flat_map(char::to_lowercase)
    {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 48 {
            break;
        }
    }
    // A file extension is noise in a name: `kettle-html` reads worse than `kettle`.
    for ext in ["-html", "-htm", "-php", "-aspx"] {
        if let Some(stripped) = slug.strip_suffix(ext) {
            slug.truncate(stripped.len());
        }
    }
    slug.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_host_and_the_last_segment() {
        let name = |u: &str| name_for(&Url::parse(u).unwrap());
        assert_eq!(
            name("https://www.shop.example/p/blue-kettle.html"),
            "shop-example-blue-kettle"
        );
        assert_eq!(name("https://shop.example/"), "shop-example");
        assert_eq!(name("http://127.0.0.1:8080/item/42/"), "127-0-0-1-42");
        assert!(name(&format!("https://s.example/{}", "x".repeat(200))).len() <= 48);
    }

    #[test]
    fn prices_read_as_people_write_them() {
        assert_eq!(
            show(&json!({"amount": "24.99", "currency": "EUR", "raw": "x"})),
            "24.99 EUR"
        );
        assert_eq!(show(&json!("InStock")), "InStock");
    }
}
