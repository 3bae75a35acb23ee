//! `runbook completions SHELL` and `runbook man`: generated from the same clap tree as
//! `--help`, so they never drift from it.

use super::args::Cli;
use crate::exit::Exit;
use crate::ui::Ui;
use clap::CommandFactory;
use std::path::Path;

pub(super) fn completions(ui: &Ui, shell: clap_complete::Shell) -> Exit {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "runbook", &mut buf);
    ui.data(&String::from_utf8_lossy(&buf));
    Exit::Ok
}

/// The root page on stdout, or every (visible) command's page written into `out`.
pub(super) fn man(ui: &Ui, out: Option<&Path>) -> Exit {
    let cmd = Cli::command();
    let Some(dir) = out else {
        let mut buf = Vec::new();
        if let Err(e) = clap_mangen::Man::new(cmd).render(&mut buf) {
            ui.error(&format!("cannot render the man page: {e}"), None);
            return Exit::Internal;
        }
        ui.data(&String::from_utf8_lossy(&buf));
        return Exit::Ok;
    };
    let written = std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(cmd, dir));
    match written {
        Ok(()) => {
            ui.note(&format!("wrote the man pages into {}", dir.display()));
            Exit::Ok
        }
        Err(e) => {
            ui.error(
                &format!("cannot write the man pages into `{}`: {e}", dir.display()),
                Some("name a folder you may write to with --out"),
            );
            Exit::Invalid
        }
    }
}
