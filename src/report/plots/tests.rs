//! Test helpers shared by the figure tests, and the degenerate inputs every figure must draw.

use std::path::{Path, PathBuf};

use super::chart::{with_suffix, HEIGHT, WIDTH};
use super::*;

/// Both files exist, the PNG is a WIDTH × HEIGHT PNG, the SVG has the same size and contains
/// every text in `texts`. Returns the SVG text.
pub(super) fn check(stem: &Path, texts: &[&str]) -> String {
    let png = std::fs::read(with_suffix(stem, "png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((w, h), (WIDTH, HEIGHT));
    let svg = std::fs::read_to_string(with_suffix(stem, "svg")).unwrap();
    assert!(svg.contains(&format!(r#"width="{WIDTH}" height="{HEIGHT}""#)));
    for t in texts {
        assert!(svg.contains(t), "{} lacks {t:?}", stem.display());
    }
    // No temp file is left behind.
    let dir = stem.parent().unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp"), "left over: {name}");
    }
    // For looking at the figures: CLUSTERLAB_KEEP_PLOTS=<dir> copies them there.
    if let Some(keep) = std::env::var_os("CLUSTERLAB_KEEP_PLOTS") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        for ext in ["png", "svg"] {
            let src = with_suffix(stem, ext);
            std::fs::copy(&src, keep.join(src.file_name().unwrap())).unwrap();
        }
    }
    svg
}

pub(super) fn count(svg: &str, needle: &str) -> usize {
    svg.matches(needle).count()
}

#[test]
fn degenerate_inputs_still_draw() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    learning_curves(&d.join("no_series"), "nmi", &[]).unwrap();
    check(&d.join("no_series"), &["epoch"]);
    let flat = Series {
        label: String::new(),
        epochs: vec![1.0, f64::NAN, 3.0],
        mean: vec![0.5, 0.5, 0.5],
        std: vec![],
    };
    learning_curves(&d.join("flat"), "loss_total", &[flat]).unwrap();
    check(&d.join("flat"), &["loss total (mean over steps)"]);
    bars(&d.join("no_groups"), "empty", &[], &[]).unwrap();
    check(&d.join("no_groups"), &["empty"]);
    loss_terms(&d.join("no_terms"), &[]).unwrap();
    cluster_sizes(&d.join("no_clusters"), &[]).unwrap();
    check(&d.join("no_clusters"), &["K = 0, N = 0"]);
    embedding_scatter(&d.join("no_points"), &[], &[]).unwrap();
    // 200 clusters: ranks labelled every 20.
    let sizes: Vec<usize> = (0..200).map(|i| 100 + i).collect();
    cluster_sizes(&d.join("many_clusters"), &sizes).unwrap();
    let svg = check(&d.join("many_clusters"), &["K = 200"]);
    let texts: Vec<&str> = svg.lines().collect();
    assert!(texts.contains(&"20") && texts.contains(&"200") && !texts.contains(&"10"));
    // More points than drawn: an even stride, said in the title.
    let n = MAX_SCATTER_POINTS + 5;
    let pts: Vec<(f64, f64)> = (0..n).map(|i| (i as f64, (i % 7) as f64)).collect();
    let ids: Vec<i64> = (0..n as i64).map(|i| i % 30).collect();
    embedding_scatter(&d.join("big"), &pts, &ids).unwrap();
    let svg = check(&d.join("big"), &["10003 of 20005 points, K = 30"]);
    assert_eq!(count(&svg, "<circle"), 10_003);
}
