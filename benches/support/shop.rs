//! A loopback shop of many hosts (127.1.0.1 to 127.1.0.250, one listener each, all serving the
//! same small product pages), for the benches that run many watchers: per-host politeness and
//! sharding by host then see many hosts, as they would on the web.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub const HOSTS: usize = 250;

/// Which pages have been fetched, how many distinct ones, and how many fetches in all.
pub struct Shop {
    seen: Vec<AtomicBool>,
    pub distinct: AtomicUsize,
    pub fetches: AtomicUsize,
}

impl Shop {
    /// A shop of `pages` product pages, `/p/0` to `/p/{pages - 1}`.
    pub fn new(pages: usize) -> Arc<Shop> {
        Arc::new(Shop {
            seen: (0..pages).map(|_| AtomicBool::new(false)).collect(),
            distinct: AtomicUsize::new(0),
            fetches: AtomicUsize::new(0),
        })
    }
}

async fn product(State(shop): State<Arc<Shop>>, UrlPath(i): UrlPath<usize>) -> Response {
    let Some(seen) = shop.seen.get(i) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    shop.fetches.fetch_add(1, Ordering::Relaxed);
    if !seen.swap(true, Ordering::Relaxed) {
        shop.distinct.fetch_add(1, Ordering::Relaxed);
    }
    let cents = 1_000 + (i as u64 * 7_919) % 90_000;
    let mut page = String::with_capacity(2048);
    let _ = write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Product {i}</title></head><body>\
         <nav><a href=\"/\">Home</a> <a href=\"/c/{}\">Category</a></nav>\
         <main><h1 class=\"title\">Product {i}</h1><span class=\"sku\">SKU-{i:06}</span>\
         <div class=\"buy\"><span class=\"price\">${}.{:02}</span><p class=\"stock\">In stock</p></div>\
         <p>Product {i} is built to last, with a two-year warranty and free returns.</p></main>\
         <footer>© 2026 Example Shop</footer></body></html>",
        i % 60,
        cents / 100,
        cents % 100
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

/// One listener per host address, all serving `shop`; `/hooks` answers webhooks with 204.
pub async fn serve(shop: Arc<Shop>) -> Vec<SocketAddr> {
    let router = Router::new()
        .route("/p/{i}", get(product))
        .route("/hooks", post(|| async { StatusCode::NO_CONTENT }))
        .with_state(shop);
    let mut addrs = Vec::new();
    for host in 1..=HOSTS {
        let ip = Ipv4Addr::new(127, 1, 0, host as u8);
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        addrs.push(listener.local_addr().unwrap());
        let router = router.clone();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    }
    addrs
}
