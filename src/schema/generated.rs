//! The committed playbook and config schemas compiled into Rust at build time (the `jsonschema`
//! crate's `validator` macro), so a valid document is checked without compiling the schema at
//! start (3-4 ms of CPU per invocation, most of `validate --migrations`' time in a project with
//! a playbook). Only an invalid document compiles the runtime validator, whose errors carry the
//! paths the diagnostics are built from.
//!
//! The macro reads the same files `committed` embeds (a rebuild follows their changes), as
//! draft 2020-12 with format assertions off, as `jsonschema::draft202012::new` does. The unit
//! test `generated_and_runtime_validators_agree` pins that both accept the same documents.

use super::SchemaKind;
use serde_json::Value as Json;

#[jsonschema::validator(
    path = "schemas/playbook.schema.json",
    draft = Draft202012,
    methods = { is_valid = true, validate = false, iter_errors = false }
)]
struct Playbook;

#[jsonschema::validator(
    path = "schemas/config.schema.json",
    draft = Draft202012,
    methods = { is_valid = true, validate = false, iter_errors = false }
)]
struct Config;

/// Whether `json` passes the committed schema of `kind`.
pub(super) fn is_valid(kind: SchemaKind, json: &Json) -> bool {
    match kind {
        SchemaKind::Playbook => Playbook::is_valid(json),
        SchemaKind::Config => Config::is_valid(json),
    }
}

#[cfg(test)]
mod tests {
    use super::{Json, SchemaKind, is_valid};
    use crate::source::Source;
    use std::path::Path;

    /// The YAML files of `dir` (or the one file) that parse, as JSON.
    fn documents(path: &str) -> Vec<(String, Json)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let mut files: Vec<_> = if root.is_dir() {
            std::fs::read_dir(&root)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
                .collect()
        } else {
            vec![root]
        };
        files.sort();
        files
            .into_iter()
            .filter_map(|p| {
                // Not UTF-8 (one invalid playbook is a binary file): never reaches the schema.
                let source = Source::new(&p, std::fs::read_to_string(&p).ok()?);
                let json = crate::yaml::parse(&source).ok()?.to_json().ok()?;
                Some((p.display().to_string(), json))
            })
            .collect()
    }

    /// Documents one mistake away from `doc`: every value replaced by one of another type, every
    /// key removed, and an unknown key added to every mapping.
    fn mutations(doc: &Json) -> Vec<Json> {
        let mut out = Vec::new();
        mutate(doc, &mut |f| {
            let mut copy = doc.clone();
            f(&mut copy);
            out.push(copy);
        });
        out
    }

    type Edit<'a> = &'a dyn Fn(&mut Json);

    fn mutate(doc: &Json, emit: &mut dyn FnMut(Edit<'_>)) {
        walk(doc, &mut Vec::new(), emit);
    }

    fn at<'a>(doc: &'a mut Json, path: &[String]) -> &'a mut Json {
        path.iter().fold(doc, |node, seg| match node {
            Json::Array(items) => &mut items[seg.parse::<usize>().unwrap()],
            other => &mut other[seg.as_str()],
        })
    }

    fn walk(node: &Json, path: &mut Vec<String>, emit: &mut dyn FnMut(Edit<'_>)) {
        let wrong = match node {
            Json::String(_) => Json::from(7),
            Json::Number(_) => Json::from("seven"),
            Json::Bool(_) => Json::from("yes"),
            Json::Array(_) => Json::Object(Default::default()),
            Json::Object(_) => Json::Array(Vec::new()),
            Json::Null => Json::from(0),
        };
        emit(&|d: &mut Json| *at(d, path) = wrong.clone());
        match node {
            Json::Object(map) => {
                emit(&|d: &mut Json| {
                    if let Json::Object(m) = at(d, path) {
                        m.insert("frobnicate".into(), Json::from(1));
                    }
                });
                for (k, v) in map {
                    emit(&|d: &mut Json| {
                        if let Json::Object(m) = at(d, path) {
                            m.remove(k);
                        }
                    });
                    path.push(k.clone());
                    walk(v, path, emit);
                    path.pop();
                }
            }
            Json::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    path.push(i.to_string());
                    walk(v, path, emit);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    /// Both validators judge every document alike; returns how many each accepted and rejected.
    fn agree(kind: SchemaKind, docs: &[(String, Json)]) -> (usize, usize) {
        let runtime = &super::super::compiled(kind).unwrap().validator;
        let (mut valid, mut invalid) = (0, 0);
        for (name, doc) in docs {
            for candidate in std::iter::once(doc.clone()).chain(mutations(doc)) {
                let generated = is_valid(kind, &candidate);
                assert_eq!(
                    generated,
                    runtime.is_valid(&candidate),
                    "{name}: generated and runtime validators disagree on {candidate}"
                );
                if generated {
                    valid += 1;
                } else {
                    invalid += 1;
                }
            }
        }
        (valid, invalid)
    }

    #[test]
    fn generated_and_runtime_validators_agree() {
        let playbooks = [
            documents("playbooks"),
            documents("tests/fixtures/project/playbooks"),
            documents("tests/fixtures/invalid"),
        ]
        .concat();
        assert!(playbooks.len() > 80, "{} playbooks", playbooks.len());
        let shipped = documents("playbooks");
        assert!(
            shipped
                .iter()
                .all(|(_, d)| is_valid(SchemaKind::Playbook, d))
        );
        let (valid, invalid) = agree(SchemaKind::Playbook, &playbooks);
        assert!(
            valid > 500 && invalid > 1000,
            "{valid} valid, {invalid} invalid"
        );

        let configs = [
            documents("runbook.yaml"),
            documents("tests/fixtures/project/runbook.yaml"),
            documents("tests/fixtures/cli/runbook.yaml"),
        ]
        .concat();
        assert_eq!(configs.len(), 3);
        assert!(configs.iter().all(|(_, d)| is_valid(SchemaKind::Config, d)));
        let (valid, invalid) = agree(SchemaKind::Config, &configs);
        assert!(
            valid > 10 && invalid > 10,
            "{valid} valid, {invalid} invalid"
        );
    }
}
