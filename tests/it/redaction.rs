//! Secrets never leave: a secret printed by steps raw, base64, URL-encoded, JSON-escaped,
//! inside a connection URL and in error messages appears in none of the terminal output, the
//! tracing output, the audit files or the state store.

use crate::support::Runbook;
use crate::support::{Project, Target};
use base64::Engine as _;
use std::path::Path;

/// Quotes, a backslash, a slash, plus signs and an ampersand make every encoding differ.
const SECRET: &str = r#"Tk-9f"Q\x/+7&z=Secret"#;

fn forms(secret: &str) -> Vec<(String, String)> {
    let b = secret.as_bytes();
    let mut out = vec![("raw".to_owned(), secret.to_owned())];
    for (name, engine) in [
        ("base64", &base64::engine::general_purpose::STANDARD),
        (
            "base64 no pad",
            &base64::engine::general_purpose::STANDARD_NO_PAD,
        ),
        ("base64url", &base64::engine::general_purpose::URL_SAFE),
        (
            "base64url no pad",
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ),
    ] {
        out.push((name.to_owned(), engine.encode(b)));
    }
    let pct: String = b
        .iter()
        .map(|&c| {
            if c.is_ascii_alphanumeric() || b"-_.~".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect();
    out.push(("url-encoded".to_owned(), pct.clone()));
    out.push(("form-encoded".to_owned(), pct.replace("%20", "+")));
    let json = serde_json::to_string(secret).unwrap();
    out.push(("json-escaped".to_owned(), json.trim_matches('"').to_owned()));
    out
}

const PLAYBOOK: &str = r#"
name: leaky
params:
  token: { type: string, secret: true, from_env: LEAKY_TOKEN }
steps:
  - id: raw
    shell: { argv: [sh, -c, 'printf "token=%s\n" "$T"'], env: { T: "{{ params.token }}" } }
  - id: encoded
    shell:
      argv:
        - python3
        - -c
        - |
          import base64, json, os, urllib.parse
          t = os.environ["T"]
          print("b64", base64.b64encode(t.encode()).decode())
          print("b64url", base64.urlsafe_b64encode(t.encode()).decode().rstrip("="))
          print("url", urllib.parse.quote(t, safe=""))
          print("form", urllib.parse.quote_plus(t))
          print("json", json.dumps({"token": t}))
          print("dsn", "postgres://app:" + urllib.parse.quote(t, safe="") + "@db.internal:5432/prod")
          print("dsn2", "postgres://db.internal/prod?user=app&password=" + t)
      env: { T: "{{ params.token }}" }
  - id: also_config_secret
    shell: { argv: [sh, -c, 'echo "the other secret is $OTHER_SECRET"'] }
  - id: sql_error
    continue_on_error: true
    sql: { query: "SELECT CAST($1 AS INTEGER)", params: ["{{ params.token }}"] }
  - id: fails
    shell: { argv: [sh, -c, 'echo "login failed for password $T" >&2; exit 4'], env: { T: "{{ params.token }}" } }
"#;

fn scan_dir(dir: &Path, forms: &[(String, String)], what: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            scan_dir(&path, forms, what);
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for (name, form) in forms {
            assert!(
                !text.contains(form.as_str()),
                "the {name} form of the secret is in {what} file {}",
                path.display()
            );
        }
    }
}

fn leaks(target: Target) {
    let other = "Other-Secret-Value-42";
    let p = Project::new(|_| target);
    std::fs::write(
        p.path().join("runbook.yaml"),
        "environments:\n  dev:\n    target: { sqlite: dev.db }\n    allow_target_override: true\nsecrets: [OTHER_SECRET]\n",
    )
    .unwrap();
    p.playbook("leaky", PLAYBOOK);
    let t = p.target.arg();
    let out = Runbook::new(&[
        "-C",
        &p.path().display().to_string(),
        "-v",
        "run",
        "leaky",
        "--target",
        &t,
    ])
    .env("LEAKY_TOKEN", SECRET)
    .env("OTHER_SECRET", other)
    .env("RUST_LOG", "runbook=debug")
    .run();
    assert_eq!(
        out.code,
        1,
        "the last step fails on purpose:\n{}",
        out.combined()
    );
    let mut all = forms(SECRET);
    all.extend(forms(other));
    let terminal = out.combined();
    // The steps really printed the secret in every form; the terminal shows masks.
    assert!(
        terminal.contains("step arguments"),
        "tracing output is part of what is checked:\n{terminal}"
    );
    assert!(terminal.contains("***"), "{terminal}");
    for (name, form) in &all {
        assert!(
            !terminal.contains(form.as_str()),
            "the {name} form of a secret reached the terminal:\n{terminal}"
        );
    }
    let (id, _) = p.last_run();
    let status = p.cmd(&["status", &id, "--format", "json"]);
    assert!(
        status.stdout.contains("token=***"),
        "outputs are kept, masked: {}",
        status.stdout
    );
    // Masking keeps machine-readable output well-formed.
    let parsed: serde_json::Value =
        serde_json::from_str(&status.stdout).expect("status JSON stays valid after masking");
    let steps = parsed["steps"].as_array().unwrap();
    let encoded = steps.iter().find(|s| s["step"] == "encoded").unwrap()["outputs"]["stdout"]
        .as_str()
        .unwrap()
        .to_owned();
    for line in [
        "b64 ***",
        "b64url ***",
        "url ***",
        "form ***",
        "json {\"token\": \"***\"}",
        "dsn postgres://app:***@db.internal:5432/prod",
        "password=***",
    ] {
        assert!(
            encoded.contains(line),
            "`{line}` missing: the step printed every form and each was masked:\n{encoded}"
        );
    }
    let export = p.cmd(&["audit", "export", &id]);
    serde_json::from_str::<serde_json::Value>(&export.stdout).expect("the export stays valid JSON");
    assert!(
        export.stdout.contains("login failed for password ***"),
        "the error message is kept, masked"
    );
    for (name, form) in &all {
        assert!(
            !status.stdout.contains(form.as_str()),
            "the {name} form is in `runbook status`"
        );
        assert!(
            !export.stdout.contains(form.as_str()),
            "the {name} form is in the audit export"
        );
    }
    // The files themselves: the audit chain, the index and the state store (with its WAL).
    scan_dir(&p.path().join(".runbook"), &all, "state or audit");
}

#[test]
fn secrets_never_leave_with_a_sqlite_target() {
    leaks(Target::sqlite(
        tempfile::tempdir().unwrap().keep().as_path(),
    ));
}

#[test]
fn secrets_never_leave_with_a_postgres_target() {
    leaks(Target::postgres("redact"));
}

#[test]
fn a_password_in_the_target_url_is_never_shown() {
    // The target itself carries a password: it is masked in output, runs and audit records.
    let url = crate::support::pg::cluster().create_db("urlpw");
    crate::support::pg::cluster().psql(&url, "CREATE ROLE auditee LOGIN PASSWORD 'Url-Pass-9x7'");
    let with_pw = url.replace("postgres@", "auditee:Url-Pass-9x7@");
    let p = Project::new(|_| Target::Postgres(with_pw.clone()));
    p.playbook("q", "name: q\nsteps:\n  - id: one\n    sql: { query: SELECT 1 }\n  - id: bad\n    sql: { query: SELECT * FROM nowhere }\n");
    let out = p.run("q", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(out.stderr.contains("auditee:***@"), "{}", out.stderr);
    let (id, _) = p.last_run();
    let runs = p.cmd(&["runs", "--format", "json"]);
    let export = p.cmd(&["audit", "export", &id]);
    for text in [&out.combined(), &runs.stdout, &export.stdout] {
        assert!(!text.contains("Url-Pass-9x7"), "{text}");
    }
    scan_dir(
        &p.path().join(".runbook"),
        &[("password".into(), "Url-Pass-9x7".into())],
        "state or audit",
    );
}
