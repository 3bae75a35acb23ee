//! The Ed25519 public key that verifies run signatures (`audit.public_key` in runbook.yaml, or
//! `audit verify --key`): its text form, 64 hex digits as `runbook audit keygen` writes it, read
//! from a file relative to the project. Below `audit` and `validate`, which both read it.

use std::path::{Path, PathBuf};

/// Parses a public key's text: 64 hex digits (surrounding blanks ignored) that make a valid
/// Ed25519 point. The error says what is wrong in plain words.
pub fn parse(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let bytes: [u8; 32] = hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            format!(
                "expected 64 hex digits (an Ed25519 public key from `runbook audit keygen`), found {}",
                if text.is_empty() {
                    "nothing".to_owned()
                } else {
                    crate::fmt::plural(text.chars().count(), "character", "characters")
                }
            )
        })?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|_| "the 64 hex digits are not a valid Ed25519 public key".to_owned())?;
    Ok(bytes)
}

/// Where a key file named in the config lives: relative to the project root.
pub fn path(root: &Path, file: &str) -> PathBuf {
    root.join(file)
}

/// Reads and parses a key file.
pub fn read(path: &Path) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("`{}`: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keygen_key_parses_and_anything_else_is_named() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let hex = hex::encode(key.verifying_key().to_bytes());
        assert_eq!(
            parse(&format!("{hex}\n")).unwrap(),
            key.verifying_key().to_bytes()
        );
        assert!(parse("").unwrap_err().contains("found nothing"));
        assert!(parse("abc").unwrap_err().contains("3 characters"));
        assert!(
            parse(&"zz".repeat(32))
                .unwrap_err()
                .contains("64 hex digits")
        );
    }
}
