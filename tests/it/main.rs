//! erhai's integration tests, in one binary: each module below used to be a test target of its
//! own, and each linked DataFusion, tonic and the server again (see the closing note of the
//! façade issue for the build times before and after).
//!
//! Tests at the boundaries: the real server on 127.0.0.1 with TLS driven through the client or
//! the CLI binary, policy decisions as `.slt` files through the real sandbox, generated queries
//! against the engine. Every test binds only loopback addresses and cleans up after itself.

mod common;

mod cache;
mod cli;
mod cli_errors;
mod dataset_lifecycle;
mod dev_sample;
mod disclosure;
mod e2e;
mod flight_sql;
mod fuzz_check;
mod governance;
mod operators;
mod permissions;
mod policy_draft;
mod policy_slt;
mod properties;
mod readme;
mod redteam;
mod review_ux;
