//! `runbook validate`, `runbook list` and `runbook schema`: the commands that only read the
//! project.

use super::args::{OutputFormat, ValidateFormat};
use super::runtime::{open, sorted_unique};
use crate::diagnostic::Diagnostic;
use crate::exit::Exit;
use crate::project::{self, Playbook, Project};
use crate::report::{FileResult, ValidationReport};
use crate::schema::{self, SchemaKind};
use crate::source::display_path;
use crate::ui::Ui;
use crate::views::{self, PlaybookView};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) fn validate(
    ui: &Ui,
    root: &Path,
    paths: &[String],
    format: ValidateFormat,
    migrations: bool,
) -> Exit {
    let mut files = Vec::new();
    let started = Instant::now();
    let project = load_config(root, &mut files);
    if let Some(config) = files.last_mut() {
        config.time = started.elapsed();
    }
    let targets: Vec<PathBuf> = if paths.is_empty() {
        project.playbook_files()
    } else {
        resolve_paths(&project, paths, &mut files)
    };
    // A project with migrations and no playbooks (yet) is linted for CI all the same.
    if targets.is_empty()
        && files.iter().all(|f| f.kind == "config")
        && paths.is_empty()
        && !migrations
    {
        ui.error(
            &format!(
                "no playbooks found in `{}`",
                display_path(&project.playbooks_dir())
            ),
            Some("give playbook paths, or run in a project folder with a playbooks/ folder"),
        );
        return Exit::Invalid;
    }
    let mut named: BTreeMap<String, String> = BTreeMap::new();
    for path in targets {
        let started = Instant::now();
        let (mut file, pb) = validate_playbook(&project, &path);
        file.time = started.elapsed();
        if let Some(pb) = pb {
            let name = pb.def.name.clone();
            match named.get(&name) {
                Some(first) => {
                    let pos = pb.tree.pos_of(&["name"]);
                    file.diagnostics.push(
                        Diagnostic::error(
                            "duplicate-name",
                            format!("two playbooks are named `{name}`: this one and `{first}`"),
                        )
                        .at(&pb.source, pos)
                        .with_width(name.chars().count())
                        .with_hint("give each playbook its own `name:`; runs, approvals and `require_run` gates find a playbook by it"),
                    );
                    file.valid = false;
                }
                None => {
                    named.insert(name, file.file.clone());
                }
            }
        }
        files.push(file);
    }
    if migrations {
        // One lint pass over the folder: each file is given an equal share of its time.
        let started = Instant::now();
        let mut linted = lint_migrations(&project);
        let share = started.elapsed() / u32::try_from(linted.len().max(1)).unwrap_or(u32::MAX);
        for r in &mut linted {
            r.time = share;
        }
        files.extend(linted);
    }
    let report = ValidationReport::new(files);
    match format {
        ValidateFormat::Json => ui.data(&views::to_text(&views::ValidationDoc::new(&report))),
        ValidateFormat::Junit => ui.data(&report.to_junit()),
        ValidateFormat::Github => ui.data(report.to_github().trim_end()),
        ValidateFormat::Human => print_human(ui, &report),
    }
    if report.valid {
        Exit::Ok
    } else {
        Exit::Invalid
    }
}

/// The config first: playbooks are validated against it when it is valid. Its result is
/// pushed to `files`; the project holds the config only when it is valid.
fn load_config(root: &Path, files: &mut Vec<FileResult>) -> Project {
    let mut project = Project {
        root: root.to_path_buf(),
        config: None,
    };
    let config_path = match project::config_file(root) {
        Ok(path) => path,
        Err(d) => {
            files.push(FileResult {
                file: d.file.clone(),
                kind: "config",
                time: Duration::ZERO,
                name: None,
                valid: false,
                diagnostics: vec![d],
            });
            return project;
        }
    };
    if let Some(config_path) = config_path {
        match project::load_config(&config_path) {
            Ok(config) => {
                files.push(FileResult {
                    file: config.source.display_path(),
                    kind: "config",
                    time: Duration::ZERO,
                    name: None,
                    valid: true,
                    diagnostics: Vec::new(),
                });
                project.config = Some(config);
            }
            Err(diags) => files.push(FileResult {
                file: display_path(&config_path),
                kind: "config",
                time: Duration::ZERO,
                name: None,
                valid: false,
                diagnostics: diags,
            }),
        }
    }
    project
}

/// `--migrations`: every PostgreSQL migration file linted with squawk against an empty schema
/// (no database, so every table is new and empty), one result per file, each finding a
/// diagnostic at its line and column. A folder that cannot be read is an invalid result.
fn lint_migrations(project: &Project) -> Vec<FileResult> {
    let dir = project.migrations_dir();
    let (set, findings) =
        match crate::db::migrate::lint_offline(&dir, &project.root, &Default::default()) {
            Ok(linted) => linted,
            Err(e) => {
                return vec![FileResult {
                    file: display_path(&dir),
                    kind: "migrations",
                    time: Duration::ZERO,
                    name: None,
                    valid: false,
                    diagnostics: vec![
                        Diagnostic::error("migrations-unreadable", e.to_string())
                            .in_file(display_path(&dir)),
                    ],
                }];
            }
        };
    set.migrations
        .iter()
        .map(|m| {
            let diagnostics: Vec<Diagnostic> = findings
                .iter()
                .filter(|f| f.file == m.file)
                .map(lint_diagnostic)
                .collect();
            FileResult {
                file: m.file.clone(),
                kind: "migration",
                time: Duration::ZERO,
                name: Some(m.name.clone()),
                valid: !diagnostics.iter().any(Diagnostic::is_error),
                diagnostics,
            }
        })
        .collect()
}

