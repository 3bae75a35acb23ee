//! Signing a statement as `ssh-keygen -Y sign -n runbook-approval` does (SSHSIG, SHA-512,
//! armored), with a private key file or a key in ssh-agent, and verifying one against the
//! listed approvers' keys.

use super::agent::Agent;
use crate::signers::{NAMESPACE, Signer, Signers, fingerprint};
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};
use std::path::{Path, PathBuf};

/// A key that can sign approvals and the approver it is listed for.
pub struct SigningKey {
    pub signer: Signer,
    how: How,
}

enum How {
    File(Box<PrivateKey>),
    Agent(PathBuf),
}

/// Why no key can sign: what happened and what to do.
#[derive(Debug)]
pub struct NoKey {
    pub message: String,
    pub hint: String,
}

impl SigningKey {
    /// The armored SSHSIG signature of `text`.
    pub fn sign(&self, text: &str) -> Result<String, String> {
        let sig = match &self.how {
            How::File(key) => key
                .sign(NAMESPACE, HashAlg::Sha512, text.as_bytes())
                .map_err(|e| format!("cannot sign with the key file: {e}"))?,
            How::Agent(socket) => {
                let data = SshSig::signed_data(NAMESPACE, HashAlg::Sha512, text.as_bytes())
                    .map_err(|e| e.to_string())?;
                let signature = Agent::connect(socket)?.sign(&self.signer.key, &data)?;
                SshSig::new(
                    self.signer.key.key_data().clone(),
                    NAMESPACE,
                    HashAlg::Sha512,
                    signature,
                )
                .map_err(|e| e.to_string())?
            }
        };
        sig.to_pem(LineEnding::LF).map_err(|e| e.to_string())
    }
}

/// The key to sign with: the private key file `key_file` when given (it must be listed), else
/// the first key in ssh-agent that is listed, preferring one listed for `want`.
pub fn signing_key(
    signers: &Signers,
    key_file: Option<&Path>,
    want: Option<&str>,
) -> Result<SigningKey, NoKey> {
    if let Some(path) = key_file {
        let key = read_private(path)?;
        let public = key.public_key().clone();
        let Some(signer) = listed(signers, &public) else {
            return Err(NoKey {
                message: format!(
                    "the key {} ({}) is not listed among the approvers",
                    path.display(),
                    fingerprint(&public)
                ),
                hint: "add its public key (`ssh-keygen -y -f KEY`) to the approvers' allowed_signers file under your name, or sign with a listed key".to_owned(),
            });
        };
        return Ok(SigningKey {
            signer,
            how: How::File(Box::new(key)),
        });
    }
    let socket = agent_socket().ok_or_else(|| NoKey {
        message: "no SSH key to sign the approval with: ssh-agent is not running here (SSH_AUTH_SOCK is not set) and no `--key` was given".to_owned(),
        hint: HOW.to_owned(),
    })?;
    let keys = Agent::connect(&socket)
        .and_then(|mut a| a.identities())
        .map_err(|e| NoKey {
            message: e,
            hint: HOW.to_owned(),
        })?;
    let mut found: Vec<Signer> = keys.iter().filter_map(|k| listed(signers, k)).collect();
    if let Some(want) = want
        && let Some(i) = found.iter().position(|s| {
            s.principals
                .iter()
                .any(|p| crate::gate::same_person(p, want))
        })
    {
        found.swap(0, i);
    }
    match found.into_iter().next() {
        Some(signer) => Ok(SigningKey {
            signer,
            how: How::Agent(socket),
        }),
        None => Err(NoKey {
            message: format!(
                "none of the {} in ssh-agent is listed among the approvers",
                crate::fmt::plural(keys.len(), "key", "keys")
            ),
            hint: HOW.to_owned(),
        }),
    }
}

const HOW: &str = "load your listed key into the agent (`ssh-add ~/.ssh/id_ed25519`), or name it with `--key ~/.ssh/id_ed25519`; `ssh-add -L` shows what the agent holds";

/// The approver a key the operator holds is listed for (ssh-agent's keys, or `key_file`):
/// recorded at a run's start so that their own approval is known by its key. `None` when they
/// hold no listed key, or it cannot be read.
pub fn operator_key(signers: &Signers, key_file: Option<&Path>) -> Option<Signer> {
    if signers.is_empty() {
        return None;
    }
    if let Some(path) = key_file {
        return read_private(path)
            .ok()
            .and_then(|k| listed(signers, k.public_key()));
    }
    let mut agent = Agent::connect(&agent_socket()?).ok()?;
    agent
        .identities()
        .ok()?
        .iter()
        .find_map(|k| listed(signers, k))
}

/// Why a stored signature does not prove its approval, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unproven {
    Unreadable(String),
    OtherNamespace(String),
    NotListed(String),
    BadSignature(String),
}

impl Unproven {
    pub fn describe(&self) -> String {
        match self {
            Unproven::Unreadable(e) => format!("its signature cannot be read ({e})"),
            Unproven::OtherNamespace(n) => {
                format!("signed for the namespace `{n}`, not `{NAMESPACE}`")
            }
            Unproven::NotListed(fp) => {
                format!("signed by the key {fp}, which is not listed among the approvers")
            }
            Unproven::BadSignature(fp) => {
                format!("the signature by {fp} does not match the signed statement")
            }
        }
    }
}

/// The listed approver whose key made `signature` (armored) over exactly `text`.
pub fn verify<'a>(
    signers: &'a Signers,
    text: &str,
    signature: &str,
) -> Result<&'a Signer, Unproven> {
    let sig = SshSig::from_pem(signature).map_err(|e| Unproven::Unreadable(e.to_string()))?;
    if sig.namespace() != NAMESPACE {
        return Err(Unproven::OtherNamespace(sig.namespace().to_owned()));
    }
    let public = PublicKey::from(sig.public_key().clone());
    let fp = fingerprint(&public);
    let signer = signers
        .by_fingerprint(&fp)
        .ok_or_else(|| Unproven::NotListed(fp.clone()))?;
    signer
        .key
        .verify(NAMESPACE, text.as_bytes(), &sig)
        .map_err(|_| Unproven::BadSignature(fp))?;
    Ok(signer)
}

/// The listed approver of a public key.
fn listed(signers: &Signers, key: &PublicKey) -> Option<Signer> {
    signers.by_fingerprint(&fingerprint(key)).cloned()
}

/// `SSH_AUTH_SOCK`, when set.
fn agent_socket() -> Option<PathBuf> {
    std::env::var_os("SSH_AUTH_SOCK")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A private key file, unencrypted (runbook does not ask for passphrases: an encrypted key
/// belongs in ssh-agent).
fn read_private(path: &Path) -> Result<PrivateKey, NoKey> {
    let text = std::fs::read_to_string(path).map_err(|e| NoKey {
        message: format!("cannot read the key {}: {e}", path.display()),
        hint: "name a private key file, like `--key ~/.ssh/id_ed25519`".to_owned(),
    })?;
    let key = PrivateKey::from_openssh(&text).map_err(|e| NoKey {
        message: format!("{} is not an OpenSSH private key: {e}", path.display()),
        hint: "name the private key (not the `.pub` file), in the format `ssh-keygen` writes; convert an old PEM key with `ssh-keygen -p -f KEY`".to_owned(),
    })?;
    if key.is_encrypted() {
        return Err(NoKey {
            message: format!(
                "the key {} is protected by a passphrase, which runbook does not ask for",
                path.display()
            ),
            hint: format!(
                "load it into ssh-agent (`ssh-add {}`) and approve without `--key`",
                path.display()
            ),
        });
    }
    Ok(key)
}
