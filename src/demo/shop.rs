//! The demo's embedded shop: a catalogue whose prices and stock move, served as product
//! pages shaped like a real shop's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use rust_decimal::Decimal;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Rounded to cents the way shops round: half a cent goes up.
pub(super) fn cents(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

/// US dollars as a shop shows them: `$1,249.00`.
pub(super) fn money(amount: Decimal) -> String {
    let cents = format!("{:.2}", cents(amount.abs()));
    let (whole, fraction) = cents.split_once('.').unwrap_or((&cents, "00"));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if amount.is_sign_negative() && !amount.is_zero() {
        "-"
    } else {
        ""
    };
    format!("{sign}${grouped}.{fraction}")
}

#[derive(Debug, Clone)]
pub(super) struct Product {
    pub(super) slug: &'static str,
    pub(super) name: &'static str,
    pub(super) category: &'static str,
    pub(super) sku: &'static str,
    pub(super) blurb: &'static str,
    /// The list price: moves are pulled back toward it so a long demo does not drift.
    pub(super) list: Decimal,
    pub(super) price: Decimal,
    pub(super) stock: u32,
}

pub(super) fn catalogue() -> Vec<Product> {
    let product = |slug, name, category, sku, blurb, cents: i64, stock| Product {
        slug,
        name,
        category,
        sku,
        blurb,
        list: Decimal::new(cents, 2),
        price: Decimal::new(cents, 2),
        stock,
    };
    vec![
        product(
            "trail-runner-3",
            "Trail Runner 3",
            "Footwear",
            "NW-TR3-42",
            "A light trail shoe with a rock plate and a grippy outsole.",
            12900,
            24,
        ),
        product(
            "burr-grinder",
            "Burr Espresso Grinder",
            "Kitchen",
            "NW-BG-01",
            "Conical steel burrs, 40 grind settings, fine enough for espresso.",
            24900,
            9,
        ),
        product(
            "merino-hoodie",
            "Merino Wool Hoodie",
            "Apparel",
            "NW-MH-M",
            "Soft 250 g/m2 merino that stays warm when it is wet.",
            8900,
            31,
        ),
        product(
            "headlamp-400",
            "Headlamp 400",
            "Gear",
            "NW-HL-400",
            "400 lumens, red night mode, USB-C charging.",
            3995,
            5,
        ),
        product(
            "ultralight-tent",
            "Ultralight 2P Tent",
            "Gear",
            "NW-UT-2P",
            "A two-person tent at 1.1 kg, pitched with trekking poles.",
            124900,
            3,
        ),
    ]
}

/// One product's move: its price by 2-12% either way, and half the time its stock (a few sold,
/// or an empty shelf refilled).
pub(super) fn step(product: &mut Product, rng: &mut fastrand::Rng) {
    let pct = Decimal::from(rng.u32(2..=12));
    let drifted_up = product.price > product.list * Decimal::new(13, 1);
    let drifted_down = product.price < product.list * Decimal::new(7, 1);
    let down = drifted_up || (!drifted_down && rng.bool());
    let factor = if down {
        Decimal::ONE_HUNDRED - pct
    } else {
        Decimal::ONE_HUNDRED + pct
    } / Decimal::ONE_HUNDRED;
    product.price = cents(product.price * factor);
    if rng.bool() {
        product.stock = match product.stock {
            0 => rng.u32(8..=40),
            n => n - n.min(rng.u32(1..=4)),
        };
    }
}

/// The stock badge: its CSS class, its text, and the schema.org availability behind it.
pub(super) fn stock_badge(stock: u32) -> (&'static str, String, &'static str) {
    match stock {
        0 => ("out-of-stock", "Out of stock".into(), "OutOfStock"),
        1..=3 => (
            "low-stock",
            format!("Only {stock} left"),
            "LimitedAvailability",
        ),
        n => ("in-stock", format!("In stock ({n} available)"), "InStock"),
    }
}

pub(super) const SHOP_NAME: &str = "Northwind Outfitters";

/// A product page shaped like a real one: a cart total that is also a `span.price`, the price
/// and stock badge in a buy box, and a schema.org JSON-LD block with the same offer.
pub(super) fn product_page(p: &Product) -> String {
    let (class, badge, availability) = stock_badge(p.stock);
    let json_ld = json!({
        "@context": "https://schema.org",
        "@type": "Product",
        "name": p.name,
        "sku": p.sku,
        "description": p.blurb,
        "offers": {
            "@type": "Offer",
            "price": format!("{:.2}", p.price),
            "priceCurrency": "USD",
            "availability": format!("https://schema.org/{availability}"),
        },
    });
    let disabled = if p.stock == 0 { " disabled" } else { "" };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{name} | {SHOP_NAME}</title>
  <meta property="og:title" content="{name}">
  <script type="application/ld+json">{json_ld}</script>
</head>
<body>
  <header>
    <a class="logo" href="/">{SHOP_NAME}</a>
    <a class="cart" href="/cart">Cart: <span class="price">$0.00</span></a>
  </header>
  <main class="product">
    <nav class="breadcrumb"><a href="/">Home</a> / {category}</nav>
    <h1 class="product-title">{name}</h1>
    <p class="sku">SKU {sku}</p>
    <div class="buy-box">
      <span class="price">{price}</span>
      <span class="stock-badge {class}">{badge}</span>
      <button type="submit"{disabled}>Add to cart</button>
    </div>
    <section class="description"><p>{blurb}</p></section>
  </main>
  <footer>Prices in US dollars. This shop exists only while `pagehook demo` runs.</footer>
</body>
</html>
"#,
        name = p.name,
        category = p.category,
        sku = p.sku,
        blurb = p.blurb,
        price = money(p.price),
    )
}

