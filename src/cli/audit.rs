//! `runbook audit`: verify, list, show, export and report a run's audit chain, and make a
//! signing key pair.

use super::args::{AuditCmd, ExportFormat, OutputFormat};
use super::runtime::{open, open_state, runtime};
use crate::audit::{self, Verdict};
use crate::exec;
use crate::exit::Exit;
use crate::state::StateStore;
use crate::ui::Ui;
use std::path::Path;

/// What every audit command reads: the state store (for recorded heads and run ids) and the
/// audit folder (for the chains themselves).
struct Chains<'a> {
    ui: &'a Ui,
    store: &'a StateStore,
    dir: &'a Path,
}

impl Chains<'_> {
    /// Verifies one run's chain against the head the state store recorded for it.
    async fn verdict(&self, id: String, key: Option<&str>) -> Verdict {
        let head = self.store.audit_head(&id).await.ok().flatten();
        audit::verify_run(self.dir, &id, head.as_ref(), key)
    }

    async fn verdicts(&self, ids: Vec<String>, key: Option<&str>) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        for id in ids {
            verdicts.push(self.verdict(id, key).await);
        }
        verdicts
    }

    /// Resolves which runs an audit command is about: one (by id or unique prefix) or all.
    async fn runs(&self, run: Option<&str>, all: bool) -> Result<Vec<String>, Exit> {
        let chains = audit::chains(self.dir);
        match (run, all) {
            (Some(id), _) => {
                let mut matches: Vec<String> = self.store.find_runs(id).await.unwrap_or_default();
                for c in chains.iter().filter(|c| c.starts_with(id)) {
                    if !matches.contains(c) {
                        matches.push(c.clone());
                    }
                }
                self.one_match(id, matches)
            }
            (None, true) => {
                let mut ids: Vec<String> = self
                    .store
                    .list_runs(i64::MAX)
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| r.id)
                    .collect();
                ids.reverse();
                for c in chains {
                    if !ids.contains(&c) {
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
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    let Some(rt) = runtime(ui) else {
        return Exit::Internal;
    };
    let dir = exec::audit_dir(&project.root, project.config_def());
    rt.block_on(async {
        let state_flag = match &cmd {
            AuditCmd::Verify { state, .. }
            | AuditCmd::List { state, .. }
            | AuditCmd::Show { state, .. }
            | AuditCmd::Export { state, .. }
            | AuditCmd::Report { state, .. } => state.clone(),
            AuditCmd::Keygen { .. } => None,
        };
        let Some(store) = open_state(ui, &project, state_flag.as_deref()).await else {
            return Exit::Internal;
        };
        let chains = Chains {
            ui,
            store: &store,
            dir: &dir,
        };
        let exit = match cmd {
            AuditCmd::Verify {
                run,
                all,
                key,
                format,
                ..
            } => verify(&chains, run.as_deref(), all, key, format).await,
            AuditCmd::List { format, .. } => list(&chains, format).await,
            AuditCmd::Show { run, .. } => show(&chains, &run).await,
            AuditCmd::Export {
                run, all, format, ..
            } => export(&chains, run.as_deref(), all, format).await,
            AuditCmd::Report { run, output, .. } => report(&chains, &run, &output).await,
            AuditCmd::Keygen { .. } => Ok(Exit::Ok),
        };
        store.close().await;
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
                "wrote {} (secret, mode 600) and {}\nput the secret in the variable named by `audit.signing_key_env`; auditors verify with `runbook audit verify --all --key {}`",
                key.display(),
                publ.display(),
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

/// `audit verify`: exit 6 when any chain fails.
async fn verify(
    chains: &Chains<'_>,
    run: Option<&str>,
    all: bool,
    key: Option<String>,
    format: OutputFormat,
) -> Result<Exit, Exit> {
    let ui = chains.ui;
    // The key is a file holding it, or the hex key itself.
    let key = key.map(|k| {
        std::fs::read_to_string(&k)
            .map(|t| t.trim().to_owned())
            .unwrap_or(k)
    });
    let ids = chains.runs(run, all).await?;
    let verdicts = chains.verdicts(ids, key.as_deref()).await;
    let failed = verdicts.iter().filter(|v| v.failed()).count();
    match format {
        OutputFormat::Json => {
            let rows: Vec<serde_json::Value> = verdicts.iter().map(verdict_json).collect();
            ui.data(&serde_json::to_string_pretty(&rows).unwrap_or_default());
        }
        OutputFormat::Text => {
            let mut text = String::new();
            for v in &verdicts {
                text.push_str(&format!("{}  {}\n", v.run_id, v.summary()));
            }
            ui.data(&text);
            if failed > 0 {
                ui.error(
                    &format!(
                        "{failed} of {} audit logs failed verification",
                        verdicts.len()
                    ),
                    Some("the first bad record of each is named above"),
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

fn verdict_json(v: &Verdict) -> serde_json::Value {
    serde_json::json!({
        "run_id": v.run_id, "records": v.records, "head": v.head, "verified": !v.failed(),
        "torn": matches!(v.problem, Some(audit::Problem::Torn { .. })),
        "first_bad_seq": v.problem.as_ref().filter(|p| p.is_tampering()).map(|p| p.seq()),
        "problem": v.problem.as_ref().map(|p| p.describe()),
        "signature": v.signature.as_ref().map(|s| s.as_ref().map(|_| "valid").unwrap_or_else(|e| e.as_str())),
    })
}

/// `audit list`: every run with a chain, from its header records.
async fn list(chains: &Chains<'_>, format: OutputFormat) -> Result<Exit, Exit> {
    let ids = chains.runs(None, true).await?;
    let mut rows = Vec::new();
    for id in ids {
        let v = chains.verdict(id, None).await;
        let head = audit::header(&v.entries);
        let get = |k: &str| {
            head.iter()
                .find(|(h, _)| h == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        rows.push(serde_json::json!({
            "run_id": v.run_id, "records": v.records, "verified": !v.failed(),
            "playbook": get("playbook").split(' ').next().unwrap_or_default(), "environment": get("environment"),
            "operator": get("operator"), "started": get("started"), "status": get("status"),
        }));
    }
    match format {
        OutputFormat::Json => chains
            .ui
            .data(&serde_json::to_string_pretty(&rows).unwrap_or_default()),
        OutputFormat::Text => chains.ui.data(&list_text(&rows)),
    }
    Ok(Exit::Ok)
}

fn list_text(rows: &[serde_json::Value]) -> String {
    let mut text = format!(
        "{:<23}  {:<16}  {:<11}  {:>7}  {:<8}  {}\n",
        "run", "playbook", "env", "records", "audit", "status"
    );
    for r in rows {
        text.push_str(&format!(
            "{:<23}  {:<16}  {:<11}  {:>7}  {:<8}  {}\n",
            r["run_id"].as_str().unwrap_or_default(),
            r["playbook"].as_str().unwrap_or_default(),
            r["environment"].as_str().unwrap_or_default(),
            r["records"].as_u64().unwrap_or(0),
            if r["verified"] == true {
                "ok"
            } else {
                "FAILED"
            },
            r["status"].as_str().unwrap_or_default()
        ));
    }
    text
}

/// `audit show`: one run's timeline.
async fn show(chains: &Chains<'_>, run: &str) -> Result<Exit, Exit> {
    let ids = chains.runs(Some(run), false).await?;
    let v = chains.verdict(ids[0].clone(), None).await;
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
    let verdicts = chains.verdicts(ids, None).await;
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
    let v = chains.verdict(ids[0].clone(), None).await;
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
