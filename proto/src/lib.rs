//! The erhai.v1 gRPC contract, generated from `erhai/v1/erhai.proto` at build time, and the few
//! conventions client and server must agree on beside it.
//!
//! This crate holds only generated types (which serialize to JSON, [`json`]), service stubs,
//! shared names and the layout of the signed release receipt ([`receipt`]); it knows nothing of
//! how they are used.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

pub mod json;
pub mod receipt;

/// Version 1 of the contract.
pub mod v1 {
    tonic::include_proto!("erhai.v1");
}

/// File names inside an identity bundle directory: `admin init` and user creation write them,
/// every client reads them.
pub mod bundle {
    /// Client certificate.
    pub const CERT: &str = "cert.pem";
    /// Client private key.
    pub const KEY: &str = "key.pem";
    /// Platform CA certificate.
    pub const CA: &str = "ca.pem";
    /// Server endpoint URL.
    pub const ENDPOINT: &str = "endpoint";
}
