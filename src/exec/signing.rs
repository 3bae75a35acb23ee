//! Signing an approval where the environment requires it: the statement of this run, gate,
//! decision, plan hash, database and expiry, signed with the approver's listed key (a key file
//! or ssh-agent). Used by `runbook approve`/`reject` (`decide.rs`), by `run --approve`
//! (`start.rs`) and by an answer at the terminal (`gates.rs`).

use crate::approval::{NoKey, SigningKey, Statement, signing_key};
use crate::config::Protections;
use crate::playbook::ApprovalGate;
use crate::run::{self, Signed};
use crate::signers::Signers;
use std::path::Path;
use std::time::Duration;

/// How long an approval of `gate` counts in an environment: the gate's `expires`, else the
/// environment's `approval_expiry`.
pub(super) fn expiry_of(
    gate: Option<&ApprovalGate>,
    protections: &Protections,
) -> Option<Duration> {
    gate.and_then(|a| a.expires.as_ref())
        .or(protections.approval_expiry.as_ref())
        .and_then(|d| d.parse())
}

/// What is decided, for the statement.
pub(super) struct Decision<'a> {
    pub run_id: &'a str,
    pub gate: &'a str,
    /// `approve` or `reject`.
    pub decision: &'a str,
    pub plan_hash: &'a str,
    /// The run's database as its `run_started` recorded it.
    pub target: Option<&'a str>,
    pub expiry: Option<Duration>,
    pub comment: Option<&'a str>,
}

/// The statement of a decision made now.
pub(super) fn statement(d: &Decision<'_>) -> Statement {
    let now = run::now_ms();
    Statement {
        run: d.run_id.to_owned(),
        gate: d.gate.to_owned(),
        decision: d.decision.to_owned(),
        plan: d.plan_hash.to_owned(),
        target: d.target.unwrap_or("none").to_owned(),
        signed: now,
        expires: d.expiry.map(|e| now + e.as_millis() as i64),
        comment: d.comment.map(str::to_owned),
    }
}

/// The decision signed with `key`: the statement, its armored signature and the key.
pub(super) fn sign(key: &SigningKey, d: &Decision<'_>) -> Result<Signed, String> {
    let text = statement(d).text();
    let signature = key
        .sign(&text)
        .map_err(|e| format!("cannot sign the approval: {e}"))?;
    Ok(Signed {
        statement: text,
        signature,
        fingerprint: key.signer.fingerprint.clone(),
    })
}

/// Why nobody can sign in an environment that requires signatures (no approvers listed, or
/// their keys unreadable), in words for the approver.
pub(super) fn nobody_listed(env: &str, signers: &Result<Signers, String>) -> Option<String> {
    match signers {
        Err(e) => Some(format!(
            "environment `{env}` requires signed approvals, and the approvers' keys cannot be read: {e}"
        )),
        Ok(s) if s.is_empty() => Some(format!(
            "environment `{env}` requires signed approvals, and runbook.yaml lists no approver keys"
        )),
        Ok(_) => None,
    }
}

/// The hint that goes with `nobody_listed`.
pub(super) const LIST_HINT: &str = "add each approver's public key (from `ssh-add -L` or https://github.com/USER.keys) to the file that `approvers: { allowed_signers: ... }` names in runbook.yaml, as `NAME ssh-ed25519 AAAA...`";

/// The approver of a decision in an environment that requires signatures: the listed key
/// found (`--key`, else ssh-agent), which must be listed for `--actor` when one is given (the
/// key decides who approves; a name typed is not proof). `RUNBOOK_ACTOR` and the OS user are
/// not consulted. Errors are the message and hint to show.
pub(super) fn approver_key(
    env: &str,
    signers: &Result<Signers, String>,
    key_file: Option<&Path>,
    actor: Option<&str>,
) -> Result<SigningKey, NoKey> {
    let signers = match signers {
        Ok(s) if !s.is_empty() => s,
        _ => {
            let why = nobody_listed(env, signers).unwrap_or_default();
            return Err(NoKey {
                message: format!("{why}; nobody can approve there yet"),
                hint: LIST_HINT.to_owned(),
            });
        }
    };
    let key = signing_key(signers, key_file, actor).map_err(|e| NoKey {
        message: format!(
            "environment `{env}` requires signed approvals: {}",
            e.message
        ),
        hint: e.hint,
    })?;
    if let Some(actor) = actor
        && !key
            .signer
            .principals
            .iter()
            .any(|p| crate::gate::same_person(p, actor))
    {
        return Err(NoKey {
            message: format!(
                "`--actor {actor}` is refused: in environment `{env}` the approver is whom the signing key is listed for, and {} is listed for {}",
                key.signer.fingerprint,
                key.signer.principals.join(", ")
            ),
            hint: format!("leave out --actor, or sign with {actor}'s own key"),
        });
    }
    Ok(key)
}
