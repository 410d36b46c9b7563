//! The erhai gateway: gRPC services over mutual TLS, identity from the verified client
//! certificate, authorization from one permission matrix, the workflows (register, query, review,
//! release), state in sled and the audit chain.
//!
//! Only this crate knows about users, tenants and roles. It never reads dataset rows itself: the
//! engine does, and the gateway decides who gets what the engine produced.

pub mod audit;
pub mod authz;
pub mod call_log;
pub mod config;
pub mod dates;
pub mod deploy;
pub mod error;
pub mod identity;
pub mod job_rules;
pub mod ledger;
pub mod metrics;
mod ops_http;
pub mod pki;
pub mod quality;
pub mod receipt;
pub mod records;
pub mod scenario;
pub mod server;
pub mod service;
pub mod state;
pub mod tenant;

pub use config::ServerConfig;
pub use error::GatewayError;
pub use server::{RunningServer, start};
