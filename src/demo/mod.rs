//! `pagehook demo`: the whole pipeline on one machine, offline. An embedded shop whose prices
//! and stock move, a receiver that verifies every signature, a generated secret and a temporary
//! state directory; in between, the real daemon (`daemon::run`) driven by a real config that the
//! config loader reads from a generated watchers.toml. Nothing in the pipeline knows it is a demo.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Loaded};
use crate::daemon;
use crate::receive::{self, Received, Rejected};
use crate::schedule::Schedule;
use crate::sign::{DEFAULT_TOLERANCE_SECS, Secret};

mod shop;

use shop::{Product, Shop, catalogue, money};

/// How the demo runs; `Default` is what `pagehook demo` uses.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stop after this long; without it, run until `shutdown`.
    pub duration: Option<Duration>,
    /// The watchers' schedule, as watchers.toml spells it.
    pub schedule: String,
    /// How often the shop moves one product's price (and perhaps its stock).
    pub tick: Duration,
}

impl Default for Options {
    fn default() -> Self {
        // Five products moved in turn every 800 ms: each changes about every four seconds,
        // so a watcher checking every 2 s finds a change on most checks.
        Options {
            duration: None,
            schedule: "every 2s".into(),
            tick: Duration::from_millis(800),
        }
    }
}

/// What the demo shows, in order: an intro, one line per request the receiver judged, and a
/// summary.
#[derive(Debug, Clone)]
pub enum Output {
    Intro {
        shop: String,
        receiver: String,
        dashboard: String,
        watchers: usize,
        schedule: String,
        state_dir: String,
        duration: Option<Duration>,
    },
    Event(EventLine),
    Rejected(Rejected),
    Summary(Summary),
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Intro {
                shop,
                receiver,
                dashboard,
                watchers,
                schedule,
                state_dir,
                duration,
            } => {
                writeln!(
                    f,
                    "pagehook demo: a shop, pagehook and a webhook receiver, all on this machine."
                )?;
                writeln!(
                    f,
                    "  shop      {shop}  ({watchers} products; prices and stock move every few seconds)"
                )?;
                writeln!(
                    f,
                    "  pagehook  {watchers} watchers, {schedule}, state in {state_dir} (removed on exit)"
                )?;
                writeln!(
                    f,
                    "  receiver  {receiver}  (verifies every webhook's signature)"
                )?;
                writeln!(
                    f,
                    "  dashboard {dashboard}  (open it in a browser: price charts, failures, the outbox)"
                )?;
                writeln!(
                    f,
                    "The first check of each page records a baseline. After that, each line is one webhook"
                )?;
                let stop = match duration {
                    Some(d) => format!(
                        "Stops after {} (or at Ctrl-C).",
                        humantime::format_duration(*d)
                    ),
                    None => "Stop with Ctrl-C.".to_owned(),
                };
                writeln!(f, "the receiver verified. {stop}\n")?;
                write!(f, "{:<8}  {:<24}  {:<32}  stock", "UTC", "product", "price")
            }
            Output::Event(line) => line.fmt(f),
            Output::Rejected(r) => write!(
                f,
                "{}  REJECTED ({}): {}",
                r.received_at.format("%H:%M:%S"),
                r.status,
                r.reason
            ),
            Output::Summary(summary) => summary.fmt(f),
        }
    }
}

/// A price's move between two checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceMove {
    pub old: Decimal,
    pub new: Decimal,
    /// Rounded to one decimal place; `None` from a zero price, which has no percentage.
    pub pct: Option<Decimal>,
}

impl PriceMove {
    pub(crate) fn new(old: Decimal, new: Decimal) -> Self {
        PriceMove {
            old,
            new,
            pct: pct_change(old, new),
        }
    }
}

impl fmt::Display for PriceMove {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (old, new) = (money(self.old), money(self.new));
        match self.pct {
            Some(pct) if pct.is_sign_positive() && !pct.is_zero() => {
                write!(f, "{old} -> {new}  +{pct}%")
            }
            Some(pct) => write!(f, "{old} -> {new}  {pct}%"),
            None => write!(f, "{old} -> {new}"),
        }
    }
}

/// `(new - old) / old` in percent, one decimal place.
pub fn pct_change(old: Decimal, new: Decimal) -> Option<Decimal> {
    if old.is_zero() {
        return None;
    }
    Some(((new - old) / old * Decimal::ONE_HUNDRED).round_dp(1))
}

