//! Ed25519 signatures over a run's head: `sign` writes `<run>.sig` next to the chain,
//! `signed_head` checks it with a public key and says which head it covers, `keygen` makes a
//! key pair.

use super::canonical::canonical;
use super::chain::sync_dir;
use super::error::{AuditError, io};
use super::head::Head;
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
    // Synced before the rename: after a crash the name holds the whole signature or the one
    // before it, never an empty file.
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, (canonical(&doc) + "\n").as_bytes())?;
        f.sync_all()
    };
    write().map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    sync_dir(dir);
    Ok(())
}

/// The head `<run>.sig` signs, when its signature holds with `public` for this run: `None`
/// when the run has no signature file, an error in plain words when it is damaged, made with
/// another key, or over another run or head than it names.
pub fn signed_head(dir: &Path, run_id: &str, public: &[u8; 32]) -> Result<Option<Head>, String> {
    let text = match std::fs::read_to_string(dir.join(format!("{run_id}.sig"))) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("the signature file cannot be read: {e}")),
    };
    let doc: Json =
        serde_json::from_str(&text).map_err(|_| "the signature file is damaged".to_owned())?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(public)
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
    // The message names the run, so a signature copied from another run does not hold.
    key.verify(
        signed_message(run_id, &signed).as_bytes(),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .map_err(|_| {
        "the signature does not hold with the project's public key (made with another key, copied from another run, or its head was edited)".to_owned()
    })?;
    Ok(Some(signed))
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
