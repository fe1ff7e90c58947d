//! Soak: two sweeps of one grid with `--jobs 2` each, a `report` loop and the web UI polled
//! for the runs table (`clusterlab ui`, which only reads the store), all at once, with
//! SIGKILLs at seeded random moments to whole sweeps (with their workers), to sweep processes
//! alone (their workers go on as orphans), to single workers and to reports. Afterwards every
//! cell has completed exactly once (one result index line each), the store verifies without
//! damage, and it equals a store swept without interruption.

use super::*;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// The smoke grid (CC and k-means, 3 seeds) made tiny.
const SETS: &[&str] = &[
    "--set=dataset.size=400",
    "--set=dataset.image_size=16",
    "--set=dataset.num_classes=4",
    "--set=model.widths=[8,16]",
    "--set=method.feature_dim=16",
    "--set=method.head_hidden=32",
    "--set=method.kmeans_restarts=1",
    "--set=method.kmeans_iterations=20",
    "--set=train.epochs=24",
    "--set=train.batch_size=50",
    "--set=train.eval_every=4",
];

const KILLS: usize = 24;

fn sweep_args(jobs: &'static str) -> Vec<&'static str> {
    let mut a = vec!["sweep", "--jobs", jobs];
    a.extend_from_slice(SETS);
    a
}

/// A `sweep --jobs 2` in a process group of its own (its workers are in it too), its and its
/// workers' stderr in `logs/<pid>.err`.
fn spawn_sweep(dir: &Path, logs: &Path) -> Child {
    let err = tempfile::NamedTempFile::new_in(logs).unwrap();
    let child = command(dir, &sweep_args("2"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    err.persist(logs.join(format!("{}.err", child.id())))
        .unwrap();
    child
}

/// Live (not zombie) processes whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name: state, ppid, pgrp, ...
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[0] != "Z" && f[2] == pgid.to_string() {
            out.push(pid);
        }
    }
    out
}

fn kill(pid: i32) {
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// What a process's end may be: done, or killed by us.
fn expected_end(s: &std::process::ExitStatus, codes: &[i32]) -> bool {
    s.signal() == Some(libc::SIGKILL) || s.code().is_some_and(|c| codes.contains(&c))
}

#[test]
fn soak_concurrent_sweeps_and_reports_under_random_sigkills() {
    let t0 = Instant::now();
    let ref_dir = tempfile::tempdir().unwrap();
    let out = clusterlab(ref_dir.path(), &sweep_args("1"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected = snapshot(ref_dir.path(), "smoke");
    assert_eq!(expected.len(), 6);
    let t_ref = t0.elapsed();

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let logs = tempfile::tempdir().unwrap();
    // The report loop, in a thread: one `report` after another until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let report_pid = Arc::new(AtomicU32::new(0));
    let reports = Arc::new(Mutex::new(Vec::new()));
    let looper = {
        let (stop, pid, reports, root) = (
            stop.clone(),
            report_pid.clone(),
            reports.clone(),
            root.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let mut c = spawn(&root, &["report", "smoke"]);
                pid.store(c.id(), Ordering::SeqCst);
                let s = c.wait().unwrap();
                pid.store(0, Ordering::SeqCst);
                reports.lock().unwrap().push(s);
            }
        })
    };

    // The web UI over the same store, its runs table requested in a loop by a reader thread.
    let mut ui = command(&root, &["ui", "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ui_url = {
        use std::io::BufRead;
        let mut line = String::new();
        let mut out = std::io::BufReader::new(ui.stdout.take().expect("piped stdout"));
        out.read_line(&mut line).unwrap();
        // Keep reading (and dropping) its output so it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        line.split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .trim_end_matches('/')
            .to_string()
    };
    let ui_reads = Arc::new(Mutex::new(Vec::<(u16, bool)>::new()));
    let ui_reader = {
        let (stop, reads, url) = (stop.clone(), ui_reads.clone(), ui_url.clone());
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into();
            while !stop.load(Ordering::SeqCst) {
                let r = agent.get(&format!("{url}/api/runs")).call();
                let read = match r {
                    Ok(mut r) => {
                        let status = r.status().as_u16();
                        let body = r.body_mut().read_to_string().unwrap_or_default();
                        (
                            status,
                            serde_json::from_str::<serde_json::Value>(&body).is_ok(),
                        )
                    }
                    Err(_) => (0, false),
                };
                reads.lock().unwrap().push(read);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let mut sweeps = [
        spawn_sweep(&root, logs.path()),
        spawn_sweep(&root, logs.path()),
    ];
    let mut groups: Vec<u32> = sweeps.iter().map(|c| c.id()).collect();
    // (pid, how it ended) of every sweep.
    let mut sweep_ends = Vec::new();
    let mut kills = [0usize; 4]; // whole sweeps, sweep processes alone, workers, reports
    let mut x: u64 = 0x2545f4914f6cdd1d;
    for _ in 0..KILLS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(150 + x % 450));
        // A sweep that ended by itself is started again while the kills go on.
        for s in sweeps.iter_mut() {
            if let Some(st) = s.try_wait().unwrap() {
                sweep_ends.push((s.id(), st));
                *s = spawn_sweep(&root, logs.path());
                groups.push(s.id());
            }
        }
        let i = ((x >> 8) % 2) as usize;
        match (x >> 16) % 4 {
            0 => {
                kill(-(sweeps[i].id() as i32));
                kills[0] += 1;
            }
            1 => {
                kill(sweeps[i].id() as i32);
                kills[1] += 1;
            }
            2 => {
                let workers: Vec<i32> = groups
                    .iter()
                    .flat_map(|g| group_members(*g))
                    .filter(|p| !groups.contains(&(*p as u32)))
                    .collect();
                if let Some(w) = workers.get((x >> 24) as usize % workers.len().max(1)) {
                    kill(*w);
                    kills[2] += 1;
                }
            }
            _ => {
                let pid = report_pid.load(Ordering::SeqCst);
                if pid != 0 {
                    kill(pid as i32);
                    kills[3] += 1;
                }
            }
        }
        if (x >> 16) % 4 < 2 {
            sweep_ends.push((sweeps[i].id(), sweeps[i].wait().unwrap()));
            sweeps[i] = spawn_sweep(&root, logs.path());
            groups.push(sweeps[i].id());
        }
    }
    // Calm: the sweeps end by themselves, then the reports stop.
    for s in sweeps.iter_mut() {
        sweep_ends.push((s.id(), s.wait().unwrap()));
    }
    stop.store(true, Ordering::SeqCst);
    looper.join().unwrap();
    ui_reader.join().unwrap();
    let _ = ui.kill();
    let _ = ui.wait();
    // Orphaned workers finish their cells; a sweep then completes whatever is left.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut finals = 0;
    loop {
        while groups.iter().any(|g| !group_members(*g).is_empty()) {
            assert!(Instant::now() < deadline, "orphaned workers never ended");
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = clusterlab(&root, &sweep_args("1"));
        finals += 1;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        if stdout(&out).contains("6 cells: 0 ran, 6 skipped") {
            break;
        }
        assert!(Instant::now() < deadline, "{}", stdout(&out));
    }

    // The UI answered every request with a whole runs table while runs were killed around it.
    let ui_reads = ui_reads.lock().unwrap();
    assert!(!ui_reads.is_empty());
    assert!(
        ui_reads.iter().all(|r| *r == (200, true)),
        "UI answers (status, JSON): {ui_reads:?}"
    );
    // Every process ended as expected: no crash, no failed run.
    let reports = reports.lock().unwrap();
    for s in reports.iter() {
        assert!(expected_end(s, &[0, 2]), "a report ended with {s:?}");
    }
    for (pid, s) in &sweep_ends {
        let err = std::fs::read_to_string(logs.path().join(format!("{pid}.err")));
        assert!(
            expected_end(s, &[0, 130]),
            "a sweep ended with {s:?}:\n{err:?}"
        );
    }
    // Each cell completed exactly once: one result index line per run, none torn.
    let lines = std::fs::read_to_string(root.join("runs/smoke/.results-index.jsonl")).unwrap();
    let mut ids: Vec<String> = lines
        .lines()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).expect("a whole line");
            e["run_id"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    let want: Vec<String> = expected.iter().map(|(id, _, _)| id.clone()).collect();
    assert_eq!(ids, want, "one result index line per cell");
    for d in run_dirs(&root, "smoke") {
        let log = std::fs::read_to_string(d.join("run.log")).unwrap();
        assert!(log.matches("run completed").count() <= 1, "{log}");
    }
    let out = clusterlab(&root, &["verify", "smoke"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("6 runs checked, no damage"),
        "{}",
        stdout(&out)
    );
    assert_same(&expected, &snapshot(&root, "smoke"));
    let interrupted = sweep_ends
        .iter()
        .filter(|(_, s)| s.code() == Some(130))
        .count();
    eprintln!(
        "soak: {} SIGKILLs ({} whole sweeps, {} sweep processes alone, {} workers, {} reports); \
         {} sweeps ended (+{} final, {} exited 130), {} reports ran, {} UI runs-table reads (all 200 \
         with JSON); 6 cells completed once each, \
         verify: no damage, bit-identical to the uninterrupted sweep; {:.1} s (reference {:.1} s)",
        kills.iter().sum::<usize>(),
        kills[0],
        kills[1],
        kills[2],
        kills[3],
        sweep_ends.len(),
        finals,
        interrupted,
        reports.len(),
        ui_reads.len(),
        t0.elapsed().as_secs_f64(),
        t_ref.as_secs_f64()
    );
}