/// A price's amount as it appears in a payload: the `{"amount": ..}` object of `type = "price"`,
/// or the decimal string of a `type = "number"` field.
fn amount(value: &Value) -> Option<Decimal> {
    let text = match value {
        Value::String(text) => text.as_str(),
        Value::Object(price) => price.get("amount")?.as_str()?,
        _ => return None,
    };
    text.parse().ok()
}

/// One verified webhook, as the demo prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventLine {
    pub(crate) at: DateTime<Utc>,
    /// The event's `type`.
    pub kind: String,
    /// The page's title, else the watcher's name.
    pub(crate) product: String,
    /// Set when the price changed.
    pub price_move: Option<PriceMove>,
    pub price: Option<Decimal>,
    /// Set when the stock text changed.
    pub(crate) stock_before: Option<String>,
    pub stock: Option<String>,
}

impl EventLine {
    /// Read a webhook body; `None` when it is not a pagehook event.
    pub(crate) fn from_event(event: &Value, at: DateTime<Utc>) -> Option<EventLine> {
        let kind = event["type"].as_str()?.to_owned();
        let data = &event["data"];
        let watcher = data["watcher"].as_str()?;
        let (values, changes) = (&data["values"], &data["changes"]);
        let price_move = match (
            amount(&changes["price"]["old"]),
            amount(&changes["price"]["new"]),
        ) {
            (Some(old), Some(new)) => Some(PriceMove::new(old, new)),
            _ => None,
        };
        let text = |v: &Value| v.as_str().map(str::to_owned);
        Some(EventLine {
            at,
            kind,
            product: text(&values["title"]).unwrap_or_else(|| watcher.to_owned()),
            price_move,
            price: amount(&values["price"]),
            stock_before: text(&changes["stock"]["old"]),
            stock: text(&values["stock"]),
        })
    }
}

impl fmt::Display for EventLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at.format("%H:%M:%S");
        let product = &self.product;
        if self.kind != crate::event::WATCH_CHANGED {
            return write!(f, "{at}  {product:<24}  {}", self.kind);
        }
        let price = match (&self.price_move, self.price) {
            (Some(moved), _) => moved.to_string(),
            (None, Some(price)) => money(price),
            (None, None) => "-".to_owned(),
        };
        let stock = match (&self.stock_before, &self.stock) {
            (Some(before), Some(now)) => format!("{before} -> {now}"),
            (_, Some(now)) => now.clone(),
            (_, None) => "-".to_owned(),
        };
        write!(f, "{at}  {product:<24}  {price:<32}  {stock}")
    }
}

/// What the demo did, shown when it stops.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub(crate) elapsed: Duration,
    pub verified: usize,
    pub rejected: usize,
    /// Pages the shop served: pagehook's checks.
    pub fetches: u64,
    pub(crate) biggest_drop: Option<(String, PriceMove)>,
    pub(crate) biggest_rise: Option<(String, PriceMove)>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let elapsed = Duration::from_secs(self.elapsed.as_secs());
        writeln!(
            f,
            "\nStopped after {}: {} webhooks verified, {} rejected; the shop served {} pages to pagehook.",
            humantime::format_duration(elapsed),
            self.verified,
            self.rejected,
            self.fetches
        )?;
        for (label, found) in [
            ("biggest drop", &self.biggest_drop),
            ("biggest rise", &self.biggest_rise),
        ] {
            if let Some((product, moved)) = found {
                writeln!(f, "  {label}: {product}, {moved}")?;
            }
        }
        write!(
            f,
            "Next: watch a page of your own (README.md, \"Watching a real page\")."
        )
    }
}

#[derive(Default)]
struct Tally {
    verified: usize,
    rejected: usize,
    biggest_drop: Option<(String, PriceMove)>,
    biggest_rise: Option<(String, PriceMove)>,
}

