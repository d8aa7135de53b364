//! `cargo bench --bench fetch [-- N...]` (or PAGEHOOK_BENCH_N=1000,10000): one `pagehook once`
//! pass of the real binary over N watchers of a loopback shop with N product pages of about
//! 150 KB, in four scenarios: first pass, 10 % of prices changed, unchanged with ETags and
//! unchanged without. Prints wall time, pages/s, CPU seconds and peak RSS of the pagehook child.
//! `PAGEHOOK_BENCH_BIN` runs another pagehook binary (an older build) on the same shop.

#[path = "support/cpu.rs"]
mod cpu;
mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use cpu::children_cpu;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The shop: page i's price moves when `versions[i]` does; ETags on or off for the whole shop.
struct Shop {
    versions: Vec<AtomicU32>,
    etags: AtomicBool,
    parts: Parts,
}

/// The parts of a page that are the same on every page (most of a real product page is), and
/// a few variants of the related-products block so pages are not all alike.
struct Parts {
    head: String,
    nav: String,
    related: Vec<String>,
    footer: String,
}

fn price_cents(i: usize, version: u32) -> u64 {
    1_000 + (i as u64 * 7_919) % 90_000 + version as u64 * 100
}

fn money(cents: u64) -> String {
    let dollars = cents / 100;
    let grouped = if dollars >= 1_000 {
        format!("{},{:03}", dollars / 1_000, dollars % 1_000)
    } else {
        dollars.to_string()
    };
    format!("${grouped}.{:02}", cents % 100)
}

impl Parts {
    fn new() -> Parts {
        let mut head = String::from(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <link rel=\"stylesheet\" href=\"/static/app.css\"><style>",
        );
        for i in 0..300 {
            let _ = writeln!(
                head,
                ".c{i}{{margin:{}px;padding:{}px;color:#{:06x};display:flex;align-items:center}}",
                i % 17,
                i % 11,
                i * 2_654_435 % 0xffffff
            );
        }
        head.push_str("</style><script>window.__STATE__=");
        head.push_str("{\"experiments\":[");
        for i in 0..500 {
            let _ = write!(
                head,
                "{{\"id\":\"exp-{i}\",\"variant\":\"{}\",\"weight\":{}}},",
                ["control", "a", "b"][i % 3],
                i % 100
            );
        }
        head.push_str("{}]};</script><script>");
        for i in 0..350 {
            let _ = writeln!(
                head,
                "function track{i}(e){{if(!e||!e.target)return;var d=e.target.dataset||{{}};\
                 window.dataLayer=window.dataLayer||[];window.dataLayer.push({{event:'t{i}',id:d.id}});}}"
            );
        }
        head.push_str("</script>");

        let mut nav = String::from("<header><nav class=\"mega\"><ul>");
        for i in 0..60 {
            let _ = write!(
                nav,
                "<li class=\"top c{i}\"><a href=\"/c/{i}\">Category {i}</a><ul>"
            );
            for j in 0..8 {
                let _ = write!(
                    nav,
                    "<li><a href=\"/c/{i}/{j}\">Subcategory {i}.{j}</a></li>"
                );
            }
            nav.push_str("</ul></li>");
        }
        nav.push_str("</ul><form class=\"search\"><input name=\"q\"></form>\
                      <a class=\"cart\" href=\"/cart\"><span class=\"price\">$0.00</span></a></nav></header>");

        let related = (0..8)
            .map(|variant| {
                let mut block = String::from("<section class=\"related\"><h2>You may also like</h2>");
                for k in 0..48 {
                    let other = variant * 97 + k * 13;
                    let _ = write!(
                        block,
                        "<article class=\"card c{k}\" data-id=\"{other}\"><a href=\"/p/{other}\">\
                         <img src=\"/img/{other}.jpg\" alt=\"Product {other}\" loading=\"lazy\" width=\"240\" height=\"240\">\
                         <h3 class=\"card-title\">Product {other} with a longer marketing name</h3></a>\
                         <div class=\"rating\" aria-label=\"4.5 stars\">★★★★☆ <span>({} reviews)</span></div>\
                         <span class=\"card-price\">{}</span><button class=\"add\" onclick=\"track{k}(event)\">Add to cart</button></article>",
                        other % 500,
                        money(price_cents(other, 0))
                    );
                }
                block.push_str("</section>");
                block
            })
            .collect();

        let mut footer = String::from("<footer><div class=\"cols\">");
        for i in 0..40 {
            let _ = write!(
                footer,
                "<div class=\"col\"><h4>Help {i}</h4><p>Shipping, returns and warranty information for region {i}. \
                                    Orders ship within two business days.</p></div>"
            );
        }
        footer.push_str("</div><p class=\"legal\">© 2026 Example Shop</p></footer></body></html>");
        Parts {
            head,
            nav,
            related,
            footer,
        }
    }