pub(super) fn index_page(products: &[Product]) -> String {
    let items: String = products
        .iter()
        .map(|p| {
            let (class, badge, _) = stock_badge(p.stock);
            format!(
                "    <li><a href=\"/products/{}\">{}</a> <span class=\"price\">{}</span> <span class=\"stock-badge {class}\">{badge}</span></li>\n",
                p.slug,
                p.name,
                money(p.price)
            )
        })
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{SHOP_NAME}</title></head>\n<body>\n  <h1>{SHOP_NAME}</h1>\n  <ul class=\"products\">\n{items}  </ul>\n</body>\n</html>\n"
    )
}

/// The embedded shop: its catalogue and how many product pages it has served.
pub(super) struct Shop {
    // A std mutex: held to read or move a product, never across an await.
    pub(super) products: Mutex<Vec<Product>>,
    pub(super) fetches: AtomicU64,
}

impl Shop {
    pub(super) fn new(products: Vec<Product>) -> Self {
        Shop {
            products: Mutex::new(products),
            fetches: AtomicU64::new(0),
        }
    }

    pub(super) async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        let router = Router::new()
            .route("/", get(index))
            .route("/products/{slug}", get(product))
            .with_state(self);
        // A failed accept loop ends the shop; pagehook then reports failed checks, as it would
        // for a real shop that went away.
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    }

    /// Move the products in turn, one per tick, starting from a random one.
    pub(super) async fn move_prices(self: Arc<Self>, tick: Duration, shutdown: CancellationToken) {
        let mut rng = fastrand::Rng::new();
        let mut turn = rng.usize(..);
        let mut ticks = tokio::time::interval_at(Instant::now() + tick, tick);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {
                    let mut products = self.products.lock().expect("shop lock");
                    let count = products.len();
                    step(&mut products[turn % count], &mut rng);
                    turn = turn.wrapping_add(1);
                }
            }
        }
    }
}

pub(super) async fn index(State(shop): State<Arc<Shop>>) -> Html<String> {
    Html(index_page(&shop.products.lock().expect("shop lock")))
}

pub(super) async fn product(
    State(shop): State<Arc<Shop>>,
    UrlPath(slug): UrlPath<String>,
) -> Response {
    let page = {
        let products = shop.products.lock().expect("shop lock");
        products.iter().find(|p| p.slug == slug).map(product_page)
    };
    match page {
        Some(page) => {
            shop.fetches.fetch_add(1, Ordering::Relaxed);
            // Shops ask caches to revalidate prices; pagehook must not be served a stale one.
            ([(header::CACHE_CONTROL, "no-cache")], Html(page)).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such product").into_response(),
    }
}
