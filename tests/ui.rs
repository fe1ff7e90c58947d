//! `clusterlab ui` end to end, over a store with completed, failed, interrupted and running runs.
//!
//! The completed runs are a trained tiny grid. Two of its runs get a fabricated `status.json`
//! (one `failed` with an error, one `running` whose lock nobody holds: interrupted). The running
//! run is real: a sweep of a slow one-cell grid trains in a child process for the whole test,
//! holding its run's lock and writing a checkpoint per epoch.
//!
//! The JSON API is driven with ureq (paths that must be refused, with a raw TCP client: they
//! are sent byte for byte). The page is driven in headless Chromium through chromedriver
//! (WebDriver over HTTP, with ureq): the runs table, filtering through the `--where` box, a run's
//! curves (and their update while the run trains, without a reload), two runs ticked and
//! compared. Screenshots go to `target/ui-screenshots/`. Without chromium and chromedriver the
//! browser part is skipped with a message, unless `CLUSTERLAB_BROWSER_TESTS=1` (then it fails).

mod common;

use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

mod ui_browser;
use ui_browser::browser;

/// Kills a child process when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `clusterlab ui` and its standard output (kept open: it may print more).
struct UiProcess {
    _guard: Guard,
    _stdout: BufReader<std::process::ChildStdout>,
}

/// Starts `clusterlab ui --port 0 ARGS` in `dir`; the process and the URL it printed.
fn start_ui(dir: &Path, args: &[&str]) -> (UiProcess, String) {
    let mut all = vec!["ui", "--port", "0"];
    all.extend(args);
    // CLUSTERLAB_UI_TEST_LOG=<file>: the server's debug log (each request, in and out) there.
    let log = std::env::var_os("CLUSTERLAB_UI_TEST_LOG");
    if log.is_some() {
        all.push("-vv");
    }
    let mut child = command(dir, &all)
        .stdout(Stdio::piped())
        .stderr(match log {
            Some(p) => Stdio::from(
                std::fs::File::create(format!("{}.{}", p.to_string_lossy(), args.len())).unwrap(),
            ),
            None => Stdio::null(),
        })
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    let ui = UiProcess {
        _guard: Guard(child),
        _stdout: stdout,
    };
    (ui, url)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// GET `url`: status and body.
fn get(url: &str) -> (u16, String) {
    let mut r = agent().get(url).call().unwrap();
    let body = r.body_mut().read_to_string().unwrap();
    (r.status().as_u16(), body)
}

fn get_json(url: &str) -> Json {
    let (code, body) = get(url);
    assert_eq!(code, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// A raw HTTP/1.1 request, sent byte for byte: status and the whole response.
fn raw(base: &str, request_line: &str, host: Option<&str>) -> (u16, String) {
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let addr = addr.split('/').next().unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let host = host.unwrap_or(addr);
    write!(
        s,
        "{request_line} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out)
}

/// Every file under `dir` with its size and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            out.insert(e.path(), (m.len(), m.modified().unwrap()));
        }
    }
    out
}

fn set_status(run_dir: &Path, f: impl FnOnce(&mut Json)) {
    let p = run_dir.join("status.json");
    let mut st: Json = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut st);
    std::fs::write(&p, serde_json::to_vec_pretty(&st).unwrap()).unwrap();
}

fn config_of(run_dir: &Path) -> String {
    std::fs::read_to_string(run_dir.join("config.yaml")).unwrap()
}