    fn page(&self, i: usize, version: u32) -> Vec<u8> {
        let price = money(price_cents(i, version));
        let amount = format!("{:.2}", price_cents(i, version) as f64 / 100.0);
        let mut page = String::with_capacity(160 * 1024);
        page.push_str(&self.head);
        let _ = write!(
            page,
            "<title>Product {i} | Example Shop</title>\
             <script type=\"application/ld+json\">{{\"@context\":\"https://schema.org\",\"@type\":\"Product\",\
             \"name\":\"Product {i}\",\"sku\":\"SKU-{i:06}\",\"brand\":{{\"@type\":\"Brand\",\"name\":\"Acme\"}},\
             \"offers\":{{\"@type\":\"Offer\",\"price\":\"{amount}\",\"priceCurrency\":\"USD\",\
             \"availability\":\"https://schema.org/InStock\"}}}}</script></head><body>"
        );
        page.push_str(&self.nav);
        let _ = write!(
            page,
            "<main><nav class=\"crumbs\"><a href=\"/\">Home</a> › <a href=\"/c/{}\">Category</a></nav>\
             <div class=\"product-main\"><h1 class=\"title\">Product {i}</h1>\
             <div class=\"buy\"><span class=\"price\">{price}</span><p class=\"stock\">In stock</p></div>\
             <div class=\"description\"><p>Product {i} is built to last, with a two-year warranty.</p></div></div></main>",
            i % 60
        );
        page.push_str(&self.related[i % self.related.len()]);
        page.push_str(&self.footer);
        page.into_bytes()
    }
}

async fn product(
    State(shop): State<Arc<Shop>>,
    UrlPath(i): UrlPath<usize>,
    headers: HeaderMap,
) -> Response {
    let Some(version) = shop.versions.get(i).map(|v| v.load(Ordering::Relaxed)) else {
        return Response::builder().status(404).body(Body::empty()).unwrap();
    };
    let etag = format!("\"p{i}-v{version}\"");
    let etags = shop.etags.load(Ordering::Relaxed);
    let builder = Response::builder().header(header::CONTENT_TYPE, "text/html; charset=utf-8");
    if !etags {
        return builder
            .body(Body::from(shop.parts.page(i, version)))
            .unwrap();
    }
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .header(header::ETAG, etag)
            .body(Body::empty())
            .unwrap();
    }
    builder
        .header(header::ETAG, etag)
        .body(Body::from(shop.parts.page(i, version)))
        .unwrap()
}

async fn serve(shop: Arc<Shop>) -> SocketAddr {
    let router = Router::new()
        .route("/p/{i}", get(product))
        .route("/hooks", post(|| async { StatusCode::NO_CONTENT }))
        .with_state(shop);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn write_config(dir: &Path, addr: SocketAddr, n: usize) -> PathBuf {
    let mut text = format!(
        "[daemon]\nstate_dir = \"{}\"\n\n\
         [defaults]\nschedule = \"every 15m\"\n# One host serves every page here, so it may take as much as pagehook sends.\n\
         per_host_concurrency = 32\n\n\
         [webhooks.bench]\nurl = \"http://{addr}/hooks\"\nsecret = \"{SECRET}\"\n\n",
        dir.join("state").display()
    );
    for i in 0..n {
        let _ = write!(
            text,
            "[[watchers]]\nname = \"p{i:05}\"\nurl = \"http://{addr}/p/{i}\"\n\
             fields.price = {{ css = \"div.product-main .buy span.price\", type = \"number\" }}\n\n"
        );
    }
    let path = dir.join("watchers.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Pass {
    wall: Duration,
    cpu: f64,
    peak_rss_mib: f64,
    summary: String,
}

async fn once(config: &Path) -> Pass {
    let cpu_before = children_cpu();
    let started = Instant::now();
    // PAGEHOOK_BENCH_WRAPPER="perf record -g -o /tmp/perf-{pass}.data" profiles each pass
    // (the figures then include the profiler).
    static PASS: AtomicU32 = AtomicU32::new(0);
    let pass = PASS.fetch_add(1, Ordering::Relaxed).to_string();
    let wrapper = std::env::var("PAGEHOOK_BENCH_WRAPPER")
        .unwrap_or_default()
        .replace("{pass}", &pass);
    // PAGEHOOK_BENCH_BIN=/path/to/an/older/pagehook measures another build beside this one.
    let binary = std::env::var("PAGEHOOK_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_pagehook").to_owned());
    let mut words = wrapper.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut command = tokio::process::Command::new(program);
            command.args(words).arg(&binary);
            command
        }
        None => tokio::process::Command::new(&binary),
    };
    let mut child = command
        .arg("-c")
        .arg(config)
        .arg("once")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = tokio::spawn(async move {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut text)
            .await
            .unwrap();
        text
    });
    // VmHWM is a high-water mark: the last reading before exit holds the peak.
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = vm_hwm_kib(pid) {
            peak = peak.max(kib);
        }
        tokio::select! {
            status = child.wait() => break status.unwrap(),
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    };
    let wall = started.elapsed();
    let summary = reader.await.unwrap().trim().to_owned();
    assert!(status.success(), "pagehook once failed: {summary}");
    Pass {
        wall,
        cpu: children_cpu() - cpu_before,
        peak_rss_mib: peak as f64 / 1024.0,
        summary,
    }
}

