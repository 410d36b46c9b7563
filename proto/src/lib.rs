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

/// Response metadata that tells a refusal by policy apart from other errors of the same gRPC
/// code: a column policy, a scenario's scope or a budget said no (PERMISSION_DENIED is also what
/// a role without the permission gets; RESOURCE_EXHAUSTED also what a full server answers).
pub mod refusal {
    /// The metadata key the gateway sets on a refusal's status.
    pub const KEY: &str = "x-erhai-refusal";
    /// Its value for a refusal by policy.
    pub const POLICY: &str = "policy";
}
