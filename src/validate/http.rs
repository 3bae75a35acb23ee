//! The `http` action's rules: a method it sends, an `http://` or `https://` URL (or a template
//! that gives one), statuses that exist, JSON paths it can read, each assertion saying what it
//! expects, and no body on a method that carries none.

use super::checker::Checker;
use crate::playbook::{HttpAction, METHODS, json_pointer};

impl Checker<'_> {
    pub(super) fn http(&mut self, h: &HttpAction, p: &[String]) {
        let at = |key: &str| {
            let mut q = p.to_vec();
            q.push(key.to_owned());
            q
        };
        let templated = |s: &str| s.contains("{{");
        let method = h.method.as_deref().unwrap_or("GET");
        if !templated(method) && !METHODS.contains(&method.to_ascii_uppercase().as_str()) {
            self.err_at(
                &at("method"),
                "invalid-value",
                format!("`{method}` is not a method the http action sends"),
                format!("use one of {}", METHODS.join(", ")),
            );
        }
        let url = h.url.trim();
        if !(templated(url) || url.starts_with("http://") || url.starts_with("https://")) {
            self.err_at(
                &at("url"),
                "invalid-value",
                format!("`{url}` is not an http:// or https:// URL"),
                "give the application's address, usually from a variable: `\"{{ vars.app_url }}/health\"`",
            );
        }
        for (i, s) in h.expect_status.iter().flatten().enumerate() {
            if !(100..=599).contains(s) {
                let mut q = at("expect_status");
                q.push(i.to_string());
                self.err_at(
                    &q,
                    "invalid-value",
                    format!("{s} is not an HTTP status"),
                    "statuses are 100 to 599, e.g. `[200, 204]`",
                );
            }
        }
        for (i, a) in h.json.iter().enumerate() {
            let mut q = at("json");
            q.push(i.to_string());
            if json_pointer(&a.path).is_none() {
                let mut qp = q.clone();
                qp.push("path".into());
                self.err_at(
                    &qp,
                    "invalid-value",
                    format!("`{}` is not a JSON path", a.path),
                    "write `$.status`, `$.checks[0].name`, `$['a b']`, or a JSON Pointer `/status`",
                );
            }
            if a.equals.is_none() && a.exists.is_none() {
                self.err_at(
                    &q,
                    "incomplete-action",
                    format!("the assertion on `{}` expects nothing", a.path),
                    "add `equals: VALUE` or `exists: true`",
                );
            }
        }
        let bodyless =
            ["GET", "HEAD", "DELETE", "OPTIONS"].contains(&method.to_ascii_uppercase().as_str());
        if h.body.is_some() && bodyless {
            self.err_at(
                &at("body"),
                "conflicting-keys",
                format!("a {method} request carries no body"),
                "use `method: POST`, `PUT` or `PATCH`, or remove `body`",
            );
        }
    }
}
