//! A `runbook.yaml` that exists but is not a readable regular file stops every command: a
//! folder, a dangling link, a link loop, a pipe or an unreadable file under that name would
//! otherwise run with none of the protections the config holds.

use crate::support::{Output, Runbook};
use std::os::unix::fs::symlink;
use std::path::Path;

const PLAYBOOK: &str =
    "name: note\nsteps:\n  - id: make\n    sql: { query: \"CREATE TABLE ran (x INTEGER)\" }\n";

const CONFIG: &str = "environments:\n  dev:\n    target: { sqlite: dev.db }\n    allow_target_override: true\n    protections: { self_approval: true }\n";

/// A project with one playbook; `config` makes what stands at `runbook.yaml`.
fn project(config: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("playbooks")).unwrap();
    std::fs::write(dir.path().join("playbooks/note.yaml"), PLAYBOOK).unwrap();
    config(&dir.path().join("runbook.yaml"));
    dir
}

fn runbook(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["-C", dir.to_str().unwrap()];
    all.extend(args);
    Runbook::new(&all).run()
}

/// Every command that reads the project refuses, names the file and says what to do, and
/// the run leaves no database behind.
fn refused(dir: &Path, says: &str) {
    let db = dir.join("out.db");
    let target = format!("sqlite:{}", db.display());
    let run = runbook(dir, &["run", "note", "--env", "dev", "--target", &target]);
    assert_eq!(run.code, 2, "{}", run.combined());
    assert!(run.stderr.contains(says), "{}", run.stderr);
    assert!(run.stderr.contains("runbook.yaml"), "{}", run.stderr);
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    assert!(!db.exists(), "the run went ahead:\n{}", run.combined());
    for args in [
        &["validate"][..],
        &["plan", "note", "--env", "dev"],
        &["list"],
    ] {
        let out = runbook(dir, args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.combined());
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
    // From a folder below the project, the broken config is found, not passed over.
    let sub = dir.join("playbooks");
    let out = runbook(&sub, &["run", "note", "--env", "dev", "--target", &target]);
    assert_eq!(out.code, 2, "{}", out.combined());
    assert!(out.stderr.contains(says), "{}", out.stderr);
    assert!(!db.exists());
}

#[test]
fn a_folder_named_runbook_yaml_is_refused() {
    let dir = project(|p| std::fs::create_dir(p).unwrap());
    refused(dir.path(), "is a folder, not a config file");
}

#[test]
fn a_dangling_symlink_named_runbook_yaml_is_refused() {
    let dir = project(|p| symlink("gone.yaml", p).unwrap());
    refused(
        dir.path(),
        "is a symbolic link to `gone.yaml`, which does not exist",
    );
}

#[test]
fn a_symlink_loop_named_runbook_yaml_is_refused() {
    let dir = project(|p| {
        symlink("other.yaml", p).unwrap();
        symlink("runbook.yaml", p.with_file_name("other.yaml")).unwrap();
    });
    refused(dir.path(), "loops and never reaches a file");
}

#[test]
fn a_pipe_named_runbook_yaml_is_refused_without_blocking_on_it() {
    let dir = project(|p| {
        let made = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap();
        assert!(made.success());
    });
    refused(dir.path(), "is not a regular file");
}

/// Permission bits do not stop root, which the tests run as; `/proc/self/mem` is a regular
/// file that no process can read from its start (the first page is never mapped).
#[test]
fn an_unreadable_runbook_yaml_is_refused() {
    let dir = project(|p| symlink("/proc/self/mem", p).unwrap());
    refused(dir.path(), "cannot read file");
}

#[test]
fn a_symlink_to_a_valid_config_is_followed() {
    let dir = project(|p| {
        let real = p.with_file_name("config");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("runbook.yaml"), CONFIG).unwrap();
        symlink("config/runbook.yaml", p).unwrap();
    });
    // The environment and its database exist only in the linked config.
    let out = runbook(dir.path(), &["run", "note", "--env", "dev"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(dir.path().join("dev.db").exists(), "{}", out.combined());
    let out = runbook(dir.path(), &["validate"]);
    assert_eq!(out.code, 0, "{}", out.combined());
}
