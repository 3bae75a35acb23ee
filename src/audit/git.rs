//! What git says of the files a run runs from: the commit (`git_commit`, in every record) and
//! whether the working tree differs from it (`git_state`, in `run_started`): a commit alone
//! would name HEAD even for a playbook nobody committed. Asked through `process` (git's
//! `rev-parse` and `status --porcelain`).

use crate::process;
use serde_json::{Value as Json, json};
use std::path::{Path, PathBuf};

/// The folder to ask git in about `file`: its parent, or `.` for a bare name.
fn folder_of(file: &Path) -> &Path {
    file.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Whether git could find a repository for `dir`: `GIT_DIR` is set, or `dir` or a folder above
/// it holds `.git` (a folder, or a file for a worktree or submodule). Outside one, git is not
/// started at all: a run outside a repository pays for no process.
fn in_repository(dir: &Path) -> bool {
    if std::env::var_os("GIT_DIR").is_some() {
        return true;
    }
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return true;
    };
    dir.ancestors().any(|d| d.join(".git").exists())
}

/// The git commit of the repository a file is in, if it is in one.
pub fn git_commit(file: &Path) -> Option<String> {
    if !in_repository(folder_of(file)) {
        return None;
    }
    let out = process::output_sync(&["git", "rev-parse", "HEAD"], folder_of(file)).ok()?;
    let text = out.stdout.trim().to_owned();
    (out.code == Some(0) && text.len() == 40).then_some(text)
}

/// `{"commit", "dirty"}` of the repository `file` is in; `None` outside a repository (or
/// without git). Dirty: a tracked file anywhere in the working tree has uncommitted changes
/// (staged or not), or one of `inputs` (the playbook, the migrations and seeds folders,
/// `runbook.yaml`) is untracked or ignored, so not in the commit, in whole or in part.
pub fn git_state(file: &Path, inputs: &[PathBuf]) -> Option<Json> {
    let dir = folder_of(file);
    if !in_repository(dir) {
        return None;
    }
    let top = process::output_sync(&["git", "rev-parse", "--show-toplevel"], dir).ok()?;
    if top.code != Some(0) {
        return None;
    }
    let top = PathBuf::from(top.stdout.trim_end_matches(['\n', '\r']));
    let status = process::output_sync(
        &[
            "git",
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--ignored=matching",
        ],
        dir,
    )
    .ok()?;
    if status.code != Some(0) {
        return None;
    }
    let inputs: Vec<PathBuf> = inputs
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let dirty = dirty(&status.stdout, &top, &inputs);
    Some(json!({"commit": git_commit(file), "dirty": dirty}))
}

/// Whether `git status --porcelain=v1 -z` output says the tree is dirty (see `git_state`).
fn dirty(porcelain: &str, top: &Path, inputs: &[PathBuf]) -> bool {
    for entry in porcelain.split('\0').filter(|e| !e.is_empty()) {
        // Every entry is `XY PATH`; a change to a tracked file (a rename's source path comes
        // after it) already decides.
        let (Some(xy), Some(path)) = (entry.get(..2), entry.get(3..)) else {
            return true;
        };
        if xy != "??" && xy != "!!" {
            return true;
        }
        let path = top.join(path.trim_end_matches('/'));
        if inputs
            .iter()
            .any(|i| i.starts_with(&path) || path.starts_with(i))
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::dirty;
    use std::path::{Path, PathBuf};

    #[test]
    fn tracked_changes_anywhere_and_untracked_inputs_are_dirty() {
        let top = Path::new("/p");
        let inputs = [
            PathBuf::from("/p/playbooks/deploy.yaml"),
            PathBuf::from("/p/migrations"),
        ];
        assert!(!dirty("", top, &inputs));
        assert!(dirty(" M src/other.rs\0", top, &inputs));
        assert!(dirty("A  new.txt\0", top, &inputs));
        // Untracked or ignored files outside the inputs (a database, runbook's own folder).
        assert!(!dirty("?? dev.db\0!! .runbook/\0", top, &inputs));
        assert!(dirty("?? playbooks/deploy.yaml\0", top, &inputs));
        assert!(dirty("?? migrations/sqlite/3_x.sql\0", top, &inputs));
        assert!(dirty("!! playbooks/\0", top, &inputs));
    }
}
