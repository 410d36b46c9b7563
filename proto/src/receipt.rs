//! The release receipt's layout, shared by the server that signs it and the clients that
//! verify it. Every fetch of a release returns, with the file, a receipt signed by the
//! platform's Ed25519 key: which release, job, scope and SQL, the hash of the released rows,
//! who approved and when, and the hash of this very file.
//!
//! The signed bytes are the receipt's JSON text exactly as stored in the envelope (never a
//! re-serialization), prefixed by a context string so a receipt signature can never be taken
//! for an audit checkpoint's or the other way round ([`signed_message`]).

use serde::{Deserialize, Serialize};

/// Domain separation of receipt signatures.
const CONTEXT: &[u8] = b"erhai release receipt v1\0";

/// What a receipt states.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The release id.
    pub release: String,
    /// The job whose result it is.
    pub job: String,
    /// The tenant that submitted it.
    pub tenant: String,
    /// The release scope (differencing and pseudonyms).
    pub scope: String,
    /// SHA-256 of the SQL text.
    pub sql_sha256: String,
    /// SHA-256 of the released rows (canonical Arrow IPC stream).
    pub result_sha256: String,
    /// Rows released.
    pub rows: u64,
    /// Reviewers who approved, in order.
    pub reviewers: Vec<String>,
    /// Approval time (UTC, RFC 3339).
    pub approved_at: String,
    /// The file's format.
    pub file_format: String,
    /// SHA-256 of the file delivered with this receipt.
    pub file_sha256: String,
    /// Who fetched it.
    pub fetched_by: String,
    /// When (UTC, RFC 3339).
    pub fetched_at: String,
}

/// A receipt as delivered: the receipt's JSON text, the signature over it and the signing key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReceipt {
    /// The receipt, as JSON text; the signature covers exactly these bytes.
    pub receipt: String,
    /// Ed25519 signature, hex.
    pub signature: String,
    /// The signer's public key, hex (informational: verify against a key you trust).
    pub public_key: String,
}

/// The bytes a receipt's signature covers: the context string, then the receipt's JSON text.
pub fn signed_message(receipt_json: &str) -> Vec<u8> {
    let mut m = CONTEXT.to_vec();
    m.extend_from_slice(receipt_json.as_bytes());
    m
}
