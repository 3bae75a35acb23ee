//! `runbook audit`: verify, list, show, export and report a run's audit chain, and make a
//! signing key pair.

use super::args::{AuditCmd, ExportFormat, OutputFormat};
use super::audit_heads::{Heads, sig_policy};
use super::runtime::{open, runtime};
use crate::audit::{self, HeadCheck, SigPolicy, Signature, Verdict};
use crate::exec;
use crate::exit::Exit;
use crate::ui::Ui;
use crate::views::{self, AuditRunView, VerdictView};
use std::path::Path;

/// What every audit command reads: the state store (for recorded heads and run ids, or why it
/// cannot say), the audit folder (for the chains themselves), and how signatures are checked.
struct Chains<'a> {
    ui: &'a Ui,
    heads: &'a Heads,
    dir: &'a Path,
    /// `--chain-only`: a head the state store cannot give is accepted, truncation unchecked.
    chain_only: bool,
    policy: SigPolicy,
}

impl Chains<'_> {
    /// Verifies one run's chain against the head the state store recorded for it and its
    /// signature; `keep` keeps its records in the verdict (for the commands that show them).
    async fn verdict(&self, id: String, keep: bool) -> Verdict {
        let recorded = self.heads.recorded(&id, self.chain_only).await;
        audit::verify_run(self.dir, &id, recorded, &self.policy, keep)
    }

    async fn verdicts(&self, ids: Vec<String>, keep: bool) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        for id in ids {
            verdicts.push(self.verdict(id, keep).await);
        }
        verdicts
    }

    /// Resolves which runs an audit command is about: one (by id or unique prefix) or all.
    async fn runs(&self, run: Option<&str>, all: bool) -> Result<Vec<String>, Exit> {
        match (run, all) {
            (Some(id), _) => {
                // A whole run id: its chain, or the state store's run, without listing the
                // folder (run ids have one length, so a whole id prefixes no other).
                if self.exact(id).await {
                    return Ok(vec![id.to_owned()]);
                }
                let chains = audit::chains(self.dir);
                let mut matches: Vec<String> = match self.heads.store() {
                    Some(store) => store.find_runs(id).await.unwrap_or_default(),
                    None => Vec::new(),
                };
                for c in chains.iter().filter(|c| c.starts_with(id)) {
                    if !matches.contains(c) {
                        matches.push(c.clone());
                    }
                }
                self.one_match(id, matches)
            }
            (None, true) => {
                let mut ids: Vec<String> = match self.heads.store() {
                    Some(store) => store.list_runs(i64::MAX).await.unwrap_or_default(),
                    None => Vec::new(),
                }
                .into_iter()
                .map(|r| r.id)
                .collect();
                ids.reverse();
                let mut seen: std::collections::HashSet<String> = ids.iter().cloned().collect();
                for c in audit::chains(self.dir) {
                    if seen.insert(c.clone()) {
                        ids.push(c);
                    }
                }
                Ok(ids)
            }
            (None, false) => {
                self.ui.error("name a run, or pass --all", None);
                Err(Exit::Invalid)
            }
        }
    }

    /// Whether `id` is a whole run id: a chain file of that name, or a run the store knows.
    async fn exact(&self, id: &str) -> bool {
        if id.len() != crate::run::RUN_ID_LEN || id.contains(['/', '\\']) {
            return false;
        }
        if self.dir.join(format!("{id}.jsonl")).is_file() {
            return true;
        }
        match self.heads.store() {
            Some(store) => matches!(store.load_run(id).await, Ok(Some(_))),
            None => false,
        }
    }

    fn one_match(&self, id: &str, matches: Vec<String>) -> Result<Vec<String>, Exit> {
        match matches.len() {
            1 => Ok(matches),
            0 => {
                self.ui.error(
                    &format!("no run `{id}` in the state store or the audit folder"),
                    Some("`runbook audit list` lists the runs"),
                );
                Err(Exit::Invalid)
            }
            _ => {
                self.ui.error(
                    &format!("`{id}` names several runs: {}", matches.join(", ")),
                    Some("give more of the run id"),
                );
                Err(Exit::Invalid)
            }
        }
    }
}

