//! Development only, never shipped: the throwaway platform ([`demo::Platform`]) and the
//! walk-through `erhai-demo` runs, the seeded Dali data ([`demo_data`]) and TPC-H
//! ([`tpch`]). Tests, benches and examples use it as a dev-dependency, so the `erhai` binary
//! carries no fixtures.

pub mod demo;
pub mod demo_data;
pub mod tpch;
