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

/// Non-ASCII letters make JSON's `\uXXXX` escapes differ from the raw text; a slash and a space
/// make percent-encoding differ in upper and lower case.
const WIDE: &str = "Pässwörd Ünï/42";

/// Every form of [`forms`], plus the ones that only a non-ASCII secret has: JSON with every
/// non-ASCII character as `\uXXXX` (lower and upper hex), and percent-encoding in lower case.
fn wide_forms(secret: &str) -> Vec<(String, String)> {
    let mut out = forms(secret);
    for (name, upper) in [("json \\u escapes", false), ("json \\U escapes", true)] {
        let escaped: String = secret
            .encode_utf16()
            .map(|u| match u {
                0x20..=0x7e => char::from_u32(u32::from(u)).unwrap().to_string(),
                _ if upper => format!("\\u{u:04X}"),
                _ => format!("\\u{u:04x}"),
            })
            .collect();
        out.push((name.to_owned(), escaped));
    }
    let pct = out
        .iter()
        .find(|(n, _)| n == "url-encoded")
        .unwrap()
        .1
        .clone();
    out.push(("url-encoded lower".to_owned(), lower_hex(&pct)));
    out
}

fn lower_hex(pct: &str) -> String {
    let mut out = String::new();
    let mut chars = pct.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            for _ in 0..2 {
                out.extend(chars.next().map(|h| h.to_ascii_lowercase()));
            }
        }
    }
    out
}

const WIDE_PLAYBOOK: &str = r#"
name: wide
params:
  token: { type: string, secret: true, from_env: WIDE_TOKEN }
  pin: { type: integer, secret: true }
  admin: { type: string, from_env: ADMIN_PASSWORD }
steps:
  - id: forms
    shell:
      argv:
        - python3
        - -c
        - |
          import json, os, re, urllib.parse
          t = os.environ["T"]
          print("ascii-json", json.dumps(t))
          print("upper-json", re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), json.dumps(t)))
          print("lower-url", re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), urllib.parse.quote(t, safe="")))
      env: { T: "{{ params.token }}" }
  - id: keys
    shell:
      argv: [python3, -c, 'import json, os; print(json.dumps({os.environ["T"]: "as a key", "pin": int(os.environ["P"]), os.environ["P"]: 1}, ensure_ascii=False))']
      env: { T: "{{ params.token }}", P: "{{ params.pin }}" }
  - id: pin
    shell: { argv: [sh, -c, 'echo "pin $P"'], env: { P: "{{ params.pin }}" } }
  - id: admin
    log: { message: "the admin password is {{ params.admin }}" }
"#;

/// Secrets as JSON object keys, as numbers, in `\uXXXX` escapes and lower-case percent
/// encoding, and a config secret that reaches a plain parameter through `from_env`: masked in
/// the terminal, `status`, the audit export, the state and audit files, and `runbook plan`.
#[test]
fn secrets_as_keys_numbers_escapes_and_config_secrets_never_leave() {
    let p = Project::new(Target::sqlite);
    std::fs::write(
        p.path().join("runbook.yaml"),
        "environments:\n  dev:\n    target: { sqlite: dev.db }\nsecrets: [ADMIN_PASSWORD]\n",
    )
    .unwrap();
    p.playbook("wide", WIDE_PLAYBOOK);
    let (pin, admin) = ("987654321", "Admin-Password-77");
    let run = |args: &[&str]| {
        let mut all = vec!["-C".to_owned(), p.path().display().to_string()];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        Runbook::new(&refs)
            .env("WIDE_TOKEN", WIDE)
            .env("ADMIN_PASSWORD", admin)
            .env("RUST_LOG", "runbook=debug")
            .run()
    };
    let mut all = wide_forms(WIDE);
    all.extend(forms(admin));
    all.push(("the pin".to_owned(), pin.to_owned()));
    for format in ["text", "json"] {
        let plan = run(&[
            "plan",
            "wide",
            "--env",
            "dev",
            "--offline",
            "--var",
            &format!("pin={pin}"),
            "--format",
            format,
        ]);
        assert_eq!(plan.code, 0, "{}", plan.combined());
        for (name, form) in &all {
            assert!(
                !plan.combined().contains(form.as_str()),
                "the {name} form is in the {format} plan:\n{}",
                plan.combined()
            );
        }
    }
    let out = run(&[
        "-v",
        "run",
        "wide",
        "--env",
        "dev",
        "--var",
        &format!("pin={pin}"),
    ]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let (id, _) = p.last_run();
    let status = run(&["status", &id, "--format", "json"]);
    let parsed: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let forms_out = parsed["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "forms")
        .unwrap()["outputs"]["stdout"]
        .as_str()
        .unwrap()
        .to_owned();
    for line in ["ascii-json \"***\"", "upper-json \"***\"", "lower-url ***"] {
        assert!(forms_out.contains(line), "`{line}` missing:\n{forms_out}");
    }
    let export = run(&["audit", "export", &id]);
    serde_json::from_str::<serde_json::Value>(&export.stdout).expect("the export stays valid JSON");
    let csv = run(&["audit", "export", &id, "--format", "csv"]);
    let show = run(&["audit", "show", &id]);
    let runs = run(&["runs", "--format", "json"]);
    let report = p.path().join("report.html");
    let html = run(&[
        "audit",
        "report",
        &id,
        "--output",
        &report.display().to_string(),
    ]);
    assert_eq!(html.code, 0, "{}", html.combined());
    for (channel, text) in [
        ("the terminal", out.combined()),
        ("`runbook status`", status.stdout.clone()),
        ("the audit export", export.stdout.clone()),
        ("the CSV export", csv.stdout.clone()),
        ("`audit show`", show.combined()),
        ("`runbook runs`", runs.stdout.clone()),
        ("the HTML report", std::fs::read_to_string(&report).unwrap()),
    ] {
        for (name, form) in &all {
            assert!(
                !text.contains(form.as_str()),
                "the {name} form is in {channel}:\n{text}"
            );
        }
    }
    scan_dir(&p.path().join(".runbook"), &all, "state or audit");
}
