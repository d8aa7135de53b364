//! A browser driven directly, for tests that look at a page as a person would: the dashboard's
//! tests. They load a page served on loopback, read its rendered DOM, type into it, collect
//! what the page complained about, and take a screenshot.
//!
//! It speaks through the fetcher's own protocol client and starts the browser the fetcher's
//! way, so it leaves nothing behind either. Unlike a render, nothing is intercepted or refused:
//! the page loads as it would for a person.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, timeout};

use super::cdp::{Connection, Event};
use super::process::Process;
use super::render::exception_text;
use super::{EXECUTABLES, discover};

/// How long loading a page, or any one call, may take: far more than a loopback page needs,
/// so that running out means something is wrong rather than slow.
const LIMIT: Duration = Duration::from_secs(15);
/// How often `wait_for` asks again: its condition is any expression, and nothing in the page
/// announces when one turns true.
const POLL: Duration = Duration::from_millis(50);

/// One headless browser, killed by [`DevTools::close`] or when dropped.
pub struct DevTools {
    connection: Connection,
    process: Process,
}

impl DevTools {
    /// Start the browser that [`discover`] finds, and wait until it answers.
    pub async fn start() -> Result<DevTools, String> {
        let executable = discover().ok_or_else(|| {
            format!(
                "no browser found: install one of {} on PATH",
                EXECUTABLES.join(", ")
            )
        })?;
        let (process, connection) = Process::spawn(&executable)?;
        match call(&connection, None, "Browser.getVersion", json!({})).await {
            Ok(_) => Ok(DevTools {
                connection,
                process,
            }),
            Err(why) => {
                let said = process.kill().await.map(|s| format!(": {s}"));
                Err(format!(
                    "the browser did not start: {why}{}",
                    said.unwrap_or_default()
                ))
            }
        }
    }

    /// The browser's process group, which its helper processes share.
    pub fn process_group(&self) -> Option<u32> {
        self.process.group()
    }

    /// Kill the browser, every helper process with it.
    pub async fn close(self) {
        self.connection.close();
        self.process.kill().await;
    }

    /// Load `url` in a new tab of a fresh browser context, its viewport `(width, height)` CSS
    /// pixels, and wait for its load event.
    pub async fn open(&self, url: &str, (width, height): (u32, u32)) -> Result<Tab, String> {
        let fresh = json!({ "disposeOnDetach": true });
        let context = self
            .create("Target.createBrowserContext", fresh, "browserContextId")
            .await?;
        let blank = json!({ "url": "about:blank", "browserContextId": context });
        let target = self
            .create("Target.createTarget", blank, "targetId")
            .await?;
        let attach = json!({ "targetId": target, "flatten": true });
        let session = self
            .create("Target.attachToTarget", attach, "sessionId")
            .await?;
        let problems = Arc::new(Mutex::new(Vec::new()));
        let (loaded, mut loads) = watch::channel(Vec::new());
        let events = self.connection.events(&session);
        // The target's id is its main frame's id.
        let follow = follow(events, target, problems.clone(), loaded);
        // From here on the tab's drop throws the context away, a failure to load included.
        let tab = Tab {
            connection: self.connection.clone(),
            session,
            context,
            events: tokio::spawn(follow),
            problems,
        };
        let metrics =
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false });
        for (method, params) in [
            ("Page.enable", json!({})),
            ("Page.setLifecycleEventsEnabled", json!({ "enabled": true })),
            ("Runtime.enable", json!({})),
            ("Log.enable", json!({})),
            ("Emulation.setDeviceMetricsOverride", metrics),
        ] {
            tab.call(method, params).await?;
        }
        let navigated = tab.call("Page.navigate", json!({ "url": url })).await?;
        if let Some(error) = navigated["errorText"].as_str().filter(|e| !e.is_empty()) {
            return Err(format!("{url}: {error}"));
        }
        let loader = navigated["loaderId"].as_str().unwrap_or_default();
        match timeout(LIMIT, loads.wait_for(|l| l.iter().any(|id| id == loader))).await {
            Ok(Ok(_)) => Ok(tab),
            Ok(Err(_)) => Err(format!("the browser went away while loading {url}")),
            Err(_) => Err(format!("{url} did not load within {}", seconds(LIMIT))),
        }
    }

    /// Call `method` on the browser and take the id `field` from its answer.
    async fn create(&self, method: &str, params: Value, field: &str) -> Result<String, String> {
        let answer = call(&self.connection, None, method, params).await?;
        Ok(answer[field].as_str().unwrap_or_default().to_owned())
    }
}

