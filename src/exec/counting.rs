//! Whether an approval counts, and why not: the one judge behind a gate's tally
//! (`gates.rs`, at run and at every resume) and what `runbook status` explains (`waiting.rs`).
//!
//! An approval counts only when it is in the run's audit chain (the state store is a cache: a
//! row there alone never counts), for this plan, unexpired, not the operator's own unless the
//! environment allows self-approval, from a listed approver of the gate; where the environment
//! requires signed approvals, also signed by a key listed among the project's approvers over
//! exactly this run, gate, decision, plan and database, within the expiry it names.

use crate::approval::{Statement, time, verify};
use crate::audit::ChainFacts;
use crate::gate::same_person;
use crate::run::Approval;
use crate::signers::Signers;
use std::time::Duration;

/// What an approval of one gate of one run is judged against.
pub(super) struct Judge<'a> {
    pub run_id: &'a str,
    pub gate: &'a str,
    /// The hash of the plan the run executes now.
    pub plan_hash: &'a str,
    pub operator: &'a str,
    pub self_approval: bool,
    /// Whether the environment requires signed approvals.
    pub signed: bool,
    /// The listed approvers, or why they could not be read.
    pub signers: &'a Result<Signers, String>,
    /// The gate's own list of approvers.
    pub gate_approvers: Option<&'a [String]>,
    pub expiry: Option<Duration>,
    pub now: i64,
}

/// One approval as judged: who it is from (for a signed one, the approver its key is listed
/// for) and, when it does not count, why.
pub(super) struct Judged {
    pub approval: Approval,
    pub who: String,
    pub void: Option<String>,
}

impl Judge<'_> {
    /// Every approval of the gate: those of the audit chain, then the state store's rows the
    /// chain does not hold (which never count). runbook writes each decision to both, chain
    /// first; one that the chain holds and the state store does not was appended to the chain
    /// by something else (or runbook stopped between the two writes: approving again mends it),
    /// and does not count either: a record hashed onto a waiting run's chain is no approval.
    pub fn judge_all(&self, chain: &ChainFacts, stored: &[Approval]) -> Vec<Judged> {
        let mine: Vec<&Approval> = chain
            .approvals
            .iter()
            .filter(|a| a.gate == self.gate)
            .collect();
        let mut out: Vec<Judged> = mine
            .iter()
            .map(|a| {
                let mut j = self.judge(chain, a);
                if j.void.is_none() && !stored.iter().any(|s| same_record(a, s)) {
                    j.void = Some(
                        "in the audit chain but not in the state store: not written by runbook approve (if runbook stopped between the two writes, approve again)"
                            .to_owned(),
                    );
                }
                j
            })
            .collect();
        for s in stored {
            if !mine.iter().any(|c| same_record(c, s)) {
                out.push(Judged {
                    approval: s.clone(),
                    who: s.actor.clone(),
                    void: Some(
                        "not in the run's audit chain (a state store row alone proves nothing)"
                            .to_owned(),
                    ),
                });
            }
        }
        out
    }

    /// One approval of the chain.
    fn judge(&self, chain: &ChainFacts, a: &Approval) -> Judged {
        let (who, void) = match self.verdict(chain, a) {
            Ok(who) => (who, None),
            Err((who, why)) => (who, Some(why)),
        };
        Judged {
            approval: a.clone(),
            who,
            void,
        }
    }

    /// Who the approval is from, or who it names and why it does not count.
    fn verdict(&self, chain: &ChainFacts, a: &Approval) -> Result<String, (String, String)> {
        let void = |why: String| (a.actor.clone(), why);
        // A cancellation (`runbook cancel`) only ends the run, so it counts from anyone, the
        // operator included, unsigned and for any plan: what it needs is to be in the chain.
        if a.decision == "cancel" {
            return Ok(a.actor.clone());
        }
        if a.plan_hash != self.plan_hash {
            return Err(void("given for another plan".to_owned()));
        }
        if self
            .expiry
            .is_some_and(|e| self.now - a.at > e.as_millis() as i64)
        {
            return Err(void("expired".to_owned()));
        }
        let (who, key) = if self.signed {
            self.check_signature(chain, a).map_err(void)?
        } else {
            (a.actor.clone(), None)
        };
        self.check_person(chain, &who, key.as_deref())
            .map_err(|why| (who.clone(), why))?;
        Ok(who)
    }

    /// For a signed environment: the approver and key fingerprint a valid signature proves,
    /// or why the approval does not count.
    fn check_signature(
        &self,
        chain: &ChainFacts,
        a: &Approval,
    ) -> Result<(String, Option<String>), String> {
        let Some(signed) = &a.signed else {
            return Err(
                "unsigned, and this environment counts only approvals signed with a listed key"
                    .to_owned(),
            );
        };
        let signers = self
            .signers
            .as_ref()
            .map_err(|e| format!("the approvers cannot be read: {e}"))?;
        let signer =
            verify(signers, &signed.statement, &signed.signature).map_err(|e| e.describe())?;
        let st = Statement::parse(&signed.statement)
            .ok_or_else(|| "the signed text is not a runbook approval statement".to_owned())?;
        let target = chain.target_identity.as_deref().unwrap_or("none");
        if st.run != self.run_id {
            return Err(format!("signed over another run ({})", st.run));
        }
        if st.gate != self.gate {
            return Err(format!("signed over another gate (`{}`)", st.gate));
        }
        if st.decision != a.decision {
            return Err(format!(
                "signed as `{}` but recorded as `{}`",
                st.decision, a.decision
            ));
        }
        if st.plan != self.plan_hash {
            return Err("signed over another plan".to_owned());
        }
        if st.target != target {
            return Err(format!("signed over another database ({})", st.target));
        }
        if let Some(e) = st.expires
            && self.now > e
        {
            return Err(format!("expired at {}", time(e)));
        }
        Ok((
            signer.principal().to_owned(),
            Some(signer.fingerprint.clone()),
        ))
    }

    /// The person: not the operator (by name, and by key where the operator's is known) unless
    /// self-approval is allowed, and on the gate's list when it has one.
    fn check_person(&self, chain: &ChainFacts, who: &str, key: Option<&str>) -> Result<(), String> {
        let own_key = key.is_some() && key == chain.operator_key.as_deref();
        let own_name = same_person(who, self.operator)
            || chain
                .operator_principal
                .as_deref()
                .is_some_and(|p| same_person(who, p));
        if !self.self_approval && (own_key || own_name) {
            return Err(
                "self-approval: the operator's own, and this environment allows none".to_owned(),
            );
        }
        if let Some(list) = self.gate_approvers
            && !list.iter().any(|p| same_person(p, who))
        {
            return Err(format!("{who} is not a listed approver of this gate"));
        }
        Ok(())
    }
}

/// Whether a state store row is the record of a chain approval: the journal writes both from
/// one value, so every field is equal.
fn same_record(chain: &Approval, stored: &Approval) -> bool {
    chain.actor == stored.actor
        && chain.decision == stored.decision
        && chain.plan_hash == stored.plan_hash
        && chain.at == stored.at
        && chain.comment == stored.comment
        && chain.signed == stored.signed
}
