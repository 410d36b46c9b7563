//! Signing release receipts with the platform key. The receipt's layout and the bytes its
//! signature covers are the contract's (`erhai_proto::receipt`), so that a client verifies a
//! receipt offline without the server's code (`erhai_client::receipt::verify`).

use erhai_proto::receipt::{Receipt, SignedReceipt, signed_message};
use ring::digest::{SHA256, digest};
use ring::signature::{Ed25519KeyPair, KeyPair};

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest(&SHA256, bytes))
}

/// Signs `receipt` with the platform key; returns the envelope as JSON text.
pub fn sign(key: &Ed25519KeyPair, receipt: &Receipt) -> Result<String, serde_json::Error> {
    let text = serde_json::to_string(receipt)?;
    let signature = key.sign(&signed_message(&text));
    serde_json::to_string_pretty(&SignedReceipt {
        receipt: text,
        signature: hex::encode(signature.as_ref()),
        public_key: hex::encode(key.public_key().as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ED25519, UnparsedPublicKey};

    #[test]
    fn the_signature_covers_the_context_and_the_receipt_text_as_sent() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key");
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
        let receipt = Receipt {
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
            file_sha256: sha256_hex(b"district,n\nA,12\n"),
            fetched_by: "a".into(),
            fetched_at: "2026-11-27T12:01:00Z".into(),
        };
        let envelope: SignedReceipt =
            serde_json::from_str(&sign(&key, &receipt).expect("sign")).expect("envelope");
        assert_eq!(
            serde_json::from_str::<Receipt>(&envelope.receipt).expect("receipt"),
            receipt
        );
        assert_eq!(envelope.public_key, hex::encode(key.public_key().as_ref()));
        let signature = hex::decode(&envelope.signature).expect("hex");
        let public = UnparsedPublicKey::new(&ED25519, key.public_key().as_ref());
        public
            .verify(&signed_message(&envelope.receipt), &signature)
            .expect("signed over the context and the text");
        assert!(
            public
                .verify(envelope.receipt.as_bytes(), &signature)
                .is_err(),
            "a receipt signature must not verify without its context"
        );
    }
}
