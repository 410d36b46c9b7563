//! The erhai client, usable without linking the server: identity bundles, the mutual-TLS
//! connection, one typed call per user action, and the files users exchange with the platform
//! (data to upload, released results and their receipts, scenario applications).
//!
//! It depends on the contract (`erhai-proto`) and nothing of the server's: what the server
//! decides (policies, checks) it decides itself, and the client only carries the request.

mod client;
mod error;
mod identity;

pub mod application;
pub mod files;
pub mod probe;
pub mod receipt;

pub use client::{Client, UPLOAD_CHUNK_ROWS, decode_ipc, encode_ipc, upload_messages};
pub use error::ClientError;
pub use identity::IdentityBundle;
