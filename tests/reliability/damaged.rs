//! A damaged store is detected and repaired: `verify` lists what is wrong, `--repair` sets
//! damaged runs aside so that the next sweep redoes them; `report` and `status` skip a damaged
//! run with a warning naming it.

use super::*;

/// The cc run and the k-means run of seed 0 and 1 of TINY, by (method, seed).
fn find(root: &Path, method: &str, seed: u64) -> std::path::PathBuf {
    run_dirs(root, "tiny")
        .into_iter()
        .find(|d| {
            let c = std::fs::read_to_string(d.join("config.yaml")).unwrap();
            c.contains(&format!("name: {method}\n")) && c.contains(&format!("seed: {seed}\n"))
        })
        .unwrap()
}

fn truncate(p: &Path) {
    let b = std::fs::read(p).unwrap();
    std::fs::write(p, &b[..b.len() / 2]).unwrap();
}

#[test]
fn verify_lists_damage_report_and_status_skip_it_repair_sets_it_aside() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("g.yaml"), TINY).unwrap();
    let out = clusterlab(root, &["sweep", "g.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let before = snapshot(root, "tiny");
    let clean = clusterlab(root, &["verify", "tiny"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    assert!(
        stdout(&clean).ends_with("4 runs in 1 grid(s): no damage\n"),
        "{}",
        stdout(&clean)
    );

    // One kind of damage per run, plus the grid's own files.
    let (a, b) = (find(root, "cc", 0), find(root, "kmeans", 0));
    let (c, d) = (find(root, "kmeans", 1), find(root, "cc", 1));
    let rel = |p: &Path| p.strip_prefix(root).unwrap().display().to_string();
    truncate(&a.join("result.parquet"));
    std::fs::write(b.join("status.json"), b"{\"state\": \"compl").unwrap();
    std::fs::write(c.join("epochs.parquet"), b"PAR1 garbage").unwrap();
    let ck = d.join("checkpoints/step-000003-000000.safetensors");
    let mut bytes = std::fs::read(&ck).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&ck, bytes).unwrap();
    let index = root.join("runs/tiny/.results-index.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&index)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"run_id\": \"cut sho").unwrap();
    let temp = root.join("runs/tiny/..report-cache.parquet.2147483646.0.tmp");
    std::fs::write(&temp, b"half").unwrap();

    // `report` skips the runs it cannot read, naming their files.
    let out = clusterlab(root, &["report", "tiny"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for p in [a.join("result.parquet"), c.join("epochs.parquet")] {
        let want = format!("skipping {}", rel(&p));
        assert!(err.contains(&want), "{want:?} not in:\n{err}");
    }
    let table = stdout(&out);
    assert!(
        table.contains("(1)") && table.contains("(2)"),
        "cc: 1 run, kmeans: 2\n{table}"
    );

    // `status` warns about the unreadable status.json and counts the run as pending.
    let out = clusterlab(root, &["status", "g.yaml"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "{}: unreadable status",
            rel(&b.join("status.json"))
        )),
        "{err}"
    );
    assert!(stdout(&out).contains("pending      1"), "{}", stdout(&out));

    // `verify` lists every problem, each with its file.
    let out = clusterlab(root, &["verify", "tiny"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for (p, what) in [
        (a.join("result.parquet"), "DAMAGED"),
        (b.join("status.json"), "DAMAGED"),
        (c.join("epochs.parquet"), "DAMAGED"),
        (ck.clone(), "DAMAGED"),
        (index.clone(), "note   "),
        (temp.clone(), "note   "),
    ] {
        let want = format!("  {what} {}: ", rel(&p));
        assert!(text.contains(&want), "{want:?} not in:\n{text}");
    }
    assert!(text.contains("SHA-256"), "{text}");
    assert!(text.contains("4 damaged file(s)"), "{text}");
    eprintln!("verify of the damaged store:\n{text}");

    // `--repair`: damaged runs moved aside, the checkpoint set aside, the index rewritten.
    let out = clusterlab(root, &["verify", "tiny", "--repair"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        text.matches("(the next sweep redoes it)").count(),
        3,
        "{text}"
    );
    let aside: Vec<_> = std::fs::read_dir(root.join("runs/tiny/.damaged"))
        .unwrap()
        .collect();
    assert_eq!(aside.len(), 3);
    assert!(d.join("result.parquet").is_file(), "d keeps its results");
    assert!(!ck.exists() && ck.with_extension("safetensors.damaged").is_file());
    assert!(!temp.exists());
    let out = clusterlab(root, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(!stdout(&out).contains("DAMAGED"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("note"), "{}", stdout(&out));

    // The next sweep redoes exactly the runs set aside, identically.
    let out = clusterlab(root, &["sweep", "g.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("4 cells: 3 ran, 1 skipped"),
        "{}",
        stdout(&out)
    );
    assert_same(&before, &snapshot(root, "tiny"));
    let out = clusterlab(root, &["verify", "tiny"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // Bad input: exit 2, naming what is missing.
    let out = clusterlab(root, &["verify", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no grid `nosuch`"),
        "{}",
        stderr(&out)
    );
}

/// A run killed after its result was written but before its status said so is completed from
/// that result (not trained again); a result index line that disagrees with its file is
/// damage that `--repair` rewrites.
#[test]
fn a_recorded_result_completes_its_run_and_a_wrong_index_line_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("g.yaml"), TINY).unwrap();
    let out = clusterlab(root, &["sweep", "g.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let before = snapshot(root, "tiny");
    let a = find(root, "cc", 0);
    let result = std::fs::read(a.join("result.parquet")).unwrap();
    std::fs::write(a.join("status.json"), r#"{"state": "running"}"#).unwrap();
    // The index lost its line (killed between the result and the index).
    let index = root.join("runs/tiny/.results-index.jsonl");
    let id = a.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(&index).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.contains(&id))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&index, &kept).unwrap();

    let out = clusterlab(root, &["sweep", "g.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(a.join("result.parquet")).unwrap(),
        result,
        "not re-run"
    );
    let log = std::fs::read_to_string(a.join("run.log")).unwrap();
    assert_eq!(log.matches("run started").count(), 1, "{log}");
    assert!(
        log.contains("its result was recorded by an earlier attempt"),
        "{log}"
    );
    let text = std::fs::read_to_string(&index).unwrap();
    assert_eq!(text.lines().filter(|l| l.contains(&id)).count(), 1);
    assert_same(&before, &snapshot(root, "tiny"));

    // A line whose row disagrees with the file it stamps (same size and time): damage.
    let wrong = text.replacen("\"final_nmi\",{\"F64\":", "\"final_nmi\",{\"F64\":1", 1);
    assert_ne!(wrong, text);
    std::fs::write(&index, &wrong).unwrap();
    let out = clusterlab(root, &["verify", "tiny"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("disagrees with"), "{}", stdout(&out));
    let out = clusterlab(root, &["verify", "tiny", "--repair"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = clusterlab(root, &["verify", "tiny"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}
