//! Offline verification of a release receipt: a released file, its receipt and the platform's
//! public key are all it takes, no connection and none of the server's code. The receipt's
//! layout and the bytes its signature covers are the contract's ([`erhai_proto::receipt`]).

use erhai_proto::receipt::{Receipt, SignedReceipt, signed_message};
use ring::digest::{SHA256, digest};
use ring::signature::{ED25519, UnparsedPublicKey};

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
        .verify(&signed_message(&signed.receipt), &signature)
        .map_err(|_| VerifyError::BadSignature)?;
    let receipt: Receipt =
        serde_json::from_str(&signed.receipt).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let actual = hex::encode(digest(&SHA256, file));
    if actual != receipt.file_sha256 {
        return Err(VerifyError::FileMismatch {
            expected: receipt.file_sha256,
            actual,
        });
    }
    Ok(receipt)
}

/// What Excel and WPS need in front of a UTF-8 CSV to read it as UTF-8: without it they take
/// the locale's code page and garble Chinese text.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Which form of a release a verified file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// The bytes the platform released, as the receipt's digest covers them.
    Released,
    /// Those bytes behind a UTF-8 byte-order mark (`release fetch --excel`).
    Excel,
}

/// The CSV bytes `release fetch --excel` writes: the released bytes behind a BOM. The receipt
/// covers the released bytes, so that one receipt verifies either form.
pub fn excel_form(released: &[u8]) -> Vec<u8> {
    [UTF8_BOM, released].concat()
}

/// [`verify`], accepting the released bytes or their Excel form ([`excel_form`]); says which.
pub fn verify_either(
    envelope: &str,
    file: &[u8],
    public_key: &[u8],
) -> Result<(Receipt, Form), VerifyError> {
    match verify(envelope, file, public_key) {
        Ok(r) => Ok((r, Form::Released)),
        Err(first @ VerifyError::FileMismatch { .. }) => match file.strip_prefix(UTF8_BOM) {
            Some(released) => verify(envelope, released, public_key)
                .map(|r| (r, Form::Excel))
                .map_err(|_| first),
            None => Err(first),
        },
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn key() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key");
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key")
    }

    /// An envelope as the contract lays it out (the server's signer is not linked here).
    fn signed(key: &Ed25519KeyPair, file: &[u8]) -> String {
        let receipt = Receipt {
            release: "rel-1".into(),
            job: "job-1".into(),
            tenant: "t".into(),
            scope: "tenant/t".into(),
            sql_sha256: String::new(),
            result_sha256: String::new(),
            rows: 3,
            reviewers: vec!["r".into()],
            approved_at: "2026-11-27T12:00:00Z".into(),
            file_format: "csv".into(),
            file_sha256: hex::encode(digest(&SHA256, file)),
            fetched_by: "a".into(),
            fetched_at: "2026-11-27T12:01:00Z".into(),
        };
        let text = serde_json::to_string(&receipt).expect("json");
        let signature = key.sign(&signed_message(&text));
        serde_json::to_string_pretty(&SignedReceipt {
            receipt: text,
            signature: hex::encode(signature.as_ref()),
            public_key: hex::encode(key.public_key().as_ref()),
        })
        .expect("json")
    }

    #[test]
    fn a_receipt_verifies_and_any_change_is_caught() {
        let k = key();
        let file = b"district,n\nA,12\n";
        let env = signed(&k, file);
        let public = k.public_key().as_ref().to_vec();
        assert_eq!(verify(&env, file, &public).expect("verify").rows, 3);
        // A tampered file.
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

    #[test]
    fn the_excel_form_verifies_and_a_tampered_one_does_not() {
        let k = key();
        let file = b"district,n\n\xe5\x96\x9c\xe6\xb4\xb2,12\n";
        let env = signed(&k, file);
        let public = k.public_key().as_ref().to_vec();
        let excel = excel_form(file);
        assert!(excel.starts_with(UTF8_BOM));
        let (_, form) = verify_either(&env, &excel, &public).expect("verify");
        assert_eq!(form, Form::Excel);
        assert_eq!(
            verify_either(&env, file, &public).expect("verify").1,
            Form::Released
        );
        let mut tampered = excel.clone();
        if let Some(last) = tampered.last_mut() {
            *last = b'3';
        }
        assert!(matches!(
            verify_either(&env, &tampered, &public),
            Err(VerifyError::FileMismatch { .. })
        ));
    }
}
