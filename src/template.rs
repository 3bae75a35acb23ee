//! Templates: minijinja with strict undefined, and the static analysis `validate` needs.
//!
//! A string field may hold `{{ ... }}` templates; `when`, condition gates and `wait_for.until`
//! hold bare expressions. Rendering never does IO; values a template reads are given to it.

use minijinja::{Environment, UndefinedBehavior};
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// The names a template may start with.
pub const ROOTS: &[&str] = &["params", "env", "vars", "steps", "run"];

/// Fields of `env` available to templates.
pub const ENV_FIELDS: &[&str] = &["name", "target", "protected"];

/// Fields of `run` available to templates (all known only at run time).
pub const RUN_FIELDS: &[&str] = &["id", "operator", "playbook", "started_at"];

/// The shared template environment: strict undefined, no auto-escaping, no loader.
pub fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env
    })
}

/// Whether a string holds template syntax at all.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// A template syntax error, with the 1-based line inside the template when known.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub message: String,
    pub line: Option<usize>,
}

fn syntax_error(err: &minijinja::Error) -> SyntaxError {
    let message = err
        .detail()
        .map(str::to_owned)
        .unwrap_or_else(|| err.kind().to_string());
    SyntaxError {
        message,
        line: err.line(),
    }
}

/// The dotted variable paths a template reads (`steps.backup.outputs.path`).
pub fn template_vars(text: &str) -> Result<BTreeSet<String>, SyntaxError> {
    let tmpl = env()
        .template_from_str(text)
        .map_err(|e| syntax_error(&e))?;
    Ok(tmpl.undeclared_variables(true).into_iter().collect())
}

/// The dotted variable paths an expression reads.
pub fn expression_vars(expr: &str) -> Result<BTreeSet<String>, SyntaxError> {
    let compiled = env()
        .compile_expression(expr)
        .map_err(|e| syntax_error(&e))?;
    Ok(compiled.undeclared_variables(true).into_iter().collect())
}

/// A filter or test a template (or, with `expression`, an expression) uses that does not
/// exist, found by rendering it against a stand-in for every value it reads (each a string
/// `"1"`): minijinja looks filters up only when it applies them, so a template over run-time
/// values (a step's outputs) would otherwise fail only when it runs. Other render errors (a
/// stand-in of the wrong type) are not this check's business. Gives minijinja's message.
pub fn unknown_filter(text: &str, vars: &BTreeSet<String>, expression: bool) -> Option<String> {
    let mut ctx = serde_json::Map::new();
    for var in vars {
        stand_in(&mut ctx, &var.split('.').collect::<Vec<_>>());
    }
    let ctx = minijinja::Value::from(minijinja::value::Serde(serde_json::Value::Object(ctx)));
    let result = if expression {
        env()
            .compile_expression(text)
            .and_then(|e| e.eval(ctx).map(|_| ()))
    } else {
        env().render_str(text, ctx).map(|_| ())
    };
    let e = result.err()?;
    matches!(
        e.kind(),
        minijinja::ErrorKind::UnknownFilter | minijinja::ErrorKind::UnknownTest
    )
    .then(|| {
        e.detail()
            .map_or_else(|| e.kind().to_string(), str::to_owned)
    })
}

/// Sets the dotted path `parts` in `map` to `"1"`, keeping objects a longer path made.
fn stand_in(map: &mut serde_json::Map<String, serde_json::Value>, parts: &[&str]) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    if rest.is_empty() {
        map.entry((*first).to_owned())
            .or_insert_with(|| serde_json::Value::String("1".to_owned()));
        return;
    }
    let entry = map
        .entry((*first).to_owned())
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if !entry.is_object() {
        *entry = serde_json::Value::Object(serde_json::Map::new());
    }
    if let serde_json::Value::Object(inner) = entry {
        stand_in(inner, rest);
    }
}

/// Renders a template against a context. Errors name the first undefined value.
pub fn render(text: &str, ctx: &serde_json::Value) -> Result<String, String> {
    let value = minijinja::Value::from(minijinja::value::Serde(ctx));
    env()
        .render_str(text, value)
        .map_err(|e| describe_error(&e))
}

/// Evaluates an expression to a JSON value.
pub fn eval(expr: &str, ctx: &serde_json::Value) -> Result<serde_json::Value, String> {
    let compiled = env()
        .compile_expression(expr)
        .map_err(|e| describe_error(&e))?;
    let value = compiled
        .eval(minijinja::Value::from(minijinja::value::Serde(ctx)))
        .map_err(|e| describe_error(&e))?;
    serde_json::to_value(&value).map_err(|e| e.to_string())
}

/// Evaluates an expression for its truth.
pub fn eval_bool(expr: &str, ctx: &serde_json::Value) -> Result<bool, String> {
    let compiled = env()
        .compile_expression(expr)
        .map_err(|e| describe_error(&e))?;
    compiled
        .eval(minijinja::Value::from(minijinja::value::Serde(ctx)))
        .map(|v| v.is_true())
        .map_err(|e| describe_error(&e))
}

fn describe_error(err: &minijinja::Error) -> String {
    match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    }
}

/// Renders a template keeping the value's type when the whole string is one expression
/// (`"{{ params.count }}"` gives the number 3, not the text "3"). Used where values are bound
/// (SQL parameters, include parameters), so a number stays a number.
pub fn render_native(text: &str, ctx: &serde_json::Value) -> Result<serde_json::Value, String> {
    let trimmed = text.trim();
    if let Some(inner) = trimmed
        .strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
        && !inner.contains("{{")
        && !inner.contains("}}")
    {
        return eval(inner.trim(), ctx);
    }
    render(text, ctx).map(serde_json::Value::String)
}

/// Jinja truth for a JSON value (what `{% if %}` would decide).
pub fn truthy(v: &serde_json::Value) -> bool {
    use serde_json::Value as Json;
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(m) => !m.is_empty(),
    }
}