pub(super) fn audit_cmd(ui: &Ui, root: &Path, cmd: AuditCmd) -> Exit {
    if let AuditCmd::Keygen { out } = &cmd {
        return keygen(ui, out);
    }
    if let AuditCmd::SinkSetup { writer } = &cmd {
        ui.data(&audit::sink_setup_sql(writer));
        return Exit::Ok;
    }
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    let Some(rt) = runtime(ui) else {
        return Exit::Internal;
    };
    let dir = exec::audit_dir(&project.root, project.config_def());
    let (state_flag, key, skip, chain_only) = match &cmd {
        AuditCmd::Verify {
            state,
            key,
            skip_signatures,
            chain_only,
            ..
        } => (state.clone(), key.clone(), *skip_signatures, *chain_only),
        AuditCmd::List { state, .. }
        | AuditCmd::Show { state, .. }
        | AuditCmd::Export { state, .. }
        | AuditCmd::Report { state, .. } => (state.clone(), None, false, false),
        AuditCmd::Keygen { .. } | AuditCmd::SinkSetup { .. } => (None, None, false, false),
    };
    let policy = match sig_policy(&project, key.as_deref(), skip) {
        Ok(p) => p,
        Err(e) => {
            ui.error(
                &e,
                Some("give the public key `runbook audit keygen` wrote (64 hex digits, or the file holding them)"),
            );
            return Exit::Invalid;
        }
    };
    rt.block_on(async {
        let heads = Heads::open(&project, state_flag.as_deref()).await;
        let chains = Chains {
            ui,
            heads: &heads,
            dir: &dir,
            chain_only,
            policy,
        };
        let exit = match cmd {
            AuditCmd::Verify {
                run, all, format, ..
            } => verify(&chains, run.as_deref(), all, format).await,
            AuditCmd::List { format, .. } => list(&chains, format).await,
            AuditCmd::Show { run, .. } => show(&chains, &run).await,
            AuditCmd::Export {
                run, all, format, ..
            } => export(&chains, run.as_deref(), all, format).await,
            AuditCmd::Report { run, output, .. } => report(&chains, &run, &output).await,
            AuditCmd::Keygen { .. } | AuditCmd::SinkSetup { .. } => Ok(Exit::Ok),
        };
        heads.close().await;
        exit.unwrap_or_else(|code| code)
    })
}

/// `audit keygen`: writes the secret key (mode 600, never over an existing file) and the
/// public key.
fn keygen(ui: &Ui, out: &Path) -> Exit {
    let (secret, public) = match audit::keygen() {
        Ok(pair) => pair,
        Err(e) => {
            ui.error(&e.to_string(), None);
            return Exit::Internal;
        }
    };
    let key = out.join("runbook-audit.key");
    let publ = out.join("runbook-audit.pub");
    let write_secret = || -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)?;
        f.write_all(format!("{secret}\n").as_bytes())?;
        std::fs::write(&publ, format!("{public}\n"))
    };
    match write_secret() {
        Ok(()) => {
            ui.note(&format!(
                "wrote {} (secret, mode 600) and {}\nput the secret in the variable named by `audit.signing_key_env`; commit the public key and name it as `audit.public_key` in runbook.yaml, so `runbook audit verify` checks every run's signature",
                key.display(),
                publ.display()
            ));
            Exit::Ok
        }
        Err(e) => {
            ui.error(
                &format!("cannot write the key files: {e}"),
                Some("an existing key is never overwritten; choose another --out"),
            );
            Exit::Invalid
        }
    }
}

