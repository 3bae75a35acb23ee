//! The JSON Schemas of playbooks and the config, generated from the Rust model, and the
//! structural check that runs them over a document through the `jsonschema` crate.
//!
//! Each schema error is turned into a diagnostic at the position of the offending node, with
//! the schema's own description as a hint where the error alone would not say what is wanted.

use crate::config::ConfigDef;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::playbook::{ACTION_KEYS, PlaybookDef};
use crate::source::{Pos, Source};
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
        let schema = schema(kind);
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
pub fn check(kind: SchemaKind, source: &Source, tree: &Node, json: &Json) -> Vec<Diagnostic> {
    let Some(compiled) = compiled(kind) else {
        return vec![
            Diagnostic::error("internal", "the built-in schema failed to compile")
                .in_file(source.display_path()),
        ];
    };
    let mut out = Vec::new();
    for err in compiled.validator.iter_errors(json) {
        out.extend(error_diagnostics(kind, compiled, source, tree, &err));
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

fn error_diagnostics(
    kind: SchemaKind,
    compiled: &Compiled,
    source: &Source,
    tree: &Node,
    err: &jsonschema::ValidationError<'_>,
) -> Vec<Diagnostic> {
    // For "none of the forms matched", report the errors of the form that came closest: the
    // one whose errors reach deepest into the value, preferring a wrong value over a wrong type.
    if let ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } =
        err.kind()
    {
        let score = |branch: &Vec<jsonschema::ValidationError<'static>>| {
            branch
                .iter()
                .map(|e| {
                    let depth = segments(e.instance_path().as_str()).len();
                    let specific = !matches!(e.kind(), ValidationErrorKind::Type { .. });
                    (depth, specific)
                })
                .max()
        };
        if let Some(best) = context
            .iter()
            .filter(|b| !b.is_empty())
            .max_by_key(|b| score(b))
        {
            let mut out = Vec::new();
            for e in best {
                out.extend(error_diagnostics(kind, compiled, source, tree, e));
            }
            if !out.is_empty() {
                return out;
            }
        }
    }
    let instance: Vec<String> = segments(err.instance_path().as_str());
    let schema_path: Vec<String> = segments(err.schema_path().as_str());
    to_diagnostics(
        kind,
        compiled,
        source,
        tree,
        &instance,
        &schema_path,
        err.kind(),
        err.instance(),
    )
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

/// The description of the subschema that holds the failing keyword.
fn description_of(compiled: &Compiled, schema_path: &[String]) -> Option<String> {
    let parent = &schema_path[..schema_path.len().saturating_sub(1)];
    let node = deref(&compiled.schema, schema_at(&compiled.schema, parent)?);
    node.get("description").and_then(Json::as_str).map(|s| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .trim_end_matches('.')
            .to_owned()
    })
}

/// What the containing object is, for messages: "in step `backup`", "in `shell`".
fn context(tree: &Node, instance: &[String]) -> String {
    let refs: Vec<&str> = instance.iter().map(String::as_str).collect();
    if is_step_path(&refs) {
        let id = tree
            .lookup(&refs)
            .and_then(|n| n.get("id"))
            .and_then(Node::as_str);
        return match id {
            Some(id) => format!(" in step `{id}`"),
            None => " in step".to_owned(),
        };
    }
    match refs.iter().rev().find(|s| s.parse::<usize>().is_err()) {
        Some(last) => format!(" in `{last}`"),
        None => String::new(),
    }
}

/// A step is an item of `steps`, `on_failure`, `finally` or `rollback`.
fn is_step_path(path: &[&str]) -> bool {
    path.len() >= 2
        && path[path.len() - 1].parse::<usize>().is_ok()
        && matches!(
            path[path.len() - 2],
            "steps" | "on_failure" | "finally" | "rollback"
        )
}

fn json_type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "list",
        Json::Object(_) => "mapping",
    }
}

