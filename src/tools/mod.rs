//! Tools that measure the library itself, outside any run: speed benches that print figures
//! ([`bench`]) and numerical cross-checks against independently computed cases ([`golden`]).

pub mod bench;
pub mod golden;
