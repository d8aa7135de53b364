//! The browser's life: missing, at an endpoint, and nothing left behind when pagehook is killed.

use super::*;

#[tokio::test]
async fn a_missing_browser_fails_at_once_with_a_clear_reason() {
    let browser = Browser::new(BrowserConfig {
        source: Source::Executable("/nonexistent/chromium".into()),
        max_tabs: 1,
        ..BrowserConfig::default()
    });
    let options = HttpOptions::default();
    let page_url = Url::parse("http://127.0.0.1:9/").unwrap();
    let err = browser
        .render(&request(&page_url, &options, Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::Browser);
    assert!(err.to_string().contains("/nonexistent/chromium"), "{err}");
}

#[tokio::test]
async fn an_endpoint_that_never_answers_fails_within_the_timeout() {
    // One accepts the connection and says nothing; one completes the WebSocket handshake and
    // then says nothing.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let mute = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mute_addr = mute.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = mute.accept().await {
            if let Ok(ws) = tokio_tungstenite::accept_async(socket).await {
                held.push(ws);
            }
        }
    });
    let options = HttpOptions::default();
    let page_url = Url::parse("http://127.0.0.1:9/").unwrap();
    for addr in [silent_addr, mute_addr] {
        let endpoint = Url::parse(&format!("ws://{addr}/devtools/browser/x")).unwrap();
        let browser = Browser::new(BrowserConfig {
            source: Source::Endpoint(endpoint),
            max_tabs: 1,
            ..BrowserConfig::default()
        });
        let start = Instant::now();
        let err = browser
            .render(&request(&page_url, &options, Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert_within(start, Duration::from_secs(3));
        assert_eq!(err.reason(), Reason::Browser, "{err}");
        assert!(
            err.to_string().contains("did not answer within 1s"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_running_browser_is_used_through_its_endpoint() {
    use tokio::io::AsyncBufReadExt;
    if browser_source("endpoint").is_none() {
        return;
    }
    let executable = discover().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let mut chromium = tokio::process::Command::new(&executable)
        .args(["--headless", "--remote-debugging-port=0", "--no-sandbox"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let group = chromium.id().unwrap();
    let mut lines = tokio::io::BufReader::new(chromium.stderr.take().unwrap()).lines();
    let endpoint = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("DevTools listening line");
        if let Some(ws) = line.strip_prefix("DevTools listening on ") {
            break Url::parse(ws.trim()).unwrap();
        }
    };
    let browser = Browser::new(BrowserConfig {
        source: Source::Endpoint(endpoint),
        max_tabs: 2,
        ..BrowserConfig::default()
    });
    let (_shop, addr) = Shop::start().await;
    let options = HttpOptions::default();
    let spa = url(addr, "/spa");
    let page = browser
        .render(&request(&spa, &options, Duration::from_secs(20)))
        .await
        .unwrap();
    assert!(page.html.contains("$19.99"));
    // pagehook leaves a browser it did not start running.
    browser.close().await;
    assert!(!live_processes(group).is_empty());
    rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(group as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    chromium.wait().await.unwrap();
    assert_gone(group).await;
}

/// Run as its own process by the test below: start a browser, report its group, and wait to
/// be killed.
#[tokio::test]
#[ignore = "a helper process of browser::lifecycle::a_killed_pagehook_leaves_no_browser_behind"]
async fn helper_hold_a_browser_until_killed() {
    let Some(browser) = browser("helper", 1) else {
        return;
    };
    let (_shop, addr) = Shop::start().await;
    let options = HttpOptions::default();
    let spa = url(addr, "/spa");
    browser
        .render(&request(&spa, &options, Duration::from_secs(20)))
        .await
        .unwrap();
    println!("group={}", browser.process_group().await.unwrap());
    // Not a wait: the test kills this process long before; the bound only ends a stray run.
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test]
async fn a_killed_pagehook_leaves_no_browser_behind() {
    use tokio::io::AsyncBufReadExt;
    if browser_source("sigkill").is_none() {
        return;
    }
    let mut helper = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "browser::lifecycle::helper_hold_a_browser_until_killed",
            "--ignored",
            "--nocapture",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(helper.stdout.take().unwrap()).lines();
    let group = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the helper's group line");
        if let Some(group) = line.strip_prefix("group=") {
            break group.trim().parse::<u32>().unwrap();
        }
    };
    assert!(!live_processes(group).is_empty());
    let profile = format!("pagehook-browser-{}-", helper.id().unwrap());
    let profiles = || {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&profile))
            .count()
    };
    assert_eq!(profiles(), 1);
    helper.start_kill().unwrap();
    helper.wait().await.unwrap();
    assert_gone(group).await;

    // The next browser started removes the profile the killed one could not.
    let Some(browser) = browser("sigkill", 1) else {
        return;
    };
    let (_shop, addr) = Shop::start().await;
    let options = HttpOptions::default();
    let spa = url(addr, "/spa");
    browser
        .render(&request(&spa, &options, Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(profiles(), 0);
    close(&browser).await;
}
