//! `shell`: a process from an argv list (no shell involved), or `sh -c` when the step says
//! `script:` explicitly.

use crate::exec::{ActionCtx, StepError, StepResult, cap};
use crate::playbook::ShellAction;
use crate::process::{self, ProcessError, ProcessSpec};
use serde_json::{Map, Value as Json, json};

pub async fn run(a: &ShellAction, ctx: &mut ActionCtx<'_>) -> StepResult {
    let argv = match (&a.argv, &a.script) {
        (Some(argv), _) => argv.clone(),
        (None, Some(script)) => vec!["sh".to_owned(), "-c".to_owned(), script.clone()],
        (None, None) => {
            return Err(StepError::Failed(
                "`shell` needs `argv` or `script`".to_owned(),
            ));
        }
    };
    let mut env = a.env.clone();
    env.insert("RUNBOOK_RUN_ID".to_owned(), ctx.run_id.to_owned());
    env.insert("RUNBOOK_STEP".to_owned(), ctx.step_id.to_owned());
    let spec = ProcessSpec {
        argv,
        cwd: match &a.cwd {
            Some(dir) => ctx.root.join(dir),
            None => ctx.root.to_path_buf(),
        },
        env,
        timeout: ctx.timeout,
    };
    let out = match process::run(&spec, &mut ctx.cancel).await {
        Ok(out) => out,
        Err(ProcessError::Interrupted) => return Err(StepError::Interrupted),
        Err(e) => return Err(StepError::Failed(ctx.redactor.redact(&e.to_string()))),
    };
    let expected = a.expect_exit.clone().unwrap_or_else(|| vec![0]);
    let stdout = cap(&out.stdout);
    let stderr = cap(&out.stderr);
    let ok = out.code.is_some_and(|c| expected.contains(&c));
    if !ok {
        let how = match out.code {
            Some(c) => format!("exited with code {c}"),
            None => "was killed by a signal".to_owned(),
        };
        let tail: Vec<&str> = out
            .stderr
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let detail = if tail.is_empty() {
            String::new()
        } else {
            format!(": {}", tail.join(" | "))
        };
        return Err(StepError::Failed(
            ctx.redactor
                .redact(&format!("`{}` {how}{detail}", spec.argv[0])),
        ));
    }
    let mut outputs = Map::new();
    outputs.insert(
        "json".to_owned(),
        serde_json::from_str::<Json>(out.stdout.trim()).unwrap_or(Json::Null),
    );
    outputs.insert("stdout".to_owned(), json!(stdout.trim_end()));
    outputs.insert("stderr".to_owned(), json!(stderr.trim_end()));
    outputs.insert("exit_code".to_owned(), json!(out.code));
    Ok(outputs)
}