fn report(name: &str, n: usize, pass: &Pass) {
    let secs = pass.wall.as_secs_f64();
    println!(
        "  {name:<26} wall {secs:>6.2} s  {:>7.0} pages/s  cpu {:>6.2} s  peak RSS {:>5.1} MiB   [{}]",
        n as f64 / secs,
        pass.cpu,
        pass.peak_rss_mib,
        pass.summary
    );
}

/// What the shop alone serves per second: full pages and 304s, to a client in this process
/// (so the figures are lower bounds: the client shares the cores).
async fn fixture_alone(addr: SocketAddr, shop: &Shop, n: usize) -> (f64, f64) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut rates = [0.0; 2];
    for (k, conditional) in [false, true].into_iter().enumerate() {
        shop.etags.store(true, Ordering::Relaxed);
        let started = Instant::now();
        let total = n.min(4_000);
        let mut tasks = tokio::task::JoinSet::new();
        let per = total / 64;
        for w in 0..64 {
            let client = client.clone();
            let versions: Vec<u32> = (0..per)
                .map(|j| shop.versions[(w * per + j) % n].load(Ordering::Relaxed))
                .collect();
            tasks.spawn(async move {
                for (j, version) in versions.into_iter().enumerate() {
                    let i = (w * per + j) % n;
                    let mut req = client.get(format!("http://{addr}/p/{i}"));
                    if conditional {
                        req = req.header("if-none-match", format!("\"p{i}-v{version}\""));
                    }
                    let body = req.send().await.unwrap().bytes().await.unwrap();
                    assert!(conditional || body.len() > 100_000);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        rates[k] = (per * 64) as f64 / started.elapsed().as_secs_f64();
    }
    (rates[0], rates[1])
}

async fn run(n: usize) {
    let shop = Arc::new(Shop {
        versions: (0..n).map(|_| AtomicU32::new(0)).collect(),
        etags: AtomicBool::new(true),
        parts: Parts::new(),
    });
    let addr = serve(shop.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), addr, n);
    let page_kib = shop.parts.page(0, 0).len() as f64 / 1024.0;
    println!(
        "N = {n} watchers, pages of {page_kib:.0} KiB, one host (per_host_concurrency = 32, max_concurrency = 32, the default)"
    );

    let first = once(&config).await;
    report("first pass", n, &first);

    for (i, version) in shop.versions.iter().enumerate() {
        if i % 10 == 0 {
            version.fetch_add(1, Ordering::Relaxed);
        }
    }
    let changed = once(&config).await;
    report("10% changed (ETags)", n, &changed);

    let unchanged = once(&config).await;
    report("unchanged, ETags", n, &unchanged);

    shop.etags.store(false, Ordering::Relaxed);
    let no_etags = once(&config).await;
    report("unchanged, no ETags", n, &no_etags);

    for (i, version) in shop.versions.iter().enumerate() {
        if i % 10 == 5 {
            version.fetch_add(1, Ordering::Relaxed);
        }
    }
    let changed_no_etags = once(&config).await;
    report("10% changed, no ETags", n, &changed_no_etags);

    let (full, not_modified) = fixture_alone(addr, &shop, n).await;
    println!(
        "  fixture alone (client in-process): {full:.0} full pages/s, {not_modified:.0} 304s/s"
    );
}

fn main() {
    let sizes = support::sizes("1000,10000");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in sizes {
        runtime.block_on(run(n));
    }
}
