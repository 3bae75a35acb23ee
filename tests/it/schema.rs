//! The committed schemas match the model, and shipped playbooks point editors at them.

use crate::support::repo;
use runbook::schema::{SchemaKind, schema_text};

#[test]
fn committed_schemas_are_current() {
    for kind in [SchemaKind::Playbook, SchemaKind::Config] {
        let path = repo().join("schemas").join(kind.file_name());
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == schema_text(kind),
            "{} is stale; regenerate it with `cargo run -- schema{} > schemas/{}`",
            path.display(),
            if kind == SchemaKind::Config {
                " --config"
            } else {
                ""
            },
            kind.file_name()
        );
    }
}

#[test]
fn shipped_playbooks_carry_the_schema_modeline() {
    let dir = repo().join("playbooks");
    for entry in std::fs::read_dir(dir).expect("playbooks folder") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/playbook.schema.json"),
            "{} lacks the schema modeline",
            path.display()
        );
    }
}

#[test]
fn schemas_are_draft_2020_12_and_compile() {
    for kind in [SchemaKind::Playbook, SchemaKind::Config] {
        let schema = runbook::schema::schema(kind);
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert!(jsonschema::draft202012::new(&schema).is_ok());
    }
}
