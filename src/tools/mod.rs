//! Tools that measure the library itself, outside any run: speed benches that print figures
//! ([`bench`]) and numerical cross-checks against independently computed cases ([`golden`])
//! or between devices ([`kernel_check`]).

pub mod bench;
pub mod bench_heads;
pub mod golden;
pub mod kernel_check;
