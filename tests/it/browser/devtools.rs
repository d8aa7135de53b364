//! The DevTools driver the dashboard's tests use: a page read, typed into, screenshotted, and
//! its complaints collected, in a real browser.

use pagehook::fetch::browser::devtools::DevTools;

use super::*;

const DASHBOARD: &str = r#"<!doctype html><html><head><title>Watchers</title></head><body>
<input id="filter" placeholder="filter">
<ul id="watchers"><li>espresso machine</li><li>espresso beans</li><li>kettle</li></ul>
<script>
const filter = document.getElementById('filter');
filter.addEventListener('input', () => {
  for (const li of document.querySelectorAll('#watchers li')) {
    li.hidden = !li.textContent.includes(filter.value);
  }
});
</script></body></html>"#;

const THROWS: &str = r#"<!doctype html><html><head><link rel="stylesheet" href="/missing.css">
</head><body><p>chart</p>
<script>throw new Error('the chart failed');</script></body></html>"#;

const INLINE: &str = r#"<!doctype html><html><head><title>before</title></head><body>
<script>document.title = 'inline ran';</script></body></html>"#;

/// The dashboard, a page whose script throws and whose stylesheet is missing, and one whose
/// inline script its CSP refuses.
async fn serve() -> SocketAddr {
    let router = Router::new()
        .route("/", get(|| async { Html(DASHBOARD) }))
        .route("/throws", get(|| async { Html(THROWS) }))
        .route(
            "/csp",
            get(|| async {
                (
                    [(header::CONTENT_SECURITY_POLICY, "script-src 'self'")],
                    Html(INLINE),
                )
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

async fn start(test: &str) -> Option<DevTools> {
    browser_source(test)?;
    Some(DevTools::start().await.unwrap())
}

/// Close the browser and check that nothing of it is left.
async fn close(devtools: DevTools) {
    let group = devtools.process_group().unwrap();
    devtools.close().await;
    assert_gone(group).await;
}

#[tokio::test]
async fn the_dashboard_filters_as_one_types_and_complains_of_nothing() {
    let Some(devtools) = start("devtools_dashboard").await else {
        return;
    };
    let addr = serve().await;
    let tab = devtools
        .open(url(addr, "/").as_str(), (1024, 700))
        .await
        .unwrap();
    let shown =
        "[...document.querySelectorAll('#watchers li:not([hidden])')].map(li => li.textContent)";
    assert_eq!(
        tab.eval(shown).await.unwrap(),
        serde_json::json!(["espresso machine", "espresso beans", "kettle"])
    );
    assert_eq!(tab.eval("innerWidth").await.unwrap(), 1024);

    tab.type_into("#filter", "espresso").await.unwrap();
    let filtered = format!("{shown}.length === 2");
    tab.wait_for(&filtered, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        tab.eval(shown).await.unwrap(),
        serde_json::json!(["espresso machine", "espresso beans"])
    );
    assert_eq!(
        tab.eval("document.getElementById('filter').value")
            .await
            .unwrap(),
        "espresso"
    );
    assert_eq!(tab.problems(), Vec::<String>::new());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard.png");
    tab.screenshot(&path).await.unwrap();
    let png = std::fs::read(&path).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 2000, "a {} byte PNG shows nothing", png.len());
    // The IHDR chunk's width: the viewport's.
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 1024);

    drop(tab);
    close(devtools).await;
}

#[tokio::test]
async fn problems_name_an_uncaught_exception_and_a_csp_violation() {
    let Some(devtools) = start("devtools_problems").await else {
        return;
    };
    let addr = serve().await;
    let throws = devtools
        .open(url(addr, "/throws").as_str(), (800, 600))
        .await
        .unwrap();
    let problems = throws.problems();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("uncaught exception: Error: the chart failed")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("network error: Failed to load resource")
                && p.contains("/missing.css")),
        "{problems:?}"
    );
    let err = throws.eval("null.boom").await.unwrap_err();
    assert!(err.starts_with("TypeError"), "{err}");

    let csp = devtools
        .open(url(addr, "/csp").as_str(), (800, 600))
        .await
        .unwrap();
    assert_eq!(csp.eval("document.title").await.unwrap(), "before");
    let problems = csp.problems();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("Content Security Policy")),
        "{problems:?}"
    );

    let err = devtools
        .open(closed_port().await.as_str(), (800, 600))
        .await
        .err()
        .unwrap();
    assert!(err.contains("ERR_CONNECTION_REFUSED"), "{err}");
    drop((throws, csp));
    close(devtools).await;
}
