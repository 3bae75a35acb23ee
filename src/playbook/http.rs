//! The `http` action: one request to an application (a deploy's `/health`, a critical
//! endpoint), with the status and JSON body it must answer with. Retries are the step's own
//! `retry`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpAction {
    /// `http://` or `https://`, usually from a variable: `"{{ vars.app_url }}/health"`.
    pub url: String,
    /// GET (default), HEAD, POST, PUT, PATCH, DELETE or OPTIONS.
    #[serde(default)]
    pub method: Option<String>,
    /// Request headers. Values are never printed or recorded: the values of headers that carry
    /// credentials (Authorization, Cookie, anything naming a token, key or secret) are masked
    /// wherever they would appear, as are secret parameters.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A request body: text as is, anything else sent as JSON.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// The statuses that count as success (default: any 2xx).
    #[serde(default)]
    pub expect_status: Option<Vec<u16>>,
    /// Assertions on the JSON body, each a path (`$.status`, `$.checks[0].name`, or a JSON
    /// Pointer `/status`) with `equals` or `exists`.
    #[serde(default)]
    pub json: Vec<JsonAssert>,
    /// Seconds one request may take (default 10, and never more than the step's timeout).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// One assertion on the response's JSON body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonAssert {
    pub path: String,
    /// The value found must equal this (numbers compare by value: 1 equals 1.0).
    #[serde(default)]
    pub equals: Option<serde_json::Value>,
    /// Whether the path must be present (`true`) or absent (`false`).
    #[serde(default)]
    pub exists: Option<bool>,
}

/// The methods the action sends.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// A path as a JSON Pointer: `/a/0` as is; `$`, `$.a.b`, `$.a[0]`, `$['a b']` converted. `None`
/// when it is neither.
pub fn json_pointer(path: &str) -> Option<String> {
    if path.is_empty() || path.starts_with('/') {
        return Some(path.to_owned());
    }
    let mut rest = path.strip_prefix('$')?;
    let mut out = String::new();
    let escape = |s: &str| s.replace('~', "~0").replace('/', "~1");
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return None;
            }
            out.push('/');
            out.push_str(&escape(&r[..end]));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("['") {
            let end = r.find("']")?;
            out.push('/');
            out.push_str(&escape(&r[..end]));
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let index = &r[..end];
            if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            out.push('/');
            out.push_str(index);
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(out)
}

/// Whether a header's value is a credential by its name.
pub fn is_credential_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "x-api-key"
    ) || ["token", "secret", "key", "password", "auth"]
        .iter()
        .any(|w| n.contains(w))
}

#[cfg(test)]
mod tests {
    use super::{is_credential_header, json_pointer};

    #[test]
    fn paths_become_json_pointers() {
        assert_eq!(json_pointer("$").as_deref(), Some(""));
        assert_eq!(json_pointer("$.status").as_deref(), Some("/status"));
        assert_eq!(
            json_pointer("$.checks[0].name").as_deref(),
            Some("/checks/0/name")
        );
        assert_eq!(json_pointer("$['a/b'].c").as_deref(), Some("/a~1b/c"));
        assert_eq!(json_pointer("/x/1").as_deref(), Some("/x/1"));
        assert_eq!(json_pointer("status"), None);
        assert_eq!(json_pointer("$.a[x]"), None);
        assert_eq!(json_pointer("$..a"), None);
    }

    #[test]
    fn credential_headers_are_known_by_name() {
        assert!(is_credential_header("Authorization"));
        assert!(is_credential_header("X-Auth-Token"));
        assert!(!is_credential_header("Accept"));
    }
}
