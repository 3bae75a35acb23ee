//! Parameter declarations: names, typed defaults and choices, secrets without defaults,
//! `from_env` variable names.

use super::checker::Checker;
use super::names::{is_env_name, is_identifier};
use crate::diagnostic::{Diagnostic, article};
use crate::playbook::ParamType;
use crate::source::Pos;

impl Checker<'_> {
    pub(super) fn params(&mut self) {
        for (name, param) in &self.def.params {
            let path = ["params".to_owned(), name.clone()];
            if !is_identifier(name) {
                let pos = self
                    .node(&["params".to_owned()])
                    .and_then(|n| n.key(name))
                    .map_or(Pos::UNKNOWN, |n| n.pos);
                self.diags.push(
                    Diagnostic::error(
                        "invalid-name",
                        format!("parameter name `{name}` is not an identifier"),
                    )
                    .at(self.source, pos)
                    .with_width(name.chars().count())
                    .with_hint("use letters, digits and `_` so templates can read `params.<name>`"),
                );
            }
            if param.secret && param.default.is_some() {
                let mut p = path.to_vec();
                p.push("default".to_owned());
                self.err_at(&p, "secret-default", format!("secret parameter `{name}` has a default in the playbook"),
                    "a secret written in a playbook is stored in plain text; use `from_env` to read it from the environment");
            }
            if let Some(default) = &param.default {
                if !type_matches(param.kind, default) {
                    let mut p = path.to_vec();
                    p.push("default".to_owned());
                    self.err_at(
                        &p,
                        "wrong-type",
                        format!("default of `{name}` is not {}", article(param.kind.name())),
                        format!("give {} or change `type`", article(param.kind.name())),
                    );
                }
                if let Some(choices) = &param.choices
                    && !choices.contains(default)
                {
                    let mut p = path.to_vec();
                    p.push("default".to_owned());
                    self.err_at(
                        &p,
                        "invalid-value",
                        format!("default of `{name}` is not one of its choices"),
                        "make the default one of `choices`",
                    );
                }
            }
            if param.choices.as_ref().is_some_and(Vec::is_empty) {
                let p = vec!["params".to_owned(), name.clone(), "choices".to_owned()];
                self.err_at(
                    &p,
                    "invalid-value",
                    format!("`choices` is empty: no value of `{name}` is allowed"),
                    "list the allowed values, or remove `choices` to allow any",
                );
            }
            if let Some(choices) = &param.choices {
                for (i, choice) in choices.iter().enumerate() {
                    if !type_matches(param.kind, choice) {
                        let p = vec![
                            "params".to_owned(),
                            name.clone(),
                            "choices".to_owned(),
                            i.to_string(),
                        ];
                        self.err_at(
                            &p,
                            "wrong-type",
                            format!("choice of `{name}` is not {}", article(param.kind.name())),
                            "every choice must have the parameter's type",
                        );
                    }
                }
            }
            if let Some(var) = &param.from_env
                && !is_env_name(var)
            {
                let p = vec!["params".to_owned(), name.clone(), "from_env".to_owned()];
                self.err_at(
                    &p,
                    "invalid-name",
                    format!("`{var}` is not an environment variable name"),
                    "give the variable's name, like `ADMIN_DEFAULT_PASSWORD`, not its value",
                );
            }
        }
    }
}

/// Whether a JSON value has the parameter type `kind` (integers are numbers too).
pub fn type_matches(kind: ParamType, value: &serde_json::Value) -> bool {
    match kind {
        ParamType::String => value.is_string(),
        ParamType::Integer => value.is_i64() || value.is_u64(),
        ParamType::Number => value.is_number(),
        ParamType::Boolean => value.is_boolean(),
    }
}