/// `audit verify`: exit 6 when any chain fails, its head could not be checked (unless
/// `--chain-only`) or its signature could not be (unless `--skip-signatures`).
async fn verify(
    chains: &Chains<'_>,
    run: Option<&str>,
    all: bool,
    format: OutputFormat,
) -> Result<Exit, Exit> {
    let ui = chains.ui;
    let ids = chains.runs(run, all).await?;
    let verdicts = chains.verdicts(ids, false).await;
    let failed = verdicts.iter().filter(|v| v.failed()).count();
    match format {
        OutputFormat::Json => {
            let rows: Vec<VerdictView> = verdicts.iter().map(verdict_view).collect();
            ui.data(&views::to_text(&views::VerifyDoc::new(rows)));
        }
        OutputFormat::Text => {
            let mut text = String::new();
            for v in &verdicts {
                text.push_str(&format!("{}  {}\n", v.run_id, v.summary()));
            }
            ui.data(&text);
            if let Some(line) = guarantees(&verdicts, &chains.policy) {
                ui.note(&line);
            }
            if failed > 0 {
                ui.error(
                    &format!(
                        "{failed} of {} audit logs failed verification",
                        verdicts.len()
                    ),
                    Some(&failure_hint(&verdicts)),
                );
            } else {
                ui.note(&format!("{} audit logs verified", verdicts.len()));
            }
        }
    }
    Ok(if failed > 0 {
        Exit::AuditFailed
    } else {
        Exit::Ok
    })
}

/// What was checked and what not, said when something could not be: hashes, links, sequence
/// and sealing always; truncation only against the state store's heads; signatures only with
/// a public key.
fn guarantees(verdicts: &[Verdict], policy: &SigPolicy) -> Option<String> {
    let heads_unknown = verdicts
        .iter()
        .any(|v| matches!(v.head_check, HeadCheck::Unknown { .. }));
    let sigs_unchecked = matches!(policy, SigPolicy::Unchecked { .. });
    if !heads_unknown && !sigs_unchecked {
        return None;
    }
    let mut checked = vec!["hashes", "links", "sequence", "sealing"];
    let mut not = Vec::new();
    if heads_unknown {
        not.push("truncation (the state store could not give the recorded heads)");
    } else {
        checked.push("truncation");
    }
    match policy {
        SigPolicy::Key(_) => checked.push("signatures"),
        SigPolicy::Unchecked { .. } => not.push("signatures (no public key)"),
        SigPolicy::Off => not.push("signatures (the project does not sign its runs)"),
    }
    Some(format!(
        "checked: {}; not checked: {}",
        checked.join(", "),
        not.join(", ")
    ))
}

/// The hint of a failed verification: where the bad records are named, and what to do about
/// heads or signatures that could not be checked.
fn failure_hint(verdicts: &[Verdict]) -> String {
    let mut hint = vec!["the first bad record of each is named above".to_owned()];
    if verdicts.iter().any(|v| {
        matches!(
            v.head_check,
            HeadCheck::Unknown {
                accepted: false,
                ..
            }
        )
    }) {
        hint.push("without the state store a chain cut short looks complete: restore it or point --state at it, or pass --chain-only to accept verifying the chains alone (truncation not checked)".to_owned());
    }
    if verdicts.iter().any(|v| {
        matches!(
            v.signature,
            Signature::NotChecked {
                accepted: false,
                ..
            }
        )
    }) {
        hint.push("commit the public key `runbook audit keygen` wrote and name it as `audit.public_key` in runbook.yaml, or pass --key; --skip-signatures accepts signatures left unchecked".to_owned());
    }
    hint.join("; ")
}

