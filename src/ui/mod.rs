//! `clusterlab ui`: a read-only web view of the run store, live while sweeps run.
//!
//! One embedded page (`page.html`, vanilla JS drawing SVG) over a JSON API built on the store
//! and report readers: the runs of every grid with their state, filtered by the `runs --where`
//! language ([`runs`]); one run's config, provenance, log, curves and final assignment ([`run`],
//! [`images`]); several runs' curves overlaid and their paper table ([`select`]). A running
//! run's curves come from its newest checkpoint, which the page polls.
//!
//! Nothing here writes the store: caches are read while current and never rebuilt, run locks
//! are tested without creating lock files. Requests name runs by (grid, run id) only, each
//! checked as a store name, and every file read must resolve under the store root
//! ([`paths`]). See [`server`] for who may ask.

pub mod images;
pub mod paths;
pub mod routes;
pub mod run;
pub mod runs;
pub mod select;
pub mod server;

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};

use crate::error::{Error, Result};
use crate::store::Store;

/// Threads answering requests.
const THREADS: usize = 4;

/// What the server shares between its threads.
pub struct Ui {
    pub store: Store,
    /// Required on every request when set (a non-loopback `--host`).
    pub token: Option<String>,
    /// The port bound (the `Host` header check).
    pub port: u16,
    datasets: images::DatasetMemo,
}

/// A bound server, not yet answering.
pub struct Server {
    http: tiny_http::Server,
    ui: Ui,
    addr: SocketAddr,
}

/// A random token from the OS (32 hex digits).
fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("/dev/urandom", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Server {
    /// Binds `host:port` (127.0.0.1 when `host` is `None`; port 0 picks a free one). Any other
    /// host than the loopback address gets a random token, required on every request.
    pub fn bind(store: Store, host: Option<&str>, port: u16) -> Result<Self> {
        let ip: IpAddr = match host {
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(h) => h.parse().map_err(|_| {
                Error::BadInput(format!(
                    "--host {h:?}: expected an IP address (e.g. 0.0.0.0 or 192.168.1.5)"
                ))
            })?,
        };
        let listener = TcpListener::bind((ip, port))
            .map_err(|e| Error::BadInput(format!("cannot listen on {ip}:{port}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Other(e.to_string()))?;
        let http = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| Error::Other(format!("{ip}:{port}: {e}")))?;
        let token = match host {
            None => None,
            Some(_) => Some(random_token()?),
        };
        let ui = Ui {
            store,
            token,
            port: addr.port(),
            datasets: Default::default(),
        };
        Ok(Self { http, ui, addr })
    }

    /// The address bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to open (with the token, when one is required).
    pub fn url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        // SocketAddr's display brackets an IPv6 address, as a URL needs.
        match &self.ui.token {
            Some(t) => format!("http://{addr}/?token={t}"),
            None => format!("http://{addr}/"),
        }
    }

    /// Answers requests until the process ends.
    pub fn run(self) -> Result<()> {
        let (http, ui) = (&self.http, &self.ui);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(move || loop {
                    match http.recv() {
                        Ok(req) => server::handle(ui, req),
                        Err(e) => tracing::debug!("accept: {e}"),
                    }
                });
            }
        });
        Ok(())
    }
}
