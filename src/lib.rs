//! clusterlab: reproducible deep-clustering research.
//!
//! Data flows one way: a YAML grid ([`config`]) expands into cells, each cell is a run
//! ([`train`] over [`data`], [`nn`] and [`methods`], scored by [`eval`]), every run is recorded
//! in its own directory ([`store`], [`provenance`]), and [`report`] reads the store back into
//! paper-style tables. [`launch`] drives a whole sweep; [`ui`] serves the store as a web page.

pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod features;
pub mod launch;
pub mod logging;
pub mod methods;
pub mod nn;
pub mod provenance;
pub mod report;
pub mod rng;
pub mod store;
pub mod tools;
pub mod train;
pub mod ui;

pub use error::{Error, Result};