fn short(v: &Json) -> String {
    let text = match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 40 {
        format!("{}...", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

#[allow(clippy::too_many_arguments)]
fn to_diagnostics(
    kind: SchemaKind,
    compiled: &Compiled,
    source: &Source,
    tree: &Node,
    instance: &[String],
    schema_path: &[String],
    error: &ValidationErrorKind,
    value: &Json,
) -> Vec<Diagnostic> {
    let refs: Vec<&str> = instance.iter().map(String::as_str).collect();
    let node = tree.lookup(&refs);
    let pos = tree.pos_of(&refs);
    let width = node
        .and_then(Node::as_str)
        .map_or(1, |s| s.chars().count().min(60));
    let ctx = context(tree, instance);
    let hint_from_schema = || description_of(compiled, schema_path);
    match error {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let parent = &schema_path[..schema_path.len().saturating_sub(1)];
            let allowed: Vec<String> = schema_at(&compiled.schema, parent)
                .map(|n| deref(&compiled.schema, n))
                .and_then(|n| n.get("properties"))
                .and_then(Json::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            let in_step = is_step_path(&refs);
            unexpected
                .iter()
                .map(|key| {
                    let key_node = node.and_then(|n| n.key(key));
                    let key_pos = key_node.map_or(pos, |n| n.pos);
                    let what = if in_step { "unknown key or action" } else { "unknown key" };
                    let mut d = Diagnostic::error("unknown-key", format!("{what} `{key}`{ctx}"))
                        .at(source, key_pos)
                        .with_width(key.chars().count());
                    let hint = match did_you_mean(key, allowed.iter().map(String::as_str)) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None if in_step => format!(
                            "a step takes one action ({}) and the options `id`, `name`, `when`, `retry`, `timeout`, `continue_on_error`, `rollback`, `outputs`, `tags`",
                            ACTION_KEYS.join(", ")
                        ),
                        None => format!(
                            "expected one of: {}",
                            allowed.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                        ),
                    };
                    d = d.with_hint(hint);
                    d
                })
                .collect()
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            // Point at the key that holds the incomplete mapping (`sql:`), not inside it.
            let key_pos = match refs.split_last() {
                Some((last, parent)) => tree
                    .lookup(parent)
                    .and_then(|p| p.key(last))
                    .map_or(pos, |k| k.pos),
                None => pos,
            };
            let mut d =
                Diagnostic::error("missing-key", format!("missing required key `{name}`{ctx}"))
                    .at(source, key_pos);
            let hint = match (kind, name) {
                (SchemaKind::Playbook, "steps") if instance.is_empty() => {
                    "a playbook needs a `steps` list, even if it is short".to_owned()
                }
                (SchemaKind::Playbook, "name") if instance.is_empty() => {
                    "add `name: <playbook-name>` at the top of the file".to_owned()
                }
                _ => format!("add `{name}:`"),
            };
            d = d.with_hint(hint);
            vec![d]
        }
        ValidationErrorKind::Type { kind: expected } => {
            let expected = format!("{expected:?}")
                .replace("Single(", "")
                .replace("Multiple(", "")
                .replace(')', "")
                .to_lowercase()
                .replace("object", "mapping")
                .replace("array", "list");
            let found = json_type_name(value);
            let mut d = Diagnostic::error(
                "wrong-type",
                format!(
                    "expected {expected}, found {found}{}",
                    field_name(tree, instance)
                ),
            )
            .at(source, pos)
            .with_width(width);
            let description = hint_from_schema().unwrap_or_default();
            if description.starts_with("A duration") {
                d.message = format!(
                    "expected a duration, found {found}{}",
                    field_name(tree, instance)
                );
                d = d.with_width(token_width(source, pos)).with_hint(
                    "durations are digits and a unit: `500ms`, `30s`, `5m`, `2h`, `7d`, or `1h30m`",
                );
            } else if instance.is_empty() {
                d = d.with_hint(match kind {
                    SchemaKind::Playbook => {
                        "a playbook is a mapping with `name` and `steps` at the top level"
                    }
                    SchemaKind::Config => {
                        "the config is a mapping with `environments` at the top level"
                    }
                });
            } else if let (Json::String(s), true) = (value, expected.contains("boolean")) {
                d = d.with_hint(format!(
                    "write `true` or `false`; `{s}` is a string in YAML 1.2"
                ));
            } else if expected.contains("integer") || expected.contains("number") {
                d = d
                    .with_width(token_width(source, pos))
                    .with_hint(format!("write a plain {expected} without quotes"));
            } else if expected == "list" {
                d = d
                    .with_width(token_width(source, pos))
                    .with_hint("write a YAML list: one `- item` per line, or `[a, b]`");
            } else if expected == "mapping" {
                d = d
                    .with_width(token_width(source, pos))
                    .with_hint("write `key: value` lines indented under the key");
            } else if expected == "string" {
                d = d
                    .with_width(token_width(source, pos))
                    .with_hint("quote the value to make it a string");
            }
            vec![d]
        }
        ValidationErrorKind::Enum { options } => {
            let opts: Vec<String> = options
                .as_array()
                .map(|a| a.iter().map(short).collect())
                .unwrap_or_default();
            let got = short(value);
            let hint = match did_you_mean(&got, opts.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "expected one of: {}",
                    opts.iter()
                        .map(|o| format!("`{o}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            vec![
                Diagnostic::error(
                    "invalid-value",
                    format!("`{got}` is not a valid value{}", field_name(tree, instance)),
                )
                .at(source, pos)
                .with_width(width)
                .with_hint(hint),
            ]
        }
        ValidationErrorKind::Pattern { .. } => {
            let hint = hint_from_schema().unwrap_or_else(|| "check the value's format".to_owned());
            let hint = if hint.starts_with("A duration") {
                "durations are digits and a unit: `500ms`, `30s`, `5m`, `2h`, `7d`, or `1h30m`"
                    .to_owned()
            } else {
                hint
            };
            let hint = match instance.last().map(String::as_str) {
                Some("id") => "step ids are letters, digits and `_`, starting with a letter or `_`, so templates can read `steps.<id>`".to_owned(),
                Some("name") if instance.len() == 1 => "playbook names are lowercase letters, digits, `-` and `_`".to_owned(),
                Some("start" | "end") => "times are `HH:MM` on a 24-hour clock, from `00:00` to `23:59`".to_owned(),
                _ => hint,
            };
            vec![
                Diagnostic::error(
                    "invalid-format",
                    format!(
                        "`{}` is not a valid value{}",
                        short(value),
                        field_name(tree, instance)
                    ),
                )
                .at(source, pos)
                .with_width(width)
                .with_hint(hint),
            ]
        }
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => {
            let written = token(source, pos).unwrap_or_else(|| short(value));
            vec![
                Diagnostic::error(
                    "out-of-range",
                    format!(
                        "{written} is below the minimum {limit}{}",
                        field_name(tree, instance)
                    ),
                )
                .at(source, pos)
                .with_width(written.chars().count())
                .with_hint(format!("use a value of at least {limit}")),
            ]
        }
        ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => {
            let written = token(source, pos).unwrap_or_else(|| short(value));
            vec![
                Diagnostic::error(
                    "out-of-range",
                    format!(
                        "{written} is above the maximum {limit}{}",
                        field_name(tree, instance)
                    ),
                )
                .at(source, pos)
                .with_width(written.chars().count())
                .with_hint(format!("use a value of at most {limit}")),
            ]
        }
        ValidationErrorKind::AnyOf { .. }
        | ValidationErrorKind::OneOfNotValid { .. }
        | ValidationErrorKind::OneOfMultipleValid { .. } => {
            let hint = hint_from_schema()
                .unwrap_or_else(|| "see `runbook schema` for the accepted forms".to_owned());
            vec![
                Diagnostic::error(
                    "invalid-value",
                    format!(
                        "`{}` is not an accepted form{}",
                        short(value),
                        field_name(tree, instance)
                    ),
                )
                .at(source, pos)
                .with_width(width)
                .with_hint(hint),
            ]
        }
        other => vec![
            Diagnostic::error(
                "schema",
                format!(
                    "{} ({}){}",
                    short(value),
                    other.keyword(),
                    field_name(tree, instance)
                ),
            )
            .at(source, pos),
        ],
    }
}

/// " for `a.b.c`" naming the field, or nothing at the root. Inside a step the path is given
/// from the step, which is named by its id: " for `retry.attempts` in step `backup`".
fn field_name(tree: &Node, instance: &[String]) -> String {
    if instance.is_empty() {
        return String::new();
    }
    let refs: Vec<&str> = instance.iter().map(String::as_str).collect();
    let step_end = (2..=refs.len())
        .rev()
        .find(|&n| is_step_path(&refs[..n]) && n < refs.len());
    if let Some(n) = step_end {
        let id = tree
            .lookup(&refs[..n])
            .and_then(|s| s.get("id"))
            .and_then(Node::as_str);
        let field = instance[n..].join(".");
        return match id {
            Some(id) => format!(" for `{field}` in step `{id}`"),
            None => format!(" for `{field}`"),
        };
    }
    format!(" for `{}`", instance.join("."))
}

/// The scalar as written in the source at `pos` (up to a delimiter), for quoting numbers as
/// the user wrote them rather than as JSON prints them.
fn token(source: &Source, pos: Pos) -> Option<String> {
    let line = source.line(pos.line)?;
    let rest: String = line.chars().skip(pos.col.saturating_sub(1)).collect();
    let tok: String = if rest.starts_with('"') || rest.starts_with('\'') {
        let q = rest.chars().next()?;
        let end = rest[1..].find(q).map_or(rest.len(), |i| i + 2);
        rest[..end].to_owned()
    } else {
        rest.chars()
            .take_while(|c| !matches!(c, ',' | '}' | ']' | '#') && !c.is_whitespace())
            .collect()
    };
    (!tok.is_empty()).then_some(tok)
}

fn token_width(source: &Source, pos: Pos) -> usize {
    token(source, pos).map_or(1, |t| t.chars().count().min(60))
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
