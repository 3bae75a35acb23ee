//! The JSON Schemas of playbooks and the config, generated from the Rust model, and the
//! structural check that runs them over a document through the `jsonschema` crate.
//!
//! Each schema error is turned into a diagnostic at the position of the offending node, with
//! the schema's own description as a hint where the error alone would not say what is wanted
//! (in `errors`).

mod errors;
mod generated;

use crate::config::ConfigDef;
use crate::diagnostic::Diagnostic;
use crate::playbook::PlaybookDef;
use crate::source::Source;
use crate::yaml::Node;
use jsonschema::error::ValidationErrorKind;
use serde_json::Value as Json;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaKind {
    Playbook,
    Config,
}

impl SchemaKind {
    /// The committed file under `schemas/`.
    pub fn file_name(self) -> &'static str {
        match self {
            SchemaKind::Playbook => "playbook.schema.json",
            SchemaKind::Config => "config.schema.json",
        }
    }
}

/// The schema as JSON, generated from the model types.
pub fn schema(kind: SchemaKind) -> Json {
    let root = match kind {
        SchemaKind::Playbook => schemars::schema_for!(PlaybookDef),
        SchemaKind::Config => schemars::schema_for!(ConfigDef),
    };
    let mut json = serde_json::to_value(root).unwrap_or(Json::Null);
    strip_null(&mut json);
    if let Json::Object(map) = &mut json {
        map.insert(
            "$id".to_owned(),
            Json::String(format!("https://runbook.dev/schemas/{}", kind.file_name())),
        );
    }
    json
}

/// Optional fields are `Option<T>` in the model, which schemars renders as "T or null". A
/// YAML key with no value is a mistake in a playbook, so the schema drops the null branch:
/// `timeout:` alone is reported, and errors name the real expected type instead of "not any of".
fn strip_null(v: &mut Json) {
    match v {
        Json::Object(map) => {
            if let Some(Json::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".to_owned(), only);
                }
            }
            if map.get("default") == Some(&Json::Null) {
                map.remove("default");
            }
            let nullable_any_of =
                map.get("anyOf")
                    .and_then(Json::as_array)
                    .is_some_and(|branches| {
                        branches.len() == 2
                            && branches
                                .iter()
                                .any(|b| b.get("type").and_then(Json::as_str) == Some("null"))
                    });
            if nullable_any_of
                && let Some(Json::Array(branches)) = map.remove("anyOf")
                && let Some(Json::Object(other)) = branches
                    .into_iter()
                    .find(|b| b.get("type").and_then(Json::as_str) != Some("null"))
            {
                for (k, val) in other {
                    map.entry(k).or_insert(val);
                }
            }
            for val in map.values_mut() {
                strip_null(val);
            }
        }
        Json::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

/// The schema as the pretty-printed text committed under `schemas/`.
pub fn schema_text(kind: SchemaKind) -> String {
    let mut text = serde_json::to_string_pretty(&schema(kind)).unwrap_or_default();
    text.push('\n');
    text
}

/// The committed schema, read from the binary: the same JSON `schema` generates from the model
/// (`tests/it/schema.rs` fails otherwise), without generating it on every start (about half of
/// validating a small playbook's time). Generated when the text does not parse.
fn committed(kind: SchemaKind) -> Json {
    let text = match kind {
        SchemaKind::Playbook => include_str!("../../schemas/playbook.schema.json"),
        SchemaKind::Config => include_str!("../../schemas/config.schema.json"),
    };
    serde_json::from_str(text).unwrap_or_else(|_| schema(kind))
}

struct Compiled {
    schema: Json,
    validator: jsonschema::Validator,
}

fn compiled(kind: SchemaKind) -> Option<&'static Compiled> {
    static PLAYBOOK: OnceLock<Option<Compiled>> = OnceLock::new();
    static CONFIG: OnceLock<Option<Compiled>> = OnceLock::new();
    let cell = match kind {
        SchemaKind::Playbook => &PLAYBOOK,
        SchemaKind::Config => &CONFIG,
    };
    cell.get_or_init(|| {
        let schema = committed(kind);
        let validator = jsonschema::draft202012::new(&schema).ok()?;
        Some(Compiled { schema, validator })
    })
    .as_ref()
}

