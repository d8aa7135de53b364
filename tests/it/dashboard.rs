//! The dashboard as a person sees it: a real daemon with recorded history, its admin address
//! loaded in headless Chromium. The tests read the rendered DOM, type into the filter, check
//! that no script or resource complained, and save screenshots under target/dashboard/.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use pagehook::fetch::browser::devtools::{DevTools, Tab};

use crate::browser::{assert_gone, browser_source};
use crate::fixtures::*;

/// A price's recorded value, as the price field writes it.
fn price(amount: &str, currency: &str) -> Value {
    json!({"amount": amount, "currency": currency, "raw": amount})
}

fn entry(at: DateTime<Utc>, kind: &str, values: Value, event: Option<&str>) -> Value {
    json!({
        "checked_at": at,
        "kind": kind,
        "changed": if kind == "baseline" { vec![] } else { vec!["price"] },
        "event_id": event,
        "values": values,
    })
}

/// The daemon under test, its store seeded through `pagehook import` as a user moves one.
struct Running {
    setup: Setup,
    admin: String,
    stop: CancellationToken,
    daemon: tokio::task::JoinHandle<anyhow::Result<()>>,
    _shop: Shop,
    _receiver: Receiver,
}

/// Five watchers: `widget`, with a week of prices, changes once more when the daemon checks
/// it; `import`, whose currency and title kind changed mid-history; `hostile`, whose title
/// is markup; `trap`, whose price text is a script (so its error quotes one); `gone`, which
/// answers 503.
async fn start(now: DateTime<Utc>) -> Running {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/widget", product("Widget", "$12.50", 5));
    shop.set(
        "/hostile",
        product(
            "&lt;script&gt;window.pwned = 1&lt;/script&gt;&lt;img src=x onerror=\"window.pwned = 2\"&gt;",
            "$3.00",
            1,
        ),
    );
    shop.set(
        "/trap",
        product("Trap", "&lt;script&gt;window.pwned = 3&lt;/script&gt;", 1),
    );
    shop.set("/gone", product("Gone", "$1.00", 1));
    shop.set_status("/gone", 503);
    let admin = format!("127.0.0.1:{}", free_port());
    let watcher = |name: &str, path: &str| {
        // Overdue watchers of one period catch up spread over it; each alone in its own
        // period catches up at once. Import is not due for a day.
        let schedule = match name {
            "widget" => "2h",
            "hostile" => "1h",
            "gone" => "3h",
            "trap" => "4h",
            _ => "24h",
        };
        format!(
            "[[watchers]]\nname = \"{name}\"\nurl = \"{}\"\nschedule = \"every {schedule}\"\njitter = \"0s\"\nwebhook = [\"pipeline\", \"down\"]\nfields.title = {{ css = \"h1.title\" }}\nfields.price = {{ css = \"div.buy span.price\", type = \"price\" }}\n",
            shop.url(path)
        )
    };
    let watchers = format!(
        "[webhooks.down]\nurl = \"http://127.0.0.1:{}/hooks\"\nsecret = \"{SECRET}\"\nretry = []\n\n{}{}{}{}{}\n",
        free_port(),
        watcher("widget", "/widget"),
        watcher("import", "/widget"),
        watcher("hostile", "/hostile"),
        watcher("trap", "/trap"),
        watcher("gone", "/gone"),
    );
    let setup = Setup::new(&receiver, "[]", &watchers);
    let config = std::fs::read_to_string(setup.config()).unwrap();
    std::fs::write(
        setup.config(),
        format!(
            "[daemon]\nadmin_listen = \"{admin}\"\n{}",
            &config["[daemon]\n".len()..]
        ),
    )
    .unwrap();

    let day = |n: i64| now - TimeDelta::days(n);
    let widget_prices = [(7, "10.00"), (5, "11.00"), (3, "9.50"), (1, "11.00")];
    let widget: Vec<Value> = widget_prices
        .iter()
        .enumerate()
        .map(|(i, (d, amount))| {
            let kind = if i == 0 { "baseline" } else { "changed" };
            let event = (i > 0).then(|| format!("evt_widget{i}"));
            let values = json!({"title": "Widget", "price": price(amount, "USD")});
            entry(day(*d), kind, values, event.as_deref())
        })
        .rev()
        .collect();
    let import = vec![
        entry(
            day(1),
            "changed",
            json!({"title": 7, "price": price("21.00", "USD")}),
            None,
        ),
        entry(
            day(2),
            "changed",
            json!({"title": 6, "price": price("20.00", "USD")}),
            None,
        ),
        entry(
            day(3),
            "changed",
            json!({"title": "six", "price": price("18.00", "EUR")}),
            None,
        ),
        entry(
            day(4),
            "baseline",
            json!({"title": "five", "price": price("17.50", "EUR")}),
            None,
        ),
    ];
    // Widget was checked three hours ago: it is overdue.
    let state = |values: &Value, checked: DateTime<Utc>| json!({"values": values, "seq": 3, "last_check": checked, "last_success": checked, "consecutive_failures": 0});
    let records = [
        json!({"watcher": "widget", "state": state(&widget[0]["values"], now - TimeDelta::hours(3)), "history": widget}),
        json!({"watcher": "import", "state": state(&import[0]["values"], now - TimeDelta::minutes(10)), "history": import}),
    ];
    let mut export =
        json!({"pagehook_export": 1, "version": "test", "exported_at": now}).to_string();
    for record in &records {
        export.push('\n');
        export.push_str(&record.to_string());
    }
    let file = setup.dir.path().join("export.jsonl");
    std::fs::write(&file, export).unwrap();
    let imported = setup.pagehook(&["import", file.to_str().unwrap()]).await;
    assert_eq!(imported.code, 0, "{imported:?}");

    let loaded = pagehook::config::load(&setup.config()).unwrap().config;
    let stop = CancellationToken::new();
    let daemon = tokio::spawn(pagehook::daemon::run(loaded, setup.config(), stop.clone()));
    Running {
        setup,
        admin: format!("http://{admin}"),
        stop,
        daemon,
        _shop: shop,
        _receiver: receiver,
    }
}

