//! What a new user installs around runbook: shell completions, the man page, the schemas that
//! `init` puts next to the project, and who runbook says the operator is.

use crate::support::{Project, Runbook, Target, repo};

#[test]
fn completions_load_in_bash_and_name_the_subcommands() {
    for (shell, marker) in [
        ("bash", "complete -F _runbook"),
        ("zsh", "#compdef runbook"),
        ("fish", "complete -c runbook"),
        ("elvish", "edit:completion:arg-completer[runbook]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = Runbook::new(&["completions", shell]).run();
        assert_eq!(out.code, 0, "{shell}: {}", out.combined());
        assert!(out.stdout.contains(marker), "{shell}: {}", out.stdout);
    }
    // bash itself loads the script and completes a subcommand from a prefix.
    let script = Runbook::new(&["completions", "bash"]).run().stdout;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("runbook.bash");
    std::fs::write(&file, script).unwrap();
    let probe = format!(
        "source {}; COMP_WORDS=(runbook resu); COMP_CWORD=1; _runbook runbook resu runbook; echo \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = std::process::Command::new("bash")
        .args(["--norc", "-c", &probe])
        .output()
        .expect("bash runs");
    let words = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        words.trim(),
        "resume",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = Runbook::new(&["completions", "tcsh"]).run();
    assert_eq!(bad.code, 2, "{}", bad.combined());
}

#[test]
fn the_man_page_is_roff_with_every_subcommand() {
    let out = Runbook::new(&["man"]).run();
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        out.stdout.starts_with(".ie \\n(.g .ds Aq"),
        "{}",
        &out.stdout[..200]
    );
    assert!(out.stdout.contains(".TH runbook 1"), "{}", out.stdout);
    for sub in [
        "validate", "plan", "run", "resume", "approve", "reject", "audit", "status",
    ] {
        assert!(
            out.stdout.contains(&format!("runbook\\-{sub}(1)")),
            "`{sub}` missing from SUBCOMMANDS:\n{}",
            out.stdout
        );
    }
    // One page per subcommand, written into a folder.
    let dir = tempfile::tempdir().unwrap();
    let out = Runbook::new(&["man", "--out", &dir.path().display().to_string()]).run();
    assert_eq!(out.code, 0, "{}", out.combined());
    for page in ["runbook.1", "runbook-plan.1", "runbook-audit-verify.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_default();
        assert!(text.contains(".SH NAME"), "{page}: {text}");
    }
    let plan = std::fs::read_to_string(dir.path().join("runbook-plan.1")).unwrap();
    assert!(plan.contains("offline"), "{plan}");
}

#[test]
fn init_writes_the_schemas_beside_the_project_with_relative_modelines() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("new-project");
    let out = Runbook::new(&["init", &p.display().to_string()]).run();
    assert_eq!(out.code, 0, "{}", out.combined());
    for (file, kind) in [
        ("runbook.yaml", "config"),
        ("playbooks/example.yaml", "playbook"),
    ] {
        let text = std::fs::read_to_string(p.join(file)).unwrap();
        let first = text.lines().next().unwrap();
        let rel = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{file}: {first}"));
        assert!(!rel.contains("://"), "{file}: {first}");
        let schema = p.join(file).parent().unwrap().join(rel);
        let written = std::fs::read_to_string(&schema)
            .unwrap_or_else(|e| panic!("{file}: {}: {e}", schema.display()));
        let shipped =
            std::fs::read_to_string(repo().join(format!("schemas/{kind}.schema.json"))).unwrap();
        assert_eq!(written, shipped, "{file}: {}", schema.display());
    }
}

/// With no USER, LOGNAME or RUNBOOK_ACTOR (cron, some containers), the operator is the login
/// name of the process's user, not a bare uid.
#[test]
fn the_operator_is_the_login_name_when_user_is_unset() {
    let who = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let who = String::from_utf8_lossy(&who.stdout).trim().to_owned();
    assert!(!who.is_empty());
    let p = Project::new(Target::sqlite);
    p.playbook(
        "hello",
        "name: hello\nsteps:\n  - id: hello\n    log: { message: hello }\n",
    );
    let out = Runbook::new(&["-C", &p.path().display().to_string(), "run", "hello"])
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("RUNBOOK_ACTOR")
        .run();
    assert_eq!(out.code, 0, "{}", out.combined());
    let runs = p.cmd(&["runs", "--format", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    assert_eq!(runs["runs"][0]["operator"], who.as_str(), "{}", runs);
}

/// On Linux (glibc) the binary is linked position-dependent (`build.rs`): a PIE is relocated
/// by the loader at every start, about 1 ms of every command here. `RUNBOOK_PIE=1` at build
/// time keeps the toolchain's PIE.
#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn the_binary_is_linked_position_dependent() {
    if std::env::var("RUNBOOK_PIE").is_ok_and(|v| !v.is_empty() && v != "0") {
        return;
    }
    let bytes = std::fs::read(env!("CARGO_BIN_EXE_runbook")).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF");
    // e_type, little-endian: 2 is ET_EXEC, 3 is ET_DYN (a PIE).
    assert_eq!(u16::from_le_bytes([bytes[16], bytes[17]]), 2, "not ET_EXEC");
}
