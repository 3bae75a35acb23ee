//! Ed25519 signatures over a run's head: `sign` writes `<run>.sig` next to the chain,
//! `check_signature` checks it against a public key, `keygen` makes a key pair.

use super::canonical::canonical;
use super::chain::{Head, sync_dir};
use super::error::{AuditError, io};
use serde_json::Value as Json;
use std::path::Path;

/// The text a run's signature is made over.
fn signed_message(run_id: &str, head: &Head) -> String {
    format!("runbook-audit-v1:{run_id}:{}:{}", head.seq, head.hash)
}

/// Signs a run's head with an Ed25519 key (32 bytes, hex) and writes `<run>.sig` next to the
/// chain.
pub fn sign(dir: &Path, run_id: &str, head: &Head, key_hex: &str) -> Result<(), AuditError> {
    let bytes: [u8; 32] = hex::decode(key_hex.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            AuditError::Key("expected 64 hex digits (a 32-byte Ed25519 secret key)".to_owned())
        })?;
    let key = ed25519_dalek::SigningKey::from_bytes(&bytes);
    use ed25519_dalek::Signer;
    let sig = key.sign(signed_message(run_id, head).as_bytes());
    let doc = serde_json::json!({
        "run_id": run_id, "seq": head.seq, "head": head.hash,
        "public_key": hex::encode(key.verifying_key().to_bytes()),
        "signature": hex::encode(sig.to_bytes()),
    });
    let path = dir.join(format!("{run_id}.sig"));
    let tmp = dir.join(format!("{run_id}.sig.tmp"));
    std::fs::write(&tmp, canonical(&doc) + "\n").map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    sync_dir(dir);
    Ok(())
}

/// Checks `<run>.sig` against a public key (hex) and the chain's head.
pub fn check_signature(
    dir: &Path,
    run_id: &str,
    head: &Head,
    public_hex: &str,
) -> Result<(), String> {
    let text = std::fs::read_to_string(dir.join(format!("{run_id}.sig")))
        .map_err(|_| "the run is not signed".to_owned())?;
    let doc: Json =
        serde_json::from_str(&text).map_err(|_| "the signature file is damaged".to_owned())?;
    let pk: [u8; 32] = hex::decode(public_hex.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "the public key must be 64 hex digits".to_owned())?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&pk)
        .map_err(|_| "the public key is not a valid Ed25519 key".to_owned())?;
    let sig: [u8; 64] = doc["signature"]
        .as_str()
        .and_then(|s| hex::decode(s).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "the signature is damaged".to_owned())?;
    let signed = Head {
        seq: doc["seq"].as_i64().unwrap_or(-1),
        hash: doc["head"].as_str().unwrap_or_default().to_owned(),
    };
    use ed25519_dalek::Verifier;
    key.verify(
        signed_message(run_id, &signed).as_bytes(),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .map_err(|_| {
        "the signature does not match the key (wrong key, or the signed head was edited)".to_owned()
    })?;
    if signed != *head {
        return Err(format!(
            "the signature covers record {} but the log's head is record {}: records were added or changed after signing",
            signed.seq, head.seq
        ));
    }
    Ok(())
}

/// A new Ed25519 key pair, hex: (secret, public).
pub fn keygen() -> Result<(String, String), AuditError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| AuditError::Key(e.to_string()))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    Ok((
        hex::encode(seed),
        hex::encode(key.verifying_key().to_bytes()),
    ))
}