async fn get(url: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// Wait until the dashboard's `path` holds `text`: the daemon checks and delivers on its own.
async fn wait_for_page(admin: &str, path: &str, text: &str) -> String {
    let url = format!("{admin}{path}");
    let last = std::sync::Mutex::new(String::new());
    let wait = async {
        loop {
            if let Ok(response) = reqwest::get(&url).await {
                let body = response.text().await.unwrap_or_default();
                if body.contains(text) {
                    return body;
                }
                *last.lock().unwrap() = body;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("{path} never showed {text:?}: {}", last.lock().unwrap()))
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn open(devtools: &DevTools, url: &str) -> Tab {
    devtools.open(url, (1280, 900)).await.unwrap()
}

async fn eval(tab: &Tab, js: &str) -> Value {
    tab.eval(js).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_what_the_daemon_recorded_in_a_real_browser() {
    if browser_source("dashboard").is_none() {
        return;
    }
    // Whole seconds, as the history's times are shown.
    let started = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let run = start(started).await;
    // The daemon checks the due watchers at once. Widget's new price goes to both webhooks,
    // and the one that is down makes it a dead letter at once (no retries).
    wait_for_page(&run.admin, "/", r#"id="count-failing">2<"#).await;
    let day = |n: i64| started - TimeDelta::days(n);
    let dead = wait_for_page(&run.admin, "/deliveries", "badge dead").await;
    let (code, headers, overview) = get(&format!("{}/", run.admin)).await;
    assert_eq!(code, 200);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(
        !overview.contains("<script>window"),
        "markup from a page is escaped"
    );
    assert!(overview.contains("&lt;script&gt;window.pwned = 1&lt;/script&gt;"));

    // Without a script the filter is a form: the server lists what it admits.
    let (_, _, failing) = get(&format!("{}/?outcome=failing", run.admin)).await;
    assert!(failing.contains(r#"data-name="gone""#) && !failing.contains(r#"data-name="widget""#));
    assert!(
        !failing.contains("<script>window"),
        "an error quoting a page is escaped"
    );
    let (_, _, named) = get(&format!("{}/?q=HOST", run.admin)).await;
    assert!(named.contains(r#"data-name="hostile""#) && !named.contains(r#"data-name="gone""#));

    let devtools = DevTools::start().await.unwrap();
    let group = devtools.process_group().unwrap();
    let shots = screenshots();

    // The overview: every watcher, its outcome, the counts, and the filter as one types.
    let tab = open(&devtools, &format!("{}/", run.admin)).await;
    let rows = "[...document.querySelectorAll('#watchers tbody tr:not([hidden])')].map(r => [r.dataset.name, r.dataset.outcome])";
    assert_eq!(
        eval(&tab, rows).await,
        json!([
            ["widget", "ok"],
            ["import", "ok"],
            ["hostile", "ok"],
            ["trap", "failing"],
            ["gone", "failing"]
        ])
    );
    let count = |id: &str| format!("document.getElementById('count-{id}').textContent");
    assert_eq!(eval(&tab, &count("watchers")).await, "5");
    assert_eq!(
        eval(&tab, &count("dead")).await,
        "1",
        "widget's change, at the webhook that is down"
    );
    assert_eq!(
        eval(
            &tab,
            "document.querySelector('tr[data-name=gone] .reason').textContent"
        )
        .await,
        "http_status"
    );
    assert_eq!(
        eval(
            &tab,
            "document.querySelector('tr[data-name=hostile] [data-field=title] dd').textContent"
        )
        .await,
        r#"<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">"#,
        "the page's markup is shown as text"
    );
    let trap = eval(
        &tab,
        "document.querySelector('tr[data-name=trap] .why').textContent",
    )
    .await;
    assert!(
        trap.as_str()
            .unwrap()
            .contains("<script>window.pwned = 3</script>"),
        "the error quotes the page's text, as text: {trap}"
    );
    assert_eq!(eval(&tab, "typeof window.pwned").await, "undefined");
    tab.screenshot(&shots.join("overview.png")).await.unwrap();
    tab.type_into("#filter-text", "HOS").await.unwrap();
    let only_hostile = format!("JSON.stringify({rows}) === '[[\"hostile\",\"ok\"]]'");
    tab.wait_for(&only_hostile, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        eval(&tab, "document.getElementById('filter-shown').textContent")
            .await
            .as_str()
            .unwrap()
            .starts_with("1 of 5 on this page")
    );
    assert_eq!(tab.problems(), Vec::<String>::new());

    // One watcher: the chart's points are the recorded history, oldest first, with the
    // change the daemon just recorded last.
    let tab = open(&devtools, &format!("{}/watchers/widget", run.admin)).await;
    let points = "[...document.querySelectorAll('svg.chart[data-field=price] circle.point')].map(c => [c.dataset.at, c.dataset.value])";
    let at = |days: i64| day(days).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let checked = eval(
        &tab,
        "document.querySelector('#changes tbody tr').dataset.at",
    )
    .await;
    assert_eq!(
        eval(&tab, points).await,
        json!([
            [at(7), "10.00"],
            [at(5), "11.00"],
            [at(3), "9.50"],
            [at(1), "11.00"],
            [checked, "12.50"]
        ])
    );
    let labels = eval(
        &tab,
        "[...document.querySelectorAll('svg.chart .ylabel')].map(t => t.textContent)",
    )
    .await;
    assert!(
        labels
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l.as_str().unwrap().starts_with("USD ")),
        "{labels}"
    );
    assert_eq!(
        eval(
            &tab,
            "document.querySelectorAll('#changes tbody tr').length"
        )
        .await,
        5
    );
    let newest = "document.querySelector('#changes tbody tr').textContent";
    let newest = eval(&tab, newest).await;
    let newest = newest.as_str().unwrap();
    assert!(
        newest.contains("USD 12.50") && newest.contains("dead"),
        "{newest}"
    );
    assert!(
        newest.contains(&format!("-c {} replay evt_", run.setup.config().display())),
        "the command to replay it: {newest}"
    );
    tab.screenshot(&shots.join("watcher.png")).await.unwrap();
    assert_eq!(tab.problems(), Vec::<String>::new());

    let charted = eval(&tab, points).await;

    // A range shows the value that held at its start and the changes inside it.
    let tab = open(
        &devtools,
        &format!("{}/watchers/widget?range=24h", run.admin),
    )
    .await;
    assert_eq!(eval(&tab, points).await, json!([[checked, "12.50"]]));

    // A currency that changed, and a field that was text and became a number.
    let tab = open(&devtools, &format!("{}/watchers/import", run.admin)).await;
    assert_eq!(
        eval(&tab, "[...document.querySelectorAll('svg.chart')].map(s => s.dataset.field + ' ' + s.dataset.currency)").await,
        json!(["price USD", "price EUR", "title "])
    );
    let notes = eval(
        &tab,
        "[...document.querySelectorAll('p.note')].map(p => p.textContent).join(' | ')",
    )
    .await;
    let notes = notes.as_str().unwrap();
    assert!(
        notes.contains("The currency of price changed (USD, EUR)"),
        "{notes}"
    );
    assert!(
        notes.contains("2 entries of title were not numbers"),
        "{notes}"
    );
    assert_eq!(tab.problems(), Vec::<String>::new());

    // Deliveries: each dead letter with the exact command that sends it again.
    let tab = open(&devtools, &format!("{}/deliveries", run.admin)).await;
    let commands = eval(
        &tab,
        "[...document.querySelectorAll('#dead ~ table code:not(.id)')].map(c => c.textContent)",
    )
    .await;
    let config = run.setup.config().display().to_string();
    let commands: Vec<&str> = commands
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(commands.len(), 1, "{commands:?}");
    assert!(
        commands
            .iter()
            .all(|c| c.starts_with(&format!("pagehook -c {config} replay evt_"))),
        "{commands:?}"
    );
    assert!(dead.contains(&format!("pagehook -c {config} replay --dead")));
    tab.screenshot(&shots.join("deliveries.png")).await.unwrap();
    assert_eq!(tab.problems(), Vec::<String>::new());

    devtools.close().await;
    assert_gone(group).await;
    run.stop.cancel();
    run.daemon.await.unwrap().unwrap();

    // The chart's points are the store's history, as `pagehook history` reads it.
    let history = run.setup.pagehook(&["history", "widget", "--json"]).await;
    let history: Value = serde_json::from_str(&history.stdout).unwrap();
    let recorded: Vec<Value> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            let at: DateTime<Utc> = e["checked_at"].as_str().unwrap().parse().unwrap();
            let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            json!([at, e["values"]["price"]["amount"]])
        })
        .collect();
    assert_eq!(charted, Value::from(recorded));
}