/// The store of the test: run ids by role, the sweep training the running run, the folder.
struct Fixture {
    /// First, so that it stops before the folder is removed.
    _sweep: Guard,
    dir: tempfile::TempDir,
    /// (grid/run, state) of every run.
    expected: BTreeMap<String, String>,
    cc0: String,
    kmeans0: String,
    failed: String,
    running: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let tiny = TINY.replace("epochs: 2", "epochs: 5");
    std::fs::write(dir.path().join("tiny.yaml"), &tiny).unwrap();
    let o = clusterlab(dir.path(), &["sweep", "tiny.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let runs = run_dirs(dir.path(), "tiny");
    let find = |method: &str, seed: u32| -> PathBuf {
        runs.iter()
            .find(|d| {
                let c = config_of(d);
                let top = format!("seed: {seed}\n");
                c.contains(&format!("name: {method}\n"))
                    && (c.starts_with(&top) || c.contains(&format!("\n{top}")))
            })
            .unwrap_or_else(|| panic!("no {method} seed {seed}"))
            .clone()
    };
    let id = |d: &Path| format!("tiny/{}", d.file_name().unwrap().to_string_lossy());
    let (cc0, cc1, km0, km1) = (
        find("cc", 0),
        find("cc", 1),
        find("kmeans", 0),
        find("kmeans", 1),
    );
    // Fabricated states: a failure, and a `running` status nobody holds the lock of.
    set_status(&km1, |s| {
        s["state"] = json!("failed");
        s["error"] = json!("fabricated failure for the UI test");
    });
    set_status(&cc1, |s| s["state"] = json!("running"));

    // A real running run: one CC cell with many epochs, trained by a sweep in the background.
    let slow = TINY
        .replace("name: tiny", "name: slow")
        .replace("epochs: 2", "epochs: 2000")
        .replace("method.name: [cc, kmeans]", "method.name: [cc]")
        .replace("seed: [0, 1]", "seed: [0]");
    std::fs::write(dir.path().join("slow.yaml"), slow).unwrap();
    let sweep = Guard(
        command(dir.path(), &["sweep", "slow.yaml"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    let slow_dir = loop {
        let d = run_dirs(dir.path(), "slow").into_iter().next();
        if let Some(d) = d.filter(|d| d.join("checkpoints").is_dir()) {
            let n = std::fs::read_dir(d.join("checkpoints")).unwrap().count();
            if n >= 2 {
                break d;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "the slow sweep did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let running = format!("slow/{}", slow_dir.file_name().unwrap().to_string_lossy());
    let expected: BTreeMap<String, String> = [
        (id(&cc0), "completed"),
        (id(&km0), "completed"),
        (id(&km1), "failed"),
        (id(&cc1), "interrupted"),
        (running.clone(), "running"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    Fixture {
        expected,
        cc0: id(&cc0),
        kmeans0: id(&km0),
        failed: id(&km1),
        running,
        _sweep: sweep,
        dir,
    }
}

fn statuses(runs: &Json) -> BTreeMap<String, String> {
    runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                format!(
                    "{}/{}",
                    r["grid"].as_str().unwrap(),
                    r["run_id"].as_str().unwrap()
                ),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn epochs_seen(base: &str, run: &str) -> usize {
    let e = get_json(&format!("{base}api/run/{run}/epochs"));
    e["columns"]["epoch"].as_array().map_or(0, |a| a.len())
}

#[test]
fn ui_serves_the_store_read_only() {
    let fx = fixture();
    let tiny = fx.dir.path().join("runs/tiny");
    // A symlink out of the store, as a run and as a run's log: never followed.
    let outside = fx.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("run.log"), "SECRET-OUTSIDE\n").unwrap();
    std::fs::write(outside.join("config.yaml"), "SECRET-OUTSIDE\n").unwrap();
    std::os::unix::fs::symlink(&outside, tiny.join("evil")).unwrap();
    let failed_dir = fx.dir.path().join("runs").join(&fx.failed);
    std::fs::remove_file(failed_dir.join("run.log")).unwrap();
    std::os::unix::fs::symlink(outside.join("run.log"), failed_dir.join("run.log")).unwrap();
    let before = snapshot(&tiny);

    let (_ui, base) = start_ui(fx.dir.path(), &[]);
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    // The runs table: every run with its state; the symlinked "run" is not one.
    let all = get_json(&format!("{base}api/runs"));
    assert_eq!(statuses(&all), fx.expected, "{all}");
    assert_eq!(
        all["columns"],
        json!(["method.name", "train.epochs", "seed"]),
        "{all}"
    );
    let cc0 = all["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| format!("tiny/{}", r["run_id"].as_str().unwrap()) == fx.cc0)
        .unwrap();
    assert!(cc0["metrics"]["final_nmi"].is_number(), "{cc0}");
    // The `runs --where` language, over config keys and the state.
    let km = get_json(&format!("{base}api/runs?where=method.name%3Dkmeans"));
    let want: BTreeMap<_, _> = fx
        .expected
        .iter()
        .filter(|(k, _)| **k == fx.kmeans0 || **k == fx.failed)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(statuses(&km), want);
    let running = get_json(&format!("{base}api/runs?where=status%3Drunning"));
    assert_eq!(statuses(&running).keys().collect::<Vec<_>>(), [&fx.running]);
    let both = get_json(&format!(
        "{base}api/runs?where=method.name%3Dcc&where=final_nmi%3E%3D0"
    ));
    assert_eq!(statuses(&both).keys().collect::<Vec<_>>(), [&fx.cc0]);
    let (code, body) = get(&format!("{base}api/runs?where=nosuchkey%3D1"));
    assert_eq!(code, 400, "{body}");
    let (code, body) = get(&format!("{base}api/runs?where=method.name"));
    assert!(
        code == 400 && body.contains("expected KEY OP VALUE"),
        "{body}"
    );

    // One run.
    let d = get_json(&format!("{base}api/run/{}", fx.cc0));
    assert_eq!(d["status"]["state"], "completed");
    assert!(d["config_yaml"].as_str().unwrap().contains("name: cc"));
    assert!(
        d["provenance"].is_object() && d["result"]["final_nmi"].is_number(),
        "{d}"
    );
    let e = get_json(&format!("{base}api/run/{}/epochs", fx.cc0));
    assert_eq!(e["source"], "epochs.parquet");
    assert_eq!(e["columns"]["epoch"], json!([1, 2, 3, 4, 5]));
    assert_eq!(e["columns"]["nmi"].as_array().unwrap().len(), 5);
    assert!(e["columns"]["loss_total"].is_array());
    let k = get_json(&format!("{base}api/run/{}/clusters", fx.cc0));
    assert_eq!(
        k["sizes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        200
    );
    assert_eq!(k["confusion"]["classes"], json!([0, 1, 2, 3]));
    assert_eq!(k["embedding"]["x"].as_array().unwrap().len(), 200);
    let log = get_json(&format!("{base}api/run/{}/log?lines=2", fx.cc0));
    assert_eq!(log["lines"].as_array().unwrap().len(), 2);
    assert!(
        log["lines"][1].as_str().unwrap().contains("run completed"),
        "{log}"
    );
    let mut png = agent()
        .get(format!("{base}api/run/{}/cluster/0.png?n=8", fx.kmeans0))
        .call()
        .unwrap();
    assert_eq!(png.status().as_u16(), 200);
    assert_eq!(&png.body_mut().read_to_vec().unwrap()[..4], b"\x89PNG");
    let f = get_json(&format!("{base}api/run/{}", fx.failed));
    assert_eq!(f["status"]["state"], "failed");
    assert_eq!(f["status"]["error"], "fabricated failure for the UI test");

    // The running run's curves come from its checkpoints and grow while it trains.
    let r = get_json(&format!("{base}api/run/{}/epochs", fx.running));
    assert_eq!(r["source"], "checkpoint", "{r}");
    let n0 = epochs_seen(&base, &fx.running);
    let t = Instant::now();
    while epochs_seen(&base, &fx.running) <= n0 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no new epoch in 60 s"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // The paper table of a selection.
    let sel = get_json(&format!(
        "{base}api/table?runs={},{},{}",
        fx.cc0, fx.kmeans0, fx.running
    ));
    assert_eq!(sel[0]["rows"], json!([["cc"], ["kmeans"]]), "{sel}");
    assert!(sel[0]["markdown"].as_str().unwrap().contains("| cc |"));

    // Refused: paths out of the store, however spelled, symlinks out of it, other hosts,
    // other methods. Never a file's content.
    let refused = [
        ("GET /api/run/../../etc/passwd", 404),
        ("GET /api/run/tiny/../../../etc/passwd", 404),
        ("GET /api/run/%2e%2e/%2e%2e/etc/passwd", 404),
        ("GET /api/run/tiny/%2e%2e", 400),
        ("GET /api/run/tiny/%2e%2e/log", 400),
        ("GET /api/run/%2Fetc/passwd", 400),
        ("GET /api/run/tiny/%2Fetc%2Fpasswd/log", 400),
        ("GET /api/run/tiny/..%2F..%2F..%2Fetc%2Fpasswd/log", 400),
        ("GET /api/run/tiny/%252e%252e/log", 400),
        ("GET /api/run/tiny/.lock/log", 400),
        ("GET //etc/passwd", 404),
        ("GET /etc/passwd", 404),
        ("GET /../../../../etc/passwd", 404),
        ("GET /run/..%2F..%2Fetc/passwd", 400),
        ("GET /api/run/tiny/evil/log", 404),
        ("GET /api/run/tiny/evil", 404),
        ("GET /api/run/tiny/%zz", 400),
    ];
    for (line, want) in refused {
        let (code, body) = raw(&base, line, None);
        assert_eq!(code, want, "{line}: {body}");
        assert!(
            !body.contains("root:") && !body.contains("SECRET-OUTSIDE"),
            "{line}: {body}"
        );
    }
    let (code, body) = raw(&base, &format!("GET /api/run/{}/log", fx.failed), None);
    assert_eq!(code, 200);
    assert!(
        !body.contains("SECRET-OUTSIDE"),
        "a symlinked log is not read: {body}"
    );
    let (code, _) = raw(&base, "GET /api/runs", Some("evil.example"));
    assert_eq!(code, 403, "DNS rebinding: another Host is refused");
    let (code, _) = raw(&base, "POST /api/runs", None);
    assert_eq!(code, 405);

    browser(&base, &fx);

    // Nothing of the store was written (no cache, no lock file, no status).
    assert_eq!(snapshot(&tiny), before, "the UI wrote to the store");
}

/// With --host, every request needs the token printed at start.
#[test]
fn ui_off_loopback_requires_the_token() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("runs")).unwrap();
    let (_ui, url) = start_ui(dir.path(), &["--host", "127.0.0.1"]);
    let (base, token) = url.split_once("?token=").expect("a token in the URL");
    assert_eq!(token.len(), 32, "{url}");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(get(&format!("{base}api/runs")).0, 401);
    // A token that differs in its first digit (not "0" when the real one starts with "0").
    let other = if token.starts_with('0') { '1' } else { '0' };
    assert_eq!(
        get(&format!("{base}api/runs?token={other}{}", &token[1..])).0,
        401
    );
    assert_eq!(get(base).0, 401, "the page too");
    let (code, body) = get(&format!("{base}api/runs?token={token}"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Json>(&body).unwrap()["total"], 0);
    let mut r = agent()
        .get(format!("{base}api/runs"))
        .header("X-Clusterlab-Token", token)
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let _ = r.body_mut().read_to_string();
    // The page's own requests carry the cookie set when it was opened with ?token=.
    let r = agent().get(url.as_str()).call().unwrap();
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.contains(&format!("clusterlab_token={token}")) && cookie.contains("HttpOnly"));
    let mut r = agent()
        .get(format!("{base}api/runs"))
        .header("Cookie", format!("clusterlab_token={token}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let _ = r.body_mut().read_to_string();
}
