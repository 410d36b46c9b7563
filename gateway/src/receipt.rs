//! Signed release receipts. Every fetch of a release returns, with the file, a receipt that the
//! platform's Ed25519 key signs: which release, job, scope and SQL, the hash of the released
//! rows, who approved and when, and the hash of this very file. Anyone holding the platform's
//! public key can check a file and its receipt offline ([`verify`]).
//!
//! The signed bytes are the receipt's JSON text exactly as stored in the envelope (never a
//! re-serialization), prefixed by a context string so a receipt signature can never be taken
//! for an audit checkpoint's or the other way round.

use ring::digest::{SHA256, digest};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
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

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest(&SHA256, bytes))
}

fn message(receipt_json: &str) -> Vec<u8> {
    let mut m = CONTEXT.to_vec();
    m.extend_from_slice(receipt_json.as_bytes());
    m
}

/// Signs `receipt` with the platform key; returns the envelope as JSON text.
pub fn sign(key: &Ed25519KeyPair, receipt: &Receipt) -> Result<String, serde_json::Error> {
    let text = serde_json::to_string(receipt)?;
    let signature = key.sign(&message(&text));
    serde_json::to_string_pretty(&SignedReceipt {
        receipt: text,
        signature: hex::encode(signature.as_ref()),
        public_key: hex::encode(key.public_key().as_ref()),
    })
}

/// Why a receipt or file does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// Not a receipt envelope.
    #[error("not an erhai release receipt: {0}")]
    Malformed(String),
    /// The signature does not verify under the given key.
    #[error(
        "the receipt's signature does not verify under the platform key: the receipt was altered or signed by another key"
    )]
    BadSignature,
    /// The file is not the one the receipt covers.
    #[error(
        "the file's SHA-256 is {actual}, the receipt covers {expected}: the file was altered or is another file"
    )]
    FileMismatch {
        /// From the receipt.
        expected: String,
        /// Of the file.
        actual: String,
    },
}

/// Checks `envelope` (a receipt file's text) against `file` and the platform's raw Ed25519
/// `public_key`; returns what the receipt states.
pub fn verify(envelope: &str, file: &[u8], public_key: &[u8]) -> Result<Receipt, VerifyError> {
    let signed: SignedReceipt =
        serde_json::from_str(envelope).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let signature =
        hex::decode(signed.signature.trim()).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(&message(&signed.receipt), &signature)
        .map_err(|_| VerifyError::BadSignature)?;
    let receipt: Receipt =
        serde_json::from_str(&signed.receipt).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let actual = sha256_hex(file);
    if actual != receipt.file_sha256 {
        return Err(VerifyError::FileMismatch {
            expected: receipt.file_sha256,
            actual,
        });
    }
    Ok(receipt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    fn key() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key");
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key")
    }

    fn receipt(file: &[u8]) -> Receipt {
        Receipt {
            release: "rel-1".into(),
            job: "job-1".into(),
            tenant: "t".into(),
            scope: "tenant/t".into(),
            sql_sha256: sha256_hex(b"SELECT 1"),
            result_sha256: sha256_hex(b"rows"),
            rows: 3,
            reviewers: vec!["r".into()],
            approved_at: "2026-11-27T12:00:00Z".into(),
            file_format: "csv".into(),
            file_sha256: sha256_hex(file),
            fetched_by: "a".into(),
            fetched_at: "2026-11-27T12:01:00Z".into(),
        }
    }

    #[test]
    fn a_receipt_verifies_and_any_change_is_caught() {
        let k = key();
        let file = b"district,n\nA,12\n";
        let env = sign(&k, &receipt(file)).expect("sign");
        let public = k.public_key().as_ref().to_vec();
        assert_eq!(verify(&env, file, &public).expect("verify").rows, 3);
        // A changed file.
        assert!(matches!(
            verify(&env, b"district,n\nA,13\n", &public),
            Err(VerifyError::FileMismatch { .. })
        ));
        // A changed receipt (more rows claimed).
        let tampered = env.replace(r#"\"rows\":3"#, r#"\"rows\":4"#);
        assert_ne!(tampered, env);
        assert_eq!(
            verify(&tampered, file, &public),
            Err(VerifyError::BadSignature)
        );
        // Another key.
        assert_eq!(
            verify(&env, file, key().public_key().as_ref()),
            Err(VerifyError::BadSignature)
        );
        assert!(matches!(
            verify("{}", file, &public),
            Err(VerifyError::Malformed(_))
        ));
    }
}
