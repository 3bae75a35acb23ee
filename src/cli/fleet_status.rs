//! `runbook status fleet-...`: a fleet run and each of its targets with its run, status, exit
//! code and, for a target that failed, why: its run's error, or the last error its child
//! printed when the child never started a run.

use super::args::OutputFormat;
use crate::exit::Exit;
use crate::run::format_ms;
use crate::state::StateStore;
use crate::ui::Ui;

/// Prints the fleet `id` from `store`.
pub(super) async fn fleet_status(
    ui: &Ui,
    store: &StateStore,
    id: &str,
    format: OutputFormat,
) -> Exit {
    let (fleet, targets) = match (store.load_fleet(id).await, store.fleet_targets(id).await) {
        (Ok(Some(f)), Ok(t)) => (f, t),
        (Ok(None), _) => {
            ui.error(
                &format!("no fleet run `{id}` in the state store"),
                Some("`runbook runs` lists the runs; a fleet's id starts with `fleet-`"),
            );
            return Exit::Invalid;
        }
        (Err(e), _) | (_, Err(e)) => {
            ui.error(&e.to_string(), None);
            return Exit::Internal;
        }
    };
    // The fleet's own order of targets.
    let mut targets = targets;
    targets.sort_by_key(|t| fleet.targets.iter().position(|n| *n == t.target));
    // A target whose run started and failed says why in its run's record (a fleet's children
    // print nothing but errors before a run starts).
    for t in &mut targets {
        if t.reason.is_none()
            && t.status != "succeeded"
            && let Some(id) = &t.run_id
            && let Ok(Some(run)) = store.load_run(id).await
        {
            t.reason = run.error;
        }
    }
    match format {
        OutputFormat::Json => {
            ui.data(&crate::views::to_text(&crate::views::FleetDoc::new(
                &fleet, &targets,
            )));
        }
        OutputFormat::Text => {
            let mut out = format!(
                "fleet     {}\nplaybook  {}\nenv       {} (targets `{}`)\noperator  {}\nstatus    {}\nstarted   {}\n",
                fleet.id,
                fleet.playbook,
                fleet.env,
                fleet.selector,
                fleet.operator,
                fleet.status,
                format_ms(fleet.started_at)
            );
            let width = targets.iter().map(|t| t.target.len()).max().unwrap_or(0);
            for t in &targets {
                let run = t.run_id.as_deref().unwrap_or("no run");
                let code = t
                    .exit_code
                    .map_or(String::new(), |c| format!(" (exit {c})"));
                out.push_str(&format!(
                    "  {:<width$}  {}{code}  {run}\n",
                    t.target, t.status
                ));
                if let Some(reason) = &t.reason {
                    out.push_str(&format!("  {:<width$}  {reason}\n", ""));
                }
            }
            ui.data(out.trim_end());
        }
    }
    Exit::Ok
}
