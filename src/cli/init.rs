//! `runbook init`: scaffolds a new project and says what to try next.

use crate::exit::Exit;
use crate::ui::Ui;
use std::path::Path;

pub(super) fn init(ui: &Ui, dir: &Path) -> Exit {
    match crate::init::scaffold(dir) {
        Ok(files) => {
            ui.note(&format!(
                "created {} in {}\nnext: `runbook -C {} validate`, then `runbook -C {} run example --env dev --approve approve`",
                files.join(", "),
                dir.display(),
                dir.display(),
                dir.display()
            ));
            Exit::Ok
        }
        Err(e) => {
            ui.error(&e, Some("run `runbook init` in an empty folder, or name a new one: `runbook init my-project`"));
            Exit::Invalid
        }
    }
}
