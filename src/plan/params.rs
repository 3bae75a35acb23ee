//! Parameter values for a plan or a run: `--var`, then `from_env`, then the default, each
//! coerced to the parameter's type and checked against its choices.

use super::MASK;
use crate::diagnostic::{Diagnostic, article, did_you_mean};
use crate::playbook::{Param, ParamType, PlaybookDef};
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// A parameter value and whether it is secret.
#[derive(Debug, Clone)]
pub struct ParamValue {
    pub value: Json,
    pub secret: bool,
}

/// Splits `k=v` command-line variables.
pub fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("`{text}` is not `name=value`")),
    }
}

/// Resolves parameter values: `--var`, then `from_env`, then the default.
pub fn resolve_params(
    def: &PlaybookDef,
    vars: &[(String, String)],
    env_lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, ParamValue>, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    for (k, _) in vars {
        if !def.params.contains_key(k) {
            let hint = match did_you_mean(k, def.params.keys().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None if def.params.is_empty() => format!("`{}` takes no parameters", def.name),
                None => format!(
                    "`{}` takes: {}",
                    def.name,
                    def.params.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
            diags.push(
                Diagnostic::error(
                    "unknown-param",
                    format!("`{}` has no parameter `{k}`", def.name),
                )
                .with_hint(hint),
            );
        }
    }
    let mut out = BTreeMap::new();
    for (name, param) in &def.params {
        let given = vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone());
        let given = given.or_else(|| param.from_env.as_deref().and_then(env_lookup));
        let value = match given {
            Some(text) => match coerce(param, &text) {
                Ok(v) => v,
                Err(e) => {
                    diags.push(
                        Diagnostic::error("invalid-value", format!("parameter `{name}`: {e}"))
                            .with_hint(format!("`{name}` takes {}", article(param.kind.name()))),
                    );
                    continue;
                }
            },
            None => match &param.default {
                Some(d) => d.clone(),
                None if param.required => {
                    let how = match &param.from_env {
                        Some(var) => format!("set `{var}` or pass `--var {name}=...`"),
                        None => format!("pass `--var {name}=...`"),
                    };
                    diags.push(
                        Diagnostic::error(
                            "missing-param",
                            format!("parameter `{name}` is required"),
                        )
                        .with_hint(how),
                    );
                    continue;
                }
                None => Json::Null,
            },
        };
        if let Some(choices) = &param.choices
            && !value.is_null()
            && !choices.contains(&value)
        {
            let shown = if param.secret {
                MASK.to_owned()
            } else {
                value.to_string()
            };
            diags.push(
                Diagnostic::error(
                    "invalid-value",
                    format!("parameter `{name}` is {shown}, not one of its choices"),
                )
                .with_hint(format!(
                    "choose one of: {}",
                    choices
                        .iter()
                        .map(Json::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
            continue;
        }
        out.insert(
            name.clone(),
            ParamValue {
                value,
                secret: param.secret,
            },
        );
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

fn coerce(param: &Param, text: &str) -> Result<Json, String> {
    let shown = |t: &str| {
        if param.secret {
            MASK.to_owned()
        } else {
            format!("`{t}`")
        }
    };
    match param.kind {
        ParamType::String => Ok(Json::String(text.to_owned())),
        ParamType::Integer => text
            .trim()
            .parse::<i64>()
            .map(Json::from)
            .map_err(|_| format!("{} is not an integer", shown(text))),
        ParamType::Number => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .ok_or_else(|| format!("{} is not a number", shown(text))),
        ParamType::Boolean => match text.trim() {
            "true" => Ok(Json::Bool(true)),
            "false" => Ok(Json::Bool(false)),
            _ => Err(format!("{} is not `true` or `false`", shown(text))),
        },
    }
}