impl Tally {
    fn record(&mut self, received: Received, show: &mut impl FnMut(Output)) {
        match received {
            Received::Verified(verified) => {
                self.verified += 1;
                let Some(line) = EventLine::from_event(&verified.event, verified.received_at)
                else {
                    return;
                };
                if let Some(moved) = line.price_move
                    && let Some(pct) = moved.pct
                {
                    let best = |found: &Option<(String, PriceMove)>| {
                        found.as_ref().and_then(|(_, m)| m.pct).unwrap_or_default()
                    };
                    if pct < best(&self.biggest_drop) {
                        self.biggest_drop = Some((line.product.clone(), moved));
                    } else if pct > best(&self.biggest_rise) {
                        self.biggest_rise = Some((line.product.clone(), moved));
                    }
                }
                show(Output::Event(line));
            }
            Received::Rejected(rejected) => {
                self.rejected += 1;
                show(Output::Rejected(rejected));
            }
        }
    }

    fn summary(self, elapsed: Duration, fetches: u64) -> Summary {
        Summary {
            elapsed,
            verified: self.verified,
            rejected: self.rejected,
            fetches,
            biggest_drop: self.biggest_drop,
            biggest_rise: self.biggest_rise,
        }
    }
}

/// Run the demo until `shutdown` or the end of `options.duration`, passing everything it has to
/// say to `show`, and return the summary (which `show` has also been given).
pub async fn run(
    options: &Options,
    shutdown: CancellationToken,
    mut show: impl FnMut(Output),
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("pagehook-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let secret = Secret::generate().context("cannot generate a secret")?;
    // The shop and the receiver outlive the daemon, which may still deliver while it drains.
    let servers = CancellationToken::new();
    let _servers_stop = servers.clone().drop_guard();

    let shop = Arc::new(Shop::new(catalogue()));
    let shop_listener = bind().await?;
    let shop_addr = shop_listener.local_addr()?;
    tokio::spawn(shop.clone().serve(shop_listener, servers.clone()));
    tokio::spawn(shop.clone().move_prices(options.tick, servers.clone()));

    let (events, mut received) = mpsc::channel(64);
    let receiver_listener = bind().await?;
    let receiver_url = format!("http://{}/hooks/pagehook", receiver_listener.local_addr()?);
    let receiver = receive::Options {
        secrets: vec![secret.clone()],
        tolerance_secs: DEFAULT_TOLERANCE_SECS,
        out: None,
    };
    tokio::spawn(receive::serve(
        receiver_listener,
        receiver,
        events,
        servers.clone(),
    ));

    // A loopback page comes back in milliseconds; the timeout only has to fit the period, which
    // the config loader would otherwise warn about.
    let period = options
        .schedule
        .parse::<Schedule>()
        .context("the demo's schedule")?
        .period();
    let timeout = period.min(Duration::from_secs(2));
    let path = dir.path().join("watchers.toml");
    let products = shop.products.lock().expect("shop lock").clone();
    // A free port, named in the config: the daemon binds it again at once.
    let admin = bind().await?.local_addr()?;
    let ends = Ends {
        shop: shop_addr,
        receiver: &receiver_url,
        admin,
    };
    let text = config_text(
        &ends,
        &secret,
        &dir.path().join("state"),
        &products,
        &options.schedule,
        timeout,
    );
    std::fs::write(&path, text).context("cannot write the demo's watchers.toml")?;
    let Loaded { config, warnings } = config::load(&path)
        .map_err(|err| anyhow::anyhow!("the demo's config is invalid:\n{err}"))?;
    if let Some(warning) = warnings.first() {
        anyhow::bail!("the demo's config draws a warning: {warning}");
    }

    show(Output::Intro {
        shop: format!("http://{shop_addr}/"),
        receiver: receiver_url,
        dashboard: format!("http://{admin}/"),
        watchers: config.watchers.len(),
        schedule: options.schedule.clone(),
        state_dir: dir.path().display().to_string(),
        duration: options.duration,
    });
    let stop = CancellationToken::new();
    let mut pagehook = tokio::spawn(daemon::run(config, path.clone(), stop.clone()));
    let deadline = options.duration.map(|d| started + d);
    let mut tally = Tally::default();
    let mut finished = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = until(deadline) => break,
            result = &mut pagehook => {
                finished = Some(result);
                break;
            }
            Some(request) = received.recv() => tally.record(request, &mut show),
        }
    }
    stop.cancel();
    // Keep reading while the daemon drains, so deliveries in flight are shown, not blocked.
    let result = match finished {
        Some(result) => result,
        None => loop {
            tokio::select! {
                result = &mut pagehook => break result,
                Some(request) = received.recv() => tally.record(request, &mut show),
            }
        },
    };
    result.context("the daemon panicked")??;
    while let Ok(request) = received.try_recv() {
        tally.record(request, &mut show);
    }
    servers.cancel();

    let summary = tally.summary(started.elapsed(), shop.fetches.load(Ordering::Relaxed));
    show(Output::Summary(summary.clone()));
    Ok(summary)
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn bind() -> anyhow::Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on a loopback port")
}

