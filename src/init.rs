//! `runbook init`: a new project with a config, an example playbook, the folders and the JSON
//! Schemas (under `schemas/`, named by each file's relative `$schema` modeline so editors
//! check them offline), ready for `runbook validate` and a first run against a local SQLite
//! file.

use crate::schema::{SchemaKind, schema_text};
use std::path::Path;

const CONFIG: &str = r#"# yaml-language-server: $schema=schemas/config.schema.json
# Environments and what protects them. A target is named by an environment variable that holds
# its URL (PostgreSQL) or by a SQLite file; never write a URL with a password here.
environments:
  dev:
    description: Local development database, no server needed
    target: { sqlite: .runbook/dev.db }
    vars:
      backup_dir: .runbook/backups/dev
    protections:
      self_approval: true
  staging:
    target: { url_env: STAGING_DATABASE_URL }
    vars:
      backup_dir: backups/staging
    protections:
      approvals: 1
  production:
    target: { url_env: DATABASE_URL }
    vars:
      backup_dir: backups/production
    protections:
      protected: true
      approvals: 2
      approval_expiry: 24h
      confirm_destructive: true
secrets: [DATABASE_URL, STAGING_DATABASE_URL]
"#;

const PLAYBOOK: &str = r#"# yaml-language-server: $schema=../schemas/playbook.schema.json
name: example
description: Checks the database, asks for approval, records a note
params:
  note: { type: string, default: "hello from runbook" }
steps:
  - id: setup
    sql: { query: "CREATE TABLE IF NOT EXISTS runbook_notes (note TEXT NOT NULL, at TEXT NOT NULL)" }
  - id: before
    sql: { query: "SELECT count(*) AS n FROM runbook_notes" }
  - id: approve
    gate:
      approval:
        message: "Add a note to {{ env.name }} (it has {{ steps.before.outputs.scalar }} notes)"
  - id: note
    sql:
      query: "INSERT INTO runbook_notes (note, at) VALUES ($1, $2)"
      params: ["{{ params.note }}", "{{ run.started_at }}"]
    rollback:
      - sql: { query: "DELETE FROM runbook_notes WHERE at = $1", params: ["{{ run.started_at }}"] }
  - id: done
    log: { message: "note added on {{ env.name }}" }
"#;

/// Writes the scaffold into `dir`; refuses to overwrite anything that exists.
pub fn scaffold(dir: &Path) -> Result<Vec<String>, String> {
    let playbook_schema = schema_text(SchemaKind::Playbook);
    let config_schema = schema_text(SchemaKind::Config);
    let files: [(&str, &str); 7] = [
        ("runbook.yaml", CONFIG),
        ("playbooks/example.yaml", PLAYBOOK),
        ("schemas/playbook.schema.json", &playbook_schema),
        ("schemas/config.schema.json", &config_schema),
        ("migrations/postgres/.keep", ""),
        ("migrations/sqlite/.keep", ""),
        ("seeds/.keep", ""),
    ];
    for (rel, _) in &files {
        if dir.join(rel).exists() {
            return Err(format!(
                "`{}` already exists; nothing was written",
                dir.join(rel).display()
            ));
        }
    }
    let mut written = Vec::new();
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
        written.push(rel.to_owned());
    }
    let gitignore = dir.join(".gitignore");
    if !gitignore.exists() {
        std::fs::write(&gitignore, "/.runbook/\n")
            .map_err(|e| format!("cannot write `{}`: {e}", gitignore.display()))?;
        written.push(".gitignore".to_owned());
    }
    Ok(written)
}