fn verdict_view(v: &Verdict) -> VerdictView {
    VerdictView {
        run_id: v.run_id.clone(),
        records: v.records,
        head: v.head.clone(),
        verified: !v.failed(),
        torn: matches!(v.problem, Some(audit::Problem::Torn { .. })),
        first_bad_seq: v
            .problem
            .as_ref()
            .filter(|p| p.is_tampering())
            .map(|p| p.seq()),
        problem: v.problem.as_ref().map(|p| p.describe()),
        head_check: match &v.head_check {
            HeadCheck::Compared => "compared",
            HeadCheck::Refusal => "refusal",
            HeadCheck::Unknown {
                accepted: false, ..
            } => "unknown",
            HeadCheck::Unknown { accepted: true, .. } => "chain-only",
        }
        .to_owned(),
        head_unknown: match &v.head_check {
            HeadCheck::Unknown { why, .. } => Some(why.clone()),
            _ => None,
        },
        signature: v.signature.word().to_owned(),
        signature_detail: v.signature.describe(v.records),
    }
}

/// `audit list`: every run with a chain, from its first and last run-level records.
async fn list(chains: &Chains<'_>, format: OutputFormat) -> Result<Exit, Exit> {
    let ids = chains.runs(None, true).await?;
    let mut rows = Vec::new();
    for id in ids {
        let v = chains.verdict(id, true).await;
        let status = audit::run_status(&v.entries);
        rows.push(AuditRunView::new(
            &v.run_id,
            &v.entries,
            status,
            v.records,
            !v.failed(),
        ));
    }
    match format {
        OutputFormat::Json => chains
            .ui
            .data(&views::to_text(&views::AuditListDoc::new(rows))),
        OutputFormat::Text => chains.ui.data(&list_text(&rows)),
    }
    Ok(Exit::Ok)
}

fn list_text(rows: &[AuditRunView]) -> String {
    use crate::table::Align::{Left, Right};
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.run_id.clone(),
                r.playbook.clone(),
                r.environment.clone(),
                r.records.to_string(),
                if r.verified { "ok" } else { "FAILED" }.to_owned(),
                r.status.clone(),
            ]
        })
        .collect();
    crate::table::render(
        &["run", "playbook", "env", "records", "audit", "status"],
        &[Left, Left, Left, Right, Left, Left],
        &rows,
    )
}

/// `audit show`: one run's timeline.
async fn show(chains: &Chains<'_>, run: &str) -> Result<Exit, Exit> {
    let ids = chains.runs(Some(run), false).await?;
    let v = chains.verdict(ids[0].clone(), true).await;
    chains.ui.data(&audit::show(&v));
    Ok(if v.failed() {
        Exit::AuditFailed
    } else {
        Exit::Ok
    })
}

/// `audit export`: the records as JSON or CSV, with exit 6 when a chain failed.
async fn export(
    chains: &Chains<'_>,
    run: Option<&str>,
    all: bool,
    format: ExportFormat,
) -> Result<Exit, Exit> {
    let ui = chains.ui;
    let ids = chains.runs(run, all).await?;
    let verdicts = chains.verdicts(ids, true).await;
    match format {
        ExportFormat::Json => {
            let records: Vec<serde_json::Value> = verdicts
                .iter()
                .flat_map(|v| v.entries.iter().cloned().map(serde_json::Value::Object))
                .collect();
            ui.data(&serde_json::to_string_pretty(&records).unwrap_or_default());
        }
        ExportFormat::Csv => ui.data(&audit::csv(&verdicts)),
    }
    if verdicts.iter().any(|v| v.failed()) {
        ui.error(
            "some exported logs failed verification; `runbook audit verify` says where",
            None,
        );
        Ok(Exit::AuditFailed)
    } else {
        Ok(Exit::Ok)
    }
}

/// `audit report`: one self-contained HTML file.
async fn report(chains: &Chains<'_>, run: &str, output: &Path) -> Result<Exit, Exit> {
    let ids = chains.runs(Some(run), false).await?;
    let v = chains.verdict(ids[0].clone(), true).await;
    match std::fs::write(output, audit::html(&v)) {
        Ok(()) => {
            chains
                .ui
                .note(&format!("wrote {} ({})", output.display(), v.summary()));
            Ok(Exit::Ok)
        }
        Err(e) => {
            chains
                .ui
                .error(&format!("cannot write `{}`: {e}", output.display()), None);
            Ok(Exit::Invalid)
        }
    }
}