/// Splits a JSON pointer into unescaped segments.
fn segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Validates `json` (the JSON form of `tree`) and returns one diagnostic per schema error.
/// A document the generated check accepts has none; only one it rejects compiles the runtime
/// validator, for the errors' paths.
pub fn check(kind: SchemaKind, source: &Source, tree: &Node, json: &Json) -> Vec<Diagnostic> {
    if generated::is_valid(kind, json) {
        return Vec::new();
    }
    let Some(compiled) = compiled(kind) else {
        return vec![
            Diagnostic::error("internal", "the built-in schema failed to compile")
                .in_file(source.display_path()),
        ];
    };
    let mut out = Vec::new();
    for err in compiled.validator.iter_errors(json) {
        out.extend(errors::error_diagnostics(
            kind, compiled, source, tree, &err,
        ));
    }
    // `stpes` is reported as an unknown key that should be `steps`; the missing `steps` is
    // the same mistake, so it is not reported again.
    let suggested: Vec<String> = out
        .iter()
        .filter(|d| d.code == "unknown-key")
        .filter_map(|d| {
            d.hint
                .as_deref()?
                .strip_prefix("did you mean `")?
                .strip_suffix("`?")
                .map(str::to_owned)
        })
        .collect();
    out.retain(|d| {
        d.code != "missing-key"
            || !suggested.iter().any(|k| {
                d.message
                    .starts_with(&format!("missing required key `{k}`"))
            })
    });
    // A wrong value inside an `anyOf` also reports the branch errors; keep the most specific.
    out.dedup_by(|a, b| a.line == b.line && a.column == b.column && a.message == b.message);
    out
}

/// Follows a schema path (which never crosses `$ref`) to the subschema it names.
fn schema_at<'a>(root: &'a Json, path: &[String]) -> Option<&'a Json> {
    let mut node = root;
    for seg in path {
        if seg == "$ref" {
            node = deref(root, node);
            continue;
        }
        node = match node {
            Json::Object(map) => map.get(seg)?,
            Json::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Resolves a local `$ref` chain so `properties` and `description` can be read.
fn deref<'a>(root: &'a Json, mut node: &'a Json) -> &'a Json {
    for _ in 0..8 {
        match node.get("$ref").and_then(Json::as_str) {
            Some(r) if r.starts_with("#/") => {
                let path: Vec<String> = segments(&r[1..]);
                match schema_at(root, &path) {
                    Some(n) => node = n,
                    None => break,
                }
            }
            _ => break,
        }
    }
    node
}

/// Removes what the schema rejects, so the semantic checks can still run over the rest and
/// report their findings in the same pass. Unknown keys are dropped; any other failing value is
/// dropped from the mapping that holds it (a value inside a list takes the whole list with it,
/// so list indices, and with them source positions, stay right). Returns `None` when the
/// document cannot be made to pass.
pub fn prune(kind: SchemaKind, json: &Json) -> Option<Json> {
    let compiled = compiled(kind)?;
    let mut doc = json.clone();
    for _ in 0..16 {
        let errors: Vec<(Vec<String>, Option<Vec<String>>)> = compiled
            .validator
            .iter_errors(&doc)
            .map(|e| {
                let path = segments(e.instance_path().as_str());
                match e.kind() {
                    ValidationErrorKind::AdditionalProperties { unexpected } => {
                        (path, Some(unexpected.clone()))
                    }
                    _ => (path, None),
                }
            })
            .collect();
        if errors.is_empty() {
            return Some(doc);
        }
        let before = doc.clone();
        for (path, unexpected) in errors {
            match unexpected {
                Some(keys) => {
                    if let Some(Json::Object(map)) = pointer_mut(&mut doc, &path) {
                        for k in keys {
                            map.remove(&k);
                        }
                    }
                }
                None => remove_at(&mut doc, &path),
            }
        }
        if doc == before {
            return None;
        }
    }
    None
}

fn pointer_mut<'a>(doc: &'a mut Json, path: &[String]) -> Option<&'a mut Json> {
    let mut node = doc;
    for seg in path {
        node = match node {
            Json::Object(m) => m.get_mut(seg)?,
            Json::Array(a) => a.get_mut(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Removes the value at `path` from the nearest enclosing mapping.
fn remove_at(doc: &mut Json, path: &[String]) {
    let mut end = path.len();
    while end > 0 {
        let (parent, last) = (&path[..end - 1], &path[end - 1]);
        if let Some(Json::Object(map)) = pointer_mut(doc, parent) {
            map.remove(last);
            return;
        }
        end -= 1;
    }
}