/// Where the demo's parts listen.
struct Ends<'a> {
    shop: SocketAddr,
    receiver: &'a str,
    /// The dashboard.
    admin: SocketAddr,
}

/// The watchers.toml the demo runs: one watcher per product, each tracking the title, the price
/// and the stock badge, as a user would write it for a real shop.
/// The secret is written inline: the file sits in a directory only this user can read, removed
/// on exit.
fn config_text(
    ends: &Ends<'_>,
    secret: &Secret,
    state_dir: &Path,
    products: &[Product],
    schedule: &str,
    timeout: Duration,
) -> String {
    let quoted = |text: &str| toml::Value::String(text.to_owned()).to_string();
    let mut text = format!(
        r#"# Generated by `pagehook demo`.
[daemon]
state_dir = {state_dir}
admin_listen = "{admin}"

[defaults]
schedule = {schedule}
jitter = "0s"
timeout = "{timeout}"
webhook = "demo"

[webhooks.demo]
url = {receiver_url}
secret = {secret}
retry = ["1s", "2s", "5s"]
"#,
        state_dir = quoted(&state_dir.display().to_string()),
        schedule = quoted(schedule),
        timeout = humantime::format_duration(timeout),
        admin = ends.admin,
        receiver_url = quoted(ends.receiver),
        secret = quoted(&secret.to_whsec()),
    );
    for product in products {
        text.push_str(&format!(
            r#"
[[watchers]]
name = "{slug}"
url = "http://{shop}/products/{slug}"
fields.title = {{ css = "h1.product-title" }}
fields.price = {{ type = "price" }}
fields.stock = {{ css = "div.buy-box .stock-badge" }}
"#,
            shop = ends.shop,
            slug = product.slug,
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::shop::{product_page, step};
    use super::*;
    use crate::config::ProcessEnv;
    use serde_json::json;

    fn dec(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn money_groups_thousands_and_keeps_cents() {
        assert_eq!(money(dec("1249")), "$1,249.00");
        assert_eq!(money(dec("39.95")), "$39.95");
        assert_eq!(money(dec("1234567.5")), "$1,234,567.50");
        assert_eq!(money(dec("0")), "$0.00");
        assert_eq!(money(dec("-12.345")), "-$12.35");
    }

    #[test]
    fn pct_change_is_relative_to_the_old_price() {
        assert_eq!(pct_change(dec("200"), dec("190")), Some(dec("-5.0")));
        assert_eq!(pct_change(dec("39.95"), dec("42.35")), Some(dec("6.0")));
        assert_eq!(pct_change(dec("3"), dec("4")), Some(dec("33.3")));
        assert_eq!(pct_change(dec("0"), dec("4")), None);
    }

    #[test]
    fn the_generated_config_loads_and_its_selectors_read_the_shop_pages() {
        let dir = tempfile::tempdir().unwrap();
        let products = catalogue();
        let secret = Secret::from_bytes(vec![1; 32]);
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let ends = Ends {
            shop: addr,
            receiver: "http://127.0.0.1:4001/hooks/pagehook",
            admin: "127.0.0.1:9480".parse().unwrap(),
        };
        let text = config_text(
            &ends,
            &secret,
            &dir.path().join("state dir \"quoted\""),
            &products,
            "every 2s",
            Duration::from_secs(2),
        );
        let path = dir.path().join("watchers.toml");
        let loaded = config::parse(&text, &path, &ProcessEnv).unwrap_or_else(|e| panic!("{e}"));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let config = loaded.config;
        assert_eq!(config.watchers.len(), products.len());
        assert!(config.state_dir.ends_with("state dir \"quoted\""));
        assert_eq!(
            config.webhooks["demo"].secrets[0].to_whsec(),
            secret.to_whsec()
        );

        let mut tent = products[4].clone();
        let watcher = config.watcher(tent.slug).unwrap();
        assert_eq!(
            watcher.url.expose().as_str(),
            "http://127.0.0.1:4000/products/ultralight-tent"
        );
        let values = crate::extract::extract(&watcher.fields, &product_page(&tent)).unwrap();
        assert_eq!(values["title"], "Ultralight 2P Tent");
        assert_eq!(
            values["price"]["amount"], "1249.00",
            "found in the JSON-LD offer"
        );
        assert_eq!(values["price"]["currency"], "USD");
        assert_eq!(values["stock"], "Only 3 left");
        tent.stock = 0;
        let values = crate::extract::extract(&watcher.fields, &product_page(&tent)).unwrap();
        assert_eq!(values["stock"], "Out of stock");
    }

    #[test]
    fn the_page_carries_a_json_ld_offer_matching_the_visible_price() {
        let page = product_page(&catalogue()[3]);
        let start = page.find("application/ld+json\">").unwrap() + "application/ld+json\">".len();
        let end = start + page[start..].find("</script>").unwrap();
        let offer: Value = serde_json::from_str(&page[start..end]).unwrap();
        assert_eq!(offer["@type"], "Product");
        assert_eq!(offer["offers"]["price"], "39.95");
        assert_eq!(offer["offers"]["priceCurrency"], "USD");
        assert_eq!(
            offer["offers"]["availability"],
            "https://schema.org/InStock"
        );
        assert!(page.contains("<span class=\"price\">$39.95</span>"));
    }

    #[test]
    fn every_step_moves_the_price_and_keeps_it_near_the_list_price() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut product = catalogue()[3].clone();
        for _ in 0..1000 {
            let before = product.price;
            step(&mut product, &mut rng);
            assert_ne!(product.price, before);
            assert_eq!(product.price, product.price.round_dp(2));
            assert!(
                product.price > product.list / Decimal::TWO
                    && product.price < product.list * Decimal::TWO,
                "{} drifted from {}",
                product.price,
                product.list
            );
        }
    }

    #[test]
    fn an_event_becomes_one_line_with_the_move_in_percent() {
        let event = json!({
            "type": "watch.changed",
            "data": {
                "watcher": "burr-grinder", "seq": 2,
                "changes": {
                    "price": {"old": "249", "new": "236.55"},
                    "stock": {"old": "In stock (9 available)", "new": "In stock (7 available)"}
                },
                "values": {"title": "Burr Espresso Grinder", "price": "236.55",
                           "stock": "In stock (7 available)"}
            }
        });
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let line = EventLine::from_event(&event, at).unwrap();
        assert_eq!(line.price_move.unwrap().pct, Some(dec("-5.0")));
        assert_eq!(
            line.to_string(),
            "22:13:20  Burr Espresso Grinder     $249.00 -> $236.55  -5.0%         In stock (9 available) -> In stock (7 available)"
        );

        // A stock-only change, with a price object as `type = "price"` will send it.
        let event = json!({
            "type": "watch.changed",
            "data": {
                "watcher": "headlamp-400",
                "changes": {"stock": {"old": "Only 1 left", "new": "Out of stock"}},
                "values": {"price": {"amount": "39.95", "currency": "USD"}, "stock": "Out of stock"}
            }
        });
        let line = EventLine::from_event(&event, at).unwrap();
        assert_eq!(
            line.to_string(),
            "22:13:20  headlamp-400              $39.95                            Only 1 left -> Out of stock"
        );
    }

    #[test]
    fn the_tally_keeps_the_biggest_moves_each_way() {
        let mut tally = Tally::default();
        let mut shown = Vec::new();
        let event = |product: &str, old: &str, new: &str| {
            Received::Verified(receive::Verified {
                id: "evt_1".into(),
                received_at: Utc::now(),
                event: json!({"type": "watch.changed", "data": {"watcher": product,
                    "changes": {"price": {"old": old, "new": new}}, "values": {}}}),
            })
        };
        for (product, old, new) in [
            ("a", "100", "95"),
            ("b", "100", "88"),
            ("c", "100", "103"),
            ("d", "100", "91"),
            ("e", "100", "110"),
        ] {
            tally.record(event(product, old, new), &mut |o| shown.push(o));
        }
        let summary = tally.summary(Duration::from_secs(30), 12);
        assert_eq!(shown.len(), 5);
        assert_eq!(summary.verified, 5);
        assert_eq!(summary.biggest_drop.unwrap().0, "b");
        assert_eq!(summary.biggest_rise.unwrap().0, "e");
    }
}
