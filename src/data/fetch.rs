//! Downloads of the official dataset files: HTTP(S) GET with a progress bar, resume of a
//! partial `<file>.part` with an HTTP `Range` request, MD5 verification, and an atomic rename
//! to the final name (a reader never sees a partial or unverified file under that name).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::source::{md5_file, verify_md5};
use crate::error::{Error, Result};

/// What a fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The file was already there with the right checksum.
    Present,
    /// Downloaded (`resumed_from` > 0 when a partial file was continued).
    Downloaded { bytes: u64, resumed_from: u64 },
}

/// The partial-download path of `dest`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Downloads `url` to `dest`, verified against `md5`. A `dest` with the right checksum is left
/// alone; a `dest.part` left by an interrupted download is resumed with a `Range` request
/// (restarted when the server ignores it). An interrupted transfer keeps the `.part` and is an
/// error that says to run the command again; a checksum mismatch deletes the download.
pub fn fetch(url: &str, dest: &Path, md5: &str, show_progress: bool) -> Result<Fetched> {
    if dest.is_file() && md5_file(dest)? == md5 {
        return Ok(Fetched::Present);
    }
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let part = part_path(dest);
    let mut offset = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let net = |e: &dyn std::fmt::Display| Error::Other(format!("download of {url} failed: {e}"));
    let mut req = agent().get(url);
    if offset > 0 {
        req = req.header("Range", &format!("bytes={offset}-"));
    }
    let resp = req.call().map_err(|e| net(&e))?;
    let status = resp.status().as_u16();
    let length = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let append = match status {
        206 if offset > 0 => true,
        200 => {
            offset = 0;
            false
        }
        // The partial file already holds everything: verify it as it is.
        416 if offset > 0 => return finish(&part, dest, md5, offset, offset),
        s => {
            return Err(net(&format!(
                "HTTP status {s}; check the URL or try again later"
            )))
        }
    };
    let total = length.map(|l| l + offset);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .open(&part)
        .map_err(|e| Error::io(&part, e))?;
    let bar = if show_progress {
        ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(
        dest.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
    );
    bar.set_position(offset);
    let mut reader = resp.into_body().into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut have = offset;
    let interrupted = |have: u64, e: &dyn std::fmt::Display| {
        Error::Other(format!(
            "download of {url} interrupted after {have}{} bytes ({e}); the partial file {} is \
             kept: run the same command again to resume",
            total.map(|t| format!(" of {t}")).unwrap_or_default(),
            part.display()
        ))
    };
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = file.sync_all();
                bar.abandon();
                return Err(interrupted(have, &e));
            }
        };
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).map_err(|e| Error::io(&part, e))?;
        have += n as u64;
        bar.set_position(have);
    }
    file.sync_all().map_err(|e| Error::io(&part, e))?;
    bar.finish_and_clear();
    if let Some(t) = total {
        if have != t {
            return Err(interrupted(have, &"connection closed early"));
        }
    }
    finish(&part, dest, md5, have, offset)
}

/// Verifies the complete `.part` and renames it into place.
fn finish(part: &Path, dest: &Path, md5: &str, bytes: u64, resumed_from: u64) -> Result<Fetched> {
    if let Err(e) = verify_md5(part, md5) {
        let _ = std::fs::remove_file(part);
        return Err(Error::Other(format!(
            "{e} (the download was deleted; run the command again, or check --url)"
        )));
    }
    // Not `atomic::persist`: a failed rename must keep the verified download.
    crate::store::atomic::rename_durably(part, dest).map_err(|e| Error::io(dest, e))?;
    Ok(Fetched::Downloaded {
        bytes,
        resumed_from,
    })
}