/// A lint finding as a diagnostic: squawk's rule leads the message.
fn lint_diagnostic(f: &crate::db::migrate::Finding) -> Diagnostic {
    let message = format!("{}: {}", f.rule, f.message);
    let mut d = match f.level {
        crate::playbook::LintLevel::Error => Diagnostic::error("migration-lint", message),
        crate::playbook::LintLevel::Warning => Diagnostic::warning("migration-lint", message),
    };
    d.file = f.file.clone();
    d.line = f.line;
    d.column = f.column;
    if let Some(h) = &f.help {
        d = d.with_hint(h.clone());
    }
    d
}

/// The playbooks named on the command line; a name that resolves to nothing is an invalid
/// file of its own.
fn resolve_paths(project: &Project, paths: &[String], files: &mut Vec<FileResult>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        match project.resolve(p) {
            Ok(path) => out.push(path),
            Err(d) => files.push(FileResult {
                file: p.clone(),
                kind: "playbook",
                time: Duration::ZERO,
                name: None,
                valid: false,
                diagnostics: vec![d.in_file(p.clone())],
            }),
        }
    }
    out
}

fn validate_playbook(project: &Project, path: &Path) -> (FileResult, Option<Arc<Playbook>>) {
    let shown = display_path(path);
    match project.load_playbook(path) {
        Ok(pb) => (
            FileResult {
                file: shown,
                kind: "playbook",
                time: Duration::ZERO,
                name: Some(pb.def.name.clone()),
                valid: true,
                diagnostics: Vec::new(),
            },
            Some(pb),
        ),
        Err(diags) => {
            let diags = sorted_unique(diags);
            let valid = !diags.iter().any(Diagnostic::is_error);
            (
                FileResult {
                    file: shown,
                    kind: "playbook",
                    time: Duration::ZERO,
                    name: None,
                    valid,
                    diagnostics: diags,
                },
                None,
            )
        }
    }
}

/// Every file's diagnostics, then one summary line.
fn print_human(ui: &Ui, report: &ValidationReport) {
    for f in &report.files {
        ui.diagnostics(&f.diagnostics);
    }
    let invalid = report.files.iter().filter(|f| !f.valid).count();
    if report.valid {
        let playbooks = report.files.iter().filter(|f| f.kind == "playbook").count();
        let config = if report.files.iter().any(|f| f.kind == "config") {
            "runbook.yaml and "
        } else {
            ""
        };
        let migrations = report
            .files
            .iter()
            .filter(|f| f.kind == "migration")
            .count();
        let checked = if playbooks == 0 && migrations > 0 {
            crate::fmt::plural(migrations, "migration", "migrations")
        } else {
            crate::fmt::plural(playbooks, "playbook", "playbooks")
        };
        ui.note(&format!("ok: {config}{checked} valid"));
    } else {
        let errors = crate::fmt::plural(report.errors, "error", "errors");
        let verb = if invalid == 1 { "is" } else { "are" };
        ui.error(
            &format!(
                "{} of {} {verb} invalid ({errors})",
                crate::fmt::plural(invalid, "file", "files"),
                report.files.len()
            ),
            None,
        );
    }
}

pub(super) fn list(ui: &Ui, root: &Path, format: OutputFormat) -> Exit {
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    let rows: Vec<PlaybookView> = project
        .playbook_files()
        .into_iter()
        .map(|path| match project.load_playbook(&path) {
            Ok(pb) => PlaybookView {
                name: pb.def.name.clone(),
                description: pb.def.description.clone(),
                file: display_path(&path),
                steps: Some(pb.def.steps.len()),
                valid: true,
            },
            Err(_) => PlaybookView {
                name: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                description: None,
                file: display_path(&path),
                steps: None,
                valid: false,
            },
        })
        .collect();
    let invalid = rows.iter().filter(|r| !r.valid).count();
    match format {
        OutputFormat::Json => ui.data(&views::to_text(&views::PlaybooksDoc::new(rows))),
        OutputFormat::Text => {
            if rows.is_empty() {
                ui.note("no playbooks");
                return Exit::Ok;
            }
            ui.data(&list_text(&rows));
        }
    }
    if invalid > 0 { Exit::Invalid } else { Exit::Ok }
}

/// One line per playbook: its name, then its description (or that it is invalid).
fn list_text(rows: &[PlaybookView]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let about = match (&r.description, r.valid) {
                (_, false) => "(invalid: run `runbook validate`)".to_owned(),
                (Some(d), true) => d.clone(),
                (None, true) => String::new(),
            };
            vec![r.name.clone(), about]
        })
        .collect();
    crate::table::render(&[], &[], &rows)
}

pub(super) fn schema(ui: &Ui, config: bool, output: Option<crate::views::Doc>) -> Exit {
    if let Some(doc) = output {
        ui.data(&doc.schema_text());
        return Exit::Ok;
    }
    ui.data(&schema::schema_text(if config {
        SchemaKind::Config
    } else {
        SchemaKind::Playbook
    }));
    Exit::Ok
}