/// One page, loaded; its browser context is thrown away when it is dropped.
pub struct Tab {
    connection: Connection,
    session: String,
    context: String,
    events: tokio::task::JoinHandle<()>,
    problems: Arc<Mutex<Vec<String>>>,
}

impl Tab {
    /// The value of a JavaScript expression, a promise's awaited; an exception it throws is the
    /// error, in its own words.
    pub async fn eval(&self, js: &str) -> Result<Value, String> {
        let mut answer = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(exception) = answer.get("exceptionDetails") {
            return Err(exception_text(exception));
        }
        // `undefined` comes back without a value.
        Ok(answer
            .pointer_mut("/result/value")
            .map(Value::take)
            .unwrap_or_default())
    }

    /// Focus the element `css_selector` matches and type `text` into it, as a keyboard would:
    /// the page sees `beforeinput` and `input` events.
    pub async fn type_into(&self, css_selector: &str, text: &str) -> Result<(), String> {
        let selector = Value::from(css_selector);
        self.eval(&format!(
            "(selector => {{
                const element = document.querySelector(selector);
                if (!element) throw new Error('nothing matches ' + selector);
                element.focus();
                if (document.activeElement !== element) throw new Error(selector + ' cannot take the focus');
            }})({selector})"
        ))
        .await?;
        self.call("Input.insertText", json!({ "text": text }))
            .await
            .map(drop)
    }

    /// Write a PNG of the whole page, beyond the viewport too, to `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<(), String> {
        let metrics = self.call("Page.getLayoutMetrics", json!({})).await?;
        let size = &metrics["cssContentSize"];
        let clip =
            json!({ "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1 });
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true, "clip": clip }),
            )
            .await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .map_err(|err| format!("the screenshot is not base64: {err}"))?;
        std::fs::write(path, png).map_err(|err| format!("cannot write {}: {err}", path.display()))
    }

    /// Every console error and warning, uncaught exception, and browser log entry of level
    /// error or warning (CSP violations, failed loads) since the tab opened, one line each.
    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().expect("not poisoned").clone()
    }

    /// Wait until the JavaScript expression `condition` is truthy, asking again until `limit`
    /// has passed; an exception it throws ends the wait at once.
    pub async fn wait_for(&self, condition: &str, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        // On lines of their own, so that a trailing comment in the condition stays inside.
        let truthy = format!("!!(\n{condition}\n)");
        while self.eval(&truthy).await? != Value::Bool(true) {
            if Instant::now() >= deadline {
                return Err(format!("`{condition}` not true within {}", seconds(limit)));
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        call(&self.connection, Some(&self.session), method, params).await
    }
}

impl Drop for Tab {
    fn drop(&mut self) {
        self.events.abort();
        self.connection.forget(&self.session);
        // Sent now, its answer not waited for: a drop cannot wait, and the browser's end
        // disposes of every context anyway.
        drop(self.connection.call(
            None,
            "Target.disposeBrowserContext",
            json!({ "browserContextId": self.context }),
        ));
    }
}

/// One call, bounded by [`LIMIT`].
async fn call(
    connection: &Connection,
    session: Option<&str>,
    method: &str,
    params: Value,
) -> Result<Value, String> {
    match timeout(LIMIT, connection.call(session, method, params)).await {
        Ok(answer) => answer.map_err(|err| err.to_string()),
        Err(_) => Err(format!("{method}: no answer within {}", seconds(LIMIT))),
    }
}

fn seconds(limit: Duration) -> String {
    humantime::format_duration(limit).to_string()
}

/// Follow a tab's events until it closes: the main frame's loads (by loader id) and every
/// problem.
async fn follow(
    mut events: mpsc::UnboundedReceiver<Event>,
    main_frame: String,
    problems: Arc<Mutex<Vec<String>>>,
    loaded: watch::Sender<Vec<String>>,
) {
    while let Some(Event { method, params }) = events.recv().await {
        if method == "Page.lifecycleEvent" {
            if params["name"] == "load" && params["frameId"] == main_frame.as_str() {
                let loader = params["loaderId"].as_str().unwrap_or_default().to_owned();
                loaded.send_modify(|loads| loads.push(loader));
            }
        } else if let Some(problem) = problem(&method, &params) {
            problems.lock().expect("not poisoned").push(problem);
        }
    }
}

/// The problem an event reports, as a line a person reads in a failed test.
fn problem(method: &str, params: &Value) -> Option<String> {
    match method {
        "Runtime.consoleAPICalled" => {
            let kind = params["type"].as_str()?;
            if !matches!(kind, "error" | "warning" | "assert") {
                return None;
            }
            let args = params["args"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let text: Vec<String> = args.iter().map(remote_object).collect();
            let frame = &params["stackTrace"]["callFrames"][0];
            Some(format!(
                "console.{kind}: {}{}",
                text.join(" "),
                place(&frame["url"], &frame["lineNumber"])
            ))
        }
        "Runtime.exceptionThrown" => {
            let details = &params["exceptionDetails"];
            Some(format!(
                "uncaught exception: {}{}",
                exception_text(details),
                place(&details["url"], &details["lineNumber"])
            ))
        }
        "Log.entryAdded" => {
            let entry = &params["entry"];
            let level = entry["level"].as_str()?;
            if !matches!(level, "error" | "warning") {
                return None;
            }
            Some(format!(
                "{} {level}: {}{}",
                entry["source"].as_str().unwrap_or("browser"),
                entry["text"].as_str().unwrap_or_default(),
                place(&entry["url"], &entry["lineNumber"])
            ))
        }
        _ => None,
    }
}

/// A console argument as the console shows it.
fn remote_object(object: &Value) -> String {
    match &object["value"] {
        Value::String(text) => text.clone(),
        Value::Null => object["unserializableValue"]
            .as_str()
            .or_else(|| object["description"].as_str())
            .unwrap_or_else(|| object["type"].as_str().unwrap_or_default())
            .to_owned(),
        value => value.to_string(),
    }
}

/// ` (url:line)`, lines counted from 1; nothing when the browser named no place.
fn place(url: &Value, line: &Value) -> String {
    match (url.as_str().filter(|u| !u.is_empty()), line.as_u64()) {
        (Some(url), Some(line)) => format!(" ({url}:{})", line + 1),
        (Some(url), None) => format!(" ({url})"),
        (None, _) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_errors_and_warnings_are_problems_and_logs_are_not() {
        let console = |kind: &str| {
            json!({
                "type": kind,
                "args": [{ "type": "string", "value": "total" }, { "type": "number", "value": 3 },
                         { "type": "object", "description": "Array(2)" }],
                "stackTrace": { "callFrames": [{ "url": "http://127.0.0.1:1/app.js", "lineNumber": 9 }] },
            })
        };
        assert_eq!(
            problem("Runtime.consoleAPICalled", &console("warning")).as_deref(),
            Some("console.warning: total 3 Array(2) (http://127.0.0.1:1/app.js:10)")
        );
        assert_eq!(problem("Runtime.consoleAPICalled", &console("log")), None);
    }

    #[test]
    fn exceptions_and_log_entries_of_level_error_or_warning_are_problems() {
        let exception = json!({ "exceptionDetails": {
            "text": "Uncaught",
            "exception": { "description": "Error: boom\n    at http://127.0.0.1:1/:3:7" },
            "url": "http://127.0.0.1:1/", "lineNumber": 2,
        }});
        assert_eq!(
            problem("Runtime.exceptionThrown", &exception).as_deref(),
            Some("uncaught exception: Error: boom (http://127.0.0.1:1/:3)")
        );
        let entry = |level: &str| json!({ "entry": { "source": "network", "level": level, "text": "Failed to load resource", "url": "http://127.0.0.1:1/x.css" }});
        assert_eq!(
            problem("Log.entryAdded", &entry("error")).as_deref(),
            Some("network error: Failed to load resource (http://127.0.0.1:1/x.css)")
        );
        assert_eq!(problem("Log.entryAdded", &entry("verbose")), None);
    }
}
