//! What the binary carries: the detector's Lambda zip and the CloudFormation templates.

use base64::Engine;
use sha2::{Digest, Sha256};

/// The Lambda deployment package (`bootstrap` at its root), empty if the binary was built
/// without one.
pub static LAMBDA_ZIP: &[u8] = include_bytes!(env!("CTGUARD_BUNDLED_ZIP"));

/// A template by name, with its text.
pub struct Template {
    pub name: &'static str,
    pub body: &'static str,
}

/// Every template, in deployment order.
pub static TEMPLATES: &[Template] = &[
    Template { name: "ctguard-artifacts.yaml", body: include_str!("../../templates/ctguard-artifacts.yaml") },
    Template { name: "ctguard-state.yaml", body: include_str!("../../templates/ctguard-state.yaml") },
    Template { name: "ctguard-account.yaml", body: include_str!("../../templates/ctguard-account.yaml") },
    Template { name: "ctguard-region.yaml", body: include_str!("../../templates/ctguard-region.yaml") },
];

/// The body of the template `name` (e.g. `ctguard-region.yaml`).
pub fn template(name: &str) -> Option<&'static str> {
    TEMPLATES.iter().find(|t| t.name == name).map(|t| t.body)
}

/// Errors about the bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("this ctguard binary was built without the detector's Lambda zip; run `scripts/setup.sh` (it builds the zip with cargo-lambda, then this binary)")]
    Missing,
    #[error("the bundled Lambda zip is corrupt: {0}")]
    Corrupt(String),
}

/// The bundled zip, checked to hold a `bootstrap` entry.
pub fn lambda_zip() -> Result<&'static [u8], BundleError> {
    if LAMBDA_ZIP.is_empty() {
        return Err(BundleError::Missing);
    }
    if !zip_has_bootstrap(LAMBDA_ZIP) {
        return Err(BundleError::Corrupt("no `bootstrap` entry at the root".into()));
    }
    Ok(LAMBDA_ZIP)
}

/// Hex SHA-256 of the bundled zip: the S3 object key of the code, and the deployed version id.
pub fn code_hash(zip: &[u8]) -> String {
    let d = Sha256::digest(zip);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Base64 SHA-256 of the bundled zip: the `CodeSha256` Lambda reports for a function running it.
pub fn code_sha256_base64(zip: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(zip))
}

/// Finds a central-directory entry named exactly `bootstrap` (zip format, APPNOTE 4.3.12).
pub fn zip_has_bootstrap(zip: &[u8]) -> bool {
    const CDH: [u8; 4] = [0x50, 0x4b, 0x01, 0x02];
    let mut i = 0;
    while i + 46 <= zip.len() {
        if zip[i..i + 4] == CDH {
            let n = u16::from_le_bytes([zip[i + 28], zip[i + 29]]) as usize;
            if zip.get(i + 46..i + 46 + n) == Some(b"bootstrap".as_slice()) {
                return true;
            }
            i += 46 + n;
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_embedded() {
        assert_eq!(TEMPLATES.len(), 4);
        for t in TEMPLATES {
            assert!(t.body.contains("AWSTemplateFormatVersion"), "{}", t.name);
        }
    }

    #[test]
    fn zip_probe() {
        assert!(!zip_has_bootstrap(b""));
        let mut z = vec![0u8; 10];
        z.extend_from_slice(&[0x50, 0x4b, 0x01, 0x02]);
        let mut hdr = vec![0u8; 42];
        hdr[24] = 9; // name length at offset 28 from the signature
        z.extend_from_slice(&hdr);
        z.extend_from_slice(b"bootstrap");
        assert!(zip_has_bootstrap(&z));
        assert_eq!(code_hash(b"").len(), 64);
        // Lambda's CodeSha256 of an empty package (RFC 4648 standard alphabet, padded).
        assert_eq!(code_sha256_base64(b""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }
}
