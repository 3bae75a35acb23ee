//! `runbook plan`: the offline plan, and the connected part that only the database knows.

use super::args::{OutputFormat, PlanArgs};
use super::runtime::{load, open, runtime};
use crate::exec;
use crate::exit::Exit;
use crate::plan::{self, PlanRequest};
use crate::project::{self, Project};
use crate::ui::Ui;
use std::path::Path;

pub(super) fn plan_cmd(ui: &Ui, root: &Path, args: &PlanArgs) -> Exit {
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    let Some(playbook) = load(ui, &project, &args.playbook) else {
        return Exit::Invalid;
    };
    let req = PlanRequest {
        env: &args.env,
        vars: &args.vars,
        target_override: args.target.as_deref(),
        inputs: project.input_digests(),
    };
    match plan::build(&playbook, project.config_def(), &req) {
        Ok(mut plan) => {
            // The offline plan is complete on its own; a connected plan adds what only the
            // database knows, through a read-only connection (execute-phase code).
            let live = if args.offline {
                exec::live::offline(&playbook, &project.root, &project.migrations_dir())
            } else {
                match live_part(ui, &project, &playbook, &plan, args) {
                    Ok(l) => l,
                    Err(code) => return code,
                }
            };
            if let Some(l) = live.as_ref().filter(|_| !args.offline) {
                plan.seal(l.identity.as_deref());
            }
            print_plan(ui, &plan, live.as_ref(), args.format);
            Exit::Ok
        }
        Err(diags) => {
            for d in &diags {
                ui.error(&d.message, d.hint.as_deref());
            }
            Exit::Invalid
        }
    }
}

fn print_plan(ui: &Ui, plan: &plan::Plan, live: Option<&exec::live::Live>, format: OutputFormat) {
    match format {
        OutputFormat::Text => {
            let mut text = plan::render_text(plan);
            if let Some(l) = live {
                text.push_str(&l.text);
            }
            ui.data(&text)
        }
        OutputFormat::Json => {
            let doc = crate::views::PlanDoc::new(plan, live.map(|l| l.json.clone()));
            ui.data(&crate::views::to_text(&doc))
        }
    }
}

/// Inspects the target through a read-only connection; `None` when the environment has no
/// target (the plan stays offline).
fn live_part(
    ui: &Ui,
    project: &Project,
    playbook: &project::Playbook,
    plan: &plan::Plan,
    args: &PlanArgs,
) -> Result<Option<exec::live::Live>, Exit> {
    let (env, target) = (args.env.as_str(), args.target.as_deref());
    let config = project.config_def();
    let spec = match exec::target_spec(&project.root, config, env, target) {
        Ok(Some(t)) => t,
        Ok(None) => {
            ui.note("no target for this environment: the plan is offline");
            return Ok(None);
        }
        Err(e) => {
            ui.error(
                &e,
                Some("set the variable, pass --target, or plan with --offline"),
            );
            return Err(Exit::Invalid);
        }
    };
    let protected = config
        .and_then(|c| c.environments.get(env))
        .is_some_and(|e| e.protections.is_protected());
    let vars = config
        .and_then(|c| c.environments.get(env))
        .map(|e| serde_json::json!(e.vars))
        .unwrap_or(serde_json::json!({}));
    let ctx = serde_json::json!({"params": plan.params, "env": {"name": env, "target": plan.target, "protected": protected}, "vars": vars});
    let Some(rt) = runtime(ui) else {
        return Err(Exit::Internal);
    };
    let migrations = project.migrations_dir();
    match rt.block_on(exec::live::inspect(
        playbook,
        &spec,
        &project.root,
        &migrations,
        protected,
        args.rehearse,
        &ctx,
    )) {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.is_environment() => {
            ui.error(
                &crate::redact::global().redact(&format!(
                    "cannot connect to {} for a connected plan: {e}",
                    spec.describe()
                )),
                Some(&format!(
                    "{}; or plan with --offline to see the plan without the database",
                    e.hint.unwrap_or_default()
                )),
            );
            Err(Exit::Environment)
        }
        Err(e) => {
            ui.error(
                &crate::redact::global().redact(&format!(
                    "cannot connect to {} for a connected plan: {e}",
                    spec.describe()
                )),
                Some("plan with --offline to see the plan without the database"),
            );
            Err(Exit::Invalid)
        }
    }
}
