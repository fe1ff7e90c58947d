//! Writers of the real dataset formats and the `data` command, shared by the data tests.

use std::io::Write;
use std::path::Path;

use clusterlab::data::formats::cifar::encode_records;

/// A `.tar.gz` holding `files` under `top/`.
pub fn tar_gz(top: &str, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, format!("{top}/{name}"), bytes.as_slice())
            .unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A deterministic 32×32×3 HWC image.
pub fn img32(seed: usize) -> Vec<u8> {
    (0..3072)
        .map(|i| ((i * 7 + seed * 31) % 256) as u8)
        .collect()
}

/// CIFAR-10 batches: `per` records per file, label = record index mod 10.
pub fn cifar10_files(per: usize) -> Vec<(&'static str, Vec<u8>)> {
    let names = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    names
        .iter()
        .enumerate()
        .map(|(f, n)| {
            let recs: Vec<_> = (0..per)
                .map(|i| (vec![((f * per + i) % 10) as u8], img32(f * per + i)))
                .collect();
            (*n, encode_records(&recs))
        })
        .collect()
}

/// `clusterlab ARGS` in `dir` with the data root `root`.
pub fn data_cmd(dir: &Path, root: &Path, args: &[&str]) -> std::process::Output {
    super::command(dir, args)
        .env("CLUSTERLAB_DATA", root)
        .output()
        .unwrap()
}

/// Writes `bytes` to `p`, creating its folders.
pub fn w(p: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}
