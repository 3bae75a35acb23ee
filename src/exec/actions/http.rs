//! `http`: one request to an application, its status and JSON body checked. The request runs
//! on a blocking thread (ureq), bounded by its own timeout and the step's, and given up at
//! Ctrl-C. Header values that are credentials join the run's redactor before anything is
//! printed, so they are masked in notes, errors and records like secret parameters.

use super::ctx::cap;
use crate::cancel::{Detached, wait_cancel};
use crate::exec::{ActionCtx, StepError, StepResult};
use crate::playbook::{HttpAction, JsonAssert, is_credential_header, json_pointer};
use serde_json::{Map, Value as Json, json};
use std::time::{Duration, Instant};

/// How long one request may take when the action says nothing.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a body read (and kept, capped again for outputs).
const MAX_BODY: u64 = 1 << 20;

/// What came back.
struct Answer {
    status: u16,
    body: String,
}

pub async fn run(a: &HttpAction, ctx: &mut ActionCtx<'_>) -> StepResult {
    for (name, value) in &a.headers {
        if is_credential_header(name) && !value.is_empty() {
            ctx.redactor.add(value);
        }
    }
    let method = a.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    let mut limit = a
        .timeout_seconds
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    if let Some(t) = ctx.timeout {
        limit = limit.min(t);
    }
    let shown_url = ctx.redactor.redact(&crate::dburl::redact_in_text(&a.url));
    let request = Request {
        method: method.clone(),
        url: a.url.clone(),
        headers: a
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        body: a.body.clone(),
        timeout: limit,
    };
    let began = Instant::now();
    // On a thread of its own, not the runtime's blocking pool: a request Ctrl-C leaves behind
    // would otherwise hold the process's exit until its timeout.
    let sent = crate::cancel::detached("http", move || request.send());
    let mut cancel = ctx.cancel.clone();
    let answer = tokio::select! {
        biased;
        _ = wait_cancel(&mut cancel) => return Err(StepError::Interrupted),
        sent = sent => sent.map_err(|e| StepError::Failed(match e {
            Detached::Spawn(e) => format!("cannot start the request: {e}"),
            Detached::Ended => "the request did not finish".to_owned(),
        }))?,
    };
    let took = began.elapsed();
    let answer = answer.map_err(|e| {
        StepError::Failed(ctx.redactor.redact(&format!("{method} {shown_url}: {e}")))
    })?;
    let ms = took.as_millis() as u64;
    let ok_status = match &a.expect_status {
        Some(list) => list.contains(&answer.status),
        None => (200..300).contains(&answer.status),
    };
    let parsed: Option<Json> = serde_json::from_str(&answer.body).ok();
    let excerpt = ctx.redactor.redact(&one_line(&answer.body, 200));
    if !ok_status {
        let wanted = match &a.expect_status {
            Some(list) => format!(
                "one of {}",
                list.iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "a 2xx status".to_owned(),
        };
        return Err(StepError::Failed(format!(
            "{method} {shown_url} answered {} in {ms} ms, expected {wanted}; body: {excerpt}",
            answer.status
        )));
    }
    let failures = check_json(&a.json, parsed.as_ref());
    if !failures.is_empty() {
        return Err(StepError::Failed(ctx.redactor.redact(&format!(
            "{method} {shown_url} answered {}, but {}; body: {excerpt}",
            answer.status,
            failures.join("; ")
        ))));
    }
    ctx.progress.note(&format!(
        "{method} {shown_url}: {} in {ms} ms{}",
        answer.status,
        if a.json.is_empty() {
            String::new()
        } else {
            format!(", {} JSON assertions hold", a.json.len())
        }
    ));
    let mut outputs = Map::new();
    outputs.insert("status".to_owned(), json!(answer.status));
    outputs.insert(
        "body".to_owned(),
        json!(ctx.redactor.redact(&cap(&answer.body))),
    );
    outputs.insert(
        "json".to_owned(),
        parsed.map_or(Json::Null, |j| ctx.redactor.redact_json(&j)),
    );
    outputs.insert("duration_ms".to_owned(), json!(ms));
    Ok(outputs)
}

/// What each assertion found wrong (empty: all hold).
fn check_json(asserts: &[JsonAssert], body: Option<&Json>) -> Vec<String> {
    if asserts.is_empty() {
        return Vec::new();
    }
    let Some(body) = body else {
        return vec!["the body is not JSON".to_owned()];
    };
    let mut out = Vec::new();
    for a in asserts {
        let Some(pointer) = json_pointer(&a.path) else {
            out.push(format!("`{}` is not a JSON path", a.path));
            continue;
        };
        let found = body.pointer(&pointer);
        if let Some(want) = a.exists
            && want != found.is_some()
        {
            out.push(format!(
                "`{}` is {}",
                a.path,
                if want { "missing" } else { "present" }
            ));
        }
        if let Some(want) = &a.equals {
            match found {
                None => out.push(format!("`{}` is missing (expected {want})", a.path)),
                Some(v) if !same(v, want) => {
                    out.push(format!("`{}` is {v}, expected {want}", a.path));
                }
                Some(_) => {}
            }
        }
    }
    out
}

/// Equal JSON values, numbers by value (`1` and `1.0`).
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Text on one line, cut at `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = flat.trim();
    if trimmed.chars().count() <= max {
        return trimmed.to_owned();
    }
    let cut: String = trimmed.chars().take(max).collect();
    format!("{cut}...")
}

/// The request, owned, for the blocking thread.
struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Json>,
    timeout: Duration,
}

impl Request {
    fn send(self) -> Result<Answer, String> {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .http_status_as_error(false)
            .build();
        let agent: ureq::Agent = config.into();
        let body: Option<(Vec<u8>, &str)> = self.body.as_ref().map(|b| match b {
            Json::String(s) => (s.clone().into_bytes(), "text/plain; charset=utf-8"),
            other => (other.to_string().into_bytes(), "application/json"),
        });
        let url = self.url.as_str();
        macro_rules! with_headers {
            ($rb:expr) => {{
                let mut rb = $rb;
                for (k, v) in &self.headers {
                    rb = rb.header(k.as_str(), v.as_str());
                }
                rb
            }};
        }
        macro_rules! with_body {
            ($rb:expr) => {{
                let rb = with_headers!($rb);
                match body {
                    Some((bytes, kind)) => {
                        let rb = if self
                            .headers
                            .iter()
                            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                        {
                            rb
                        } else {
                            rb.header("content-type", kind)
                        };
                        rb.send(bytes)
                    }
                    None => rb.send_empty(),
                }
            }};
        }
        let response = match self.method.as_str() {
            "GET" => with_headers!(agent.get(url)).call(),
            "HEAD" => with_headers!(agent.head(url)).call(),
            "DELETE" => with_headers!(agent.delete(url)).call(),
            "OPTIONS" => with_headers!(agent.options(url)).call(),
            "POST" => with_body!(agent.post(url)),
            "PUT" => with_body!(agent.put(url)),
            "PATCH" => with_body!(agent.patch(url)),
            other => return Err(format!("`{other}` is not a method the http action sends")),
        };
        let mut response = response.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .unwrap_or_default();
        Ok(Answer { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::check_json;
    use crate::playbook::JsonAssert;
    use serde_json::json;

    fn equals(path: &str, v: serde_json::Value) -> JsonAssert {
        JsonAssert {
            path: path.to_owned(),
            equals: Some(v),
            exists: None,
        }
    }

    #[test]
    fn json_assertions_say_what_they_found() {
        let body = json!({"status": "ok", "checks": [{"name": "db", "ms": 3}]});
        assert!(check_json(&[equals("$.status", json!("ok"))], Some(&body)).is_empty());
        assert!(check_json(&[equals("$.checks[0].ms", json!(3.0))], Some(&body)).is_empty());
        assert_eq!(
            check_json(&[equals("$.status", json!("down"))], Some(&body)),
            ["`$.status` is \"ok\", expected \"down\""]
        );
        let gone = JsonAssert {
            path: "$.version".to_owned(),
            equals: None,
            exists: Some(true),
        };
        assert_eq!(check_json(&[gone], Some(&body)), ["`$.version` is missing"]);
        assert_eq!(
            check_json(&[equals("$.a", json!(1))], None),
            ["the body is not JSON"]
        );
    }
}
