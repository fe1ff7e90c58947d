//! `model.init: hf:<repo>[/<file>]`: weights on the Hugging Face Hub, resolved through the
//! `hf-hub` crate to a file in the user's Hugging Face cache when a grid is expanded (before
//! anything is written). `<file>` defaults to `model.safetensors`.
//!
//! The cache folder is the one the Python `huggingface_hub` uses: `$HF_HUB_CACHE`, else
//! `$HF_HOME/hub`, else `~/.cache/huggingface/hub` (laid out `models--<org>--<name>/refs/main`
//! → `snapshots/<commit>/<file>`). A file already there is used without asking the network;
//! otherwise it is downloaded there (from `$HF_ENDPOINT` when set), unless `HF_HUB_OFFLINE` is
//! set (`1`, `true`, `yes`, `on`), which makes a missing file an error saying so.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Prefix of a Hub reference in `model.init`.
pub const PREFIX: &str = "hf:";

/// The file taken from a repository when the reference names none.
pub const DEFAULT_FILE: &str = "model.safetensors";

/// Where and how to resolve Hub references (from the environment: [`HfEnv::from_env`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HfEnv {
    pub cache: PathBuf,
    pub offline: bool,
    pub endpoint: Option<String>,
}

impl HfEnv {
    /// `HF_HUB_CACHE` / `HF_HOME` / the default cache, `HF_HUB_OFFLINE`, `HF_ENDPOINT`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let cache = match (var("HF_HUB_CACHE"), var("HF_HOME")) {
            (Some(c), _) => PathBuf::from(c),
            (None, Some(h)) => PathBuf::from(h).join("hub"),
            (None, None) => std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".cache/huggingface/hub"),
        };
        let offline = var("HF_HUB_OFFLINE")
            .is_some_and(|v| ["1", "true", "yes", "on"].contains(&v.to_ascii_lowercase().as_str()));
        Self {
            cache,
            offline,
            endpoint: var("HF_ENDPOINT"),
        }
    }
}

/// (`<org>/<name>`, file) of a reference (without its `hf:`).
pub fn parse(reference: &str) -> Result<(String, String)> {
    let parts: Vec<&str> = reference.split('/').collect();
    if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(Error::Config(format!(
            "invalid value for `model.init`: \"hf:{reference}\"; expected \
             hf:<org>/<name>[/<file>], e.g. hf:facebook/dinov2-small"
        )));
    }
    let file = match parts.len() {
        2 => DEFAULT_FILE.to_string(),
        _ => parts[2..].join("/"),
    };
    Ok((format!("{}/{}", parts[0], parts[1]), file))
}

/// The local path of `hf:<reference>` if the cache holds it (never asks the network).
pub fn cached(reference: &str, env: &HfEnv) -> Result<Option<PathBuf>> {
    let (repo, file) = parse(reference)?;
    Ok(hf_hub::Cache::new(env.cache.clone()).model(repo).get(&file))
}

/// The local path of `hf:<reference>`: from the cache, or downloaded into it.
pub fn resolve(reference: &str, env: &HfEnv) -> Result<PathBuf> {
    if let Some(p) = cached(reference, env)? {
        return Ok(p);
    }
    let (repo, file) = parse(reference)?;
    let cache = hf_hub::Cache::new(env.cache.clone());
    if env.offline {
        return Err(Error::Config(format!(
            "invalid value for `model.init`: \"hf:{reference}\"; {file} of {repo} is not in \
             the Hugging Face cache {} and HF_HUB_OFFLINE is set: unset it to download, or \
             point HF_HUB_CACHE / HF_HOME at a cache that holds it",
            env.cache.display()
        )));
    }
    let mut b = hf_hub::api::sync::ApiBuilder::from_cache(cache).with_progress(true);
    if let Some(e) = &env.endpoint {
        b = b.with_endpoint(e.clone());
    }
    let api = b
        .build()
        .map_err(|e| Error::Other(format!("Hugging Face client: {e}")))?;
    api.model(repo.clone()).get(&file).map_err(|e| {
        Error::Config(format!(
            "invalid value for `model.init`: \"hf:{reference}\"; downloading {file} of {repo} \
             into {} failed ({e}); check the name, the network, or set HF_HUB_OFFLINE=1 with \
             a cache that holds it",
            env.cache.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache laid out as `huggingface_hub` and `hf-hub` write it, read offline.
    #[test]
    fn resolves_from_a_cache_offline_and_says_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("models--facebook--dinov2-small");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), commit).unwrap();
        let snap = repo.join("snapshots").join(commit);
        std::fs::create_dir_all(snap.join("sub")).unwrap();
        std::fs::write(snap.join("model.safetensors"), b"w").unwrap();
        std::fs::write(snap.join("sub/other.safetensors"), b"o").unwrap();
        let env = HfEnv {
            cache: dir.path().to_path_buf(),
            offline: true,
            endpoint: None,
        };
        assert_eq!(
            resolve("facebook/dinov2-small", &env).unwrap(),
            snap.join("model.safetensors")
        );
        assert_eq!(
            resolve("facebook/dinov2-small/sub/other.safetensors", &env).unwrap(),
            snap.join("sub/other.safetensors")
        );
        let e = resolve("facebook/dinov2-base", &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("HF_HUB_OFFLINE") && e.contains("dinov2-base"),
            "{e}"
        );
        let e = resolve("dinov2-small", &env).unwrap_err().to_string();
        assert!(e.contains("hf:<org>/<name>"), "{e}");
    }
}
