//! The erhai.v1 gRPC contract, generated from `erhai/v1/erhai.proto` at build time.
//!
//! This crate holds only generated types and service stubs; it knows nothing of how they are used.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

/// Version 1 of the contract.
pub mod v1 {
    tonic::include_proto!("erhai.v1");
}
