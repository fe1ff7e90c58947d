//! `clusterlab ui`: binds the web view of the run store and prints where to open it.

use std::io::Write;

use clusterlab::store::Store;
use clusterlab::ui::Server;
use clusterlab::Result;

use super::say;
use crate::cli::UiArgs;

pub fn run(store: &Store, a: UiArgs, out: &mut dyn Write) -> Result<i32> {
    clusterlab::report::without_huge_pages();
    let server = Server::bind(store.clone(), a.host.as_deref(), a.port)?;
    say(
        out,
        format!(
            "clusterlab ui: serving {} on {}",
            store.root.display(),
            server.url()
        ),
    )?;
    if a.host.is_some() {
        say(
            out,
            "every request needs the token in this URL (or an X-Clusterlab-Token header)",
        )?;
    }
    out.flush().ok();
    server.run()?;
    Ok(0)
}
