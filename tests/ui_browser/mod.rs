//! The browser part of tests/ui.rs: the page in headless Chromium through chromedriver
//! (WebDriver over HTTP, with ureq). Split out of tests/ui.rs; it reads the parent's fixture
//! and helpers.

use super::*;

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// A WebDriver session of headless Chromium, through chromedriver.
struct Browser {
    base: String,
    session: String,
    _driver: Guard,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start(chromium: &Path, driver: &Path) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let guard = Guard(child);
        let base = format!("http://127.0.0.1:{port}");
        let t = Instant::now();
        while agent().get(format!("{base}/status")).call().is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let v = post(&format!("{base}/session"), &caps);
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Browser {
            base,
            session,
            _driver: guard,
            _profile: profile,
        }
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/session/{}/{tail}", self.base, self.session)
    }

    fn go(&self, url: &str) {
        post(&self.url("url"), &json!({ "url": url }));
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    fn eval(&self, script: &str) -> Json {
        let v = post(
            &self.url("execute/sync"),
            &json!({"script": script, "args": []}),
        );
        v["value"].clone()
    }

    /// Waits until `script` returns true.
    fn wait(&self, what: &str, script: &str) {
        let t = Instant::now();
        while self.eval(script) != json!(true) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}; page: {}; errors: {}",
                self.eval("return document.body.innerText.slice(0, 2000)"),
                self.eval("return window.clusterlabErrors")
            );
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn screenshot(&self, name: &str) {
        let v = get_json(&self.url("screenshot"));
        let png = base64(v["value"].as_str().unwrap());
        let dir = screenshots();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
        eprintln!("screenshot {}", dir.join(name).display());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = agent()
            .delete(format!("{}/session/{}", self.base, self.session))
            .call();
    }
}

fn post(url: &str, body: &Json) -> Json {
    let mut r = agent()
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{url}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// `target/ui-screenshots/`.
fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("ui-screenshots")
}

fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().fold(0u32, |acc, &c| (acc << 6) | val(c)) << (6 * (4 - chunk.len()));
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..chunk.len()]);
    }
    out
}

pub(super) fn browser(base: &str, fx: &Fixture) {
    let required = std::env::var("CLUSTERLAB_BROWSER_TESTS").is_ok_and(|v| v == "1");
    let chromium = which("chromium").or_else(|| which("chromium-browser"));
    let (Some(chromium), Some(driver)) = (chromium, which("chromedriver")) else {
        assert!(
            !required,
            "CLUSTERLAB_BROWSER_TESTS=1 but chromium or chromedriver is missing (apt-get install chromium chromium-driver)"
        );
        eprintln!("SKIPPED the browser part of tests/ui.rs: chromium or chromedriver not found (apt-get install chromium chromium-driver; CLUSTERLAB_BROWSER_TESTS=1 makes this a failure)");
        return;
    };
    let b = Browser::start(&chromium, &driver);

    // The runs table: every run with its state.
    b.go(base);
    b.wait(
        "the runs table",
        "return document.querySelectorAll('#runs tr[data-run]').length === 5",
    );
    let rows = b.eval("return [...document.querySelectorAll('#runs tr[data-run]')].map(r => [r.dataset.run, r.dataset.status])");
    let seen: BTreeMap<String, String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().into(), r[1].as_str().unwrap().into()))
        .collect();
    assert_eq!(seen, fx.expected);
    b.screenshot("runs.png");

    // Filtering by a config key, typed into the --where box.
    b.eval("document.getElementById('where').value = 'method.name=kmeans'; document.getElementById('apply').click(); return 1");
    b.wait(
        "the filtered table",
        "return location.search.includes('where=') && window.clusterlabRefreshes > 0 && document.querySelectorAll('#runs tr[data-run]').length > 0",
    );
    let rows = b.eval("return [...document.querySelectorAll('#runs tr[data-run]')].map(r => r.dataset.run).sort()");
    let mut want = vec![fx.kmeans0.clone(), fx.failed.clone()];
    want.sort();
    assert_eq!(rows, json!(want));
    b.screenshot("runs-filtered.png");

    // A completed run: curves, sizes, confusion matrix, embedding, cluster images.
    b.go(&format!("{base}run/{}", fx.cc0));
    b.wait(
        "the run's charts",
        "return !!document.querySelector('#chart-metrics path.series[data-points=\"5\"]') && !!document.querySelector('#chart-losses path.series') && !!document.getElementById('confusion') && !!document.getElementById('chart-embedding')",
    );
    b.wait(
        "the cluster images",
        "return [...document.querySelectorAll('#c-images img')].length > 0 && [...document.querySelectorAll('#c-images img')].every(i => i.complete && i.naturalWidth > 0)",
    );
    b.screenshot("run-completed.png");
    b.eval("document.getElementById('c-embed').scrollIntoView(); return 1");
    b.screenshot("run-completed-assignment.png");

    // The running run: its curves grow while the page stays open (no reload).
    b.go(&format!("{base}run/{}", fx.running));
    b.wait(
        "the running run's curves",
        "return !!document.querySelector('#chart-metrics path.series')",
    );
    let points = "return +document.querySelector('#chart-metrics path.series').dataset.points";
    let p0 = b.eval(points).as_u64().unwrap();
    b.eval("window.clusterlabMarker = 'same page'; return 1");
    let t = Instant::now();
    while b.eval(points).as_u64().unwrap() <= p0 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the curves did not grow"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(b.eval("return window.clusterlabMarker"), json!("same page"));
    assert!(b
        .eval("return document.getElementById('live').textContent")
        .as_str()
        .unwrap()
        .contains("live"));
    b.screenshot("run-running.png");

    // Two runs ticked in the table and compared: curves overlaid, bands, the table.
    b.go(base);
    b.wait(
        "the runs table",
        "return document.querySelectorAll('#runs tr[data-run]').length === 5",
    );
    for id in [&fx.cc0, &fx.kmeans0] {
        b.eval(&format!(
            "document.querySelector('input[data-sel=\"{id}\"]').click(); return 1"
        ));
    }
    b.eval("document.getElementById('compare').click(); return 1");
    b.wait(
        "the overlaid curves",
        "return location.pathname === '/compare' && document.querySelectorAll('#chart-overlay path.series[data-run]').length === 2 && !!document.getElementById('paper-table')",
    );
    let overlaid = b.eval("return [...document.querySelectorAll('#chart-overlay path.series[data-run]')].map(p => p.dataset.run).sort()");
    let mut want = vec![fx.cc0.clone(), fx.kmeans0.clone()];
    want.sort();
    assert_eq!(overlaid, json!(want));
    let bands = b.eval("return document.querySelectorAll('#chart-bands polygon.band, #chart-bands path.series').length");
    assert!(bands.as_u64().unwrap() >= 2, "{bands}");
    b.screenshot("compare.png");

    // A selection with the running run and both CC seeds: grouped bands.
    b.go(&format!(
        "{base}compare?runs={},{},{}",
        fx.cc0, fx.kmeans0, fx.running
    ));
    b.wait(
        "three overlaid curves",
        "return document.querySelectorAll('#chart-overlay path.series[data-run]').length === 3 && !!document.getElementById('paper-table')",
    );
    b.screenshot("compare-running.png");
}
