//! The `http` action against a local server the test starts: status and JSON assertions, the
//! step's retries, a URL from the environment's vars, credential headers masked everywhere
//! runbook writes, and the shipped deploy and verify playbooks' application check, skipped
//! when no URL is configured.

use crate::support::{Project, Target, copy_dir, repo};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// One request the server saw.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    headers: Vec<(String, String)>,
    pub(crate) body: String,
}

/// A server on 127.0.0.1 answering each request with the next scripted (status, body), the
/// last one repeated.
pub(crate) struct Server {
    pub(crate) url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    pub(crate) fn start(script: Vec<(u16, &'static str)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_owned();
                let path = parts.next().unwrap_or_default().to_owned();
                let mut headers = Vec::new();
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.trim_end().split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                log.lock().unwrap().push(Seen {
                    method,
                    path,
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let (status, text) = script[n.min(script.len() - 1)];
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        Server { url, seen }
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

pub(crate) const HEALTHY: &str =
    r#"{"status":"ok","checks":[{"name":"database","ok":true}],"version":"1.4.2"}"#;

fn project(app_url: &str) -> Project {
    let p = Project::new(Target::sqlite);
    std::fs::write(
        p.path().join("runbook.yaml"),
        format!(
            "environments:\n  dev:\n    target: {{ sqlite: target.db }}\n    allow_target_override: true\n    vars: {{ app_url: \"{app_url}\" }}\n"
        ),
    )
    .unwrap();
    p
}

#[test]
fn a_request_passes_on_its_status_and_json_and_says_what_it_found_otherwise() {
    let server = Server::start(vec![(200, HEALTHY)]);
    let p = project(&server.url);
    p.playbook(
        "app",
        "name: app\nsteps:\n  - id: app\n    http:\n      url: \"{{ vars.app_url }}/health\"\n      json:\n        - { path: $.status, equals: ok }\n        - { path: \"$.checks[0].ok\", equals: true }\n        - { path: $.version, exists: true }\n  - id: show\n    log: { message: \"app {{ steps.app.outputs.json.version }} answered {{ steps.app.outputs.status }}\" }\n",
    );
    let out = p.run("app", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        out.stderr.contains("app 1.4.2 answered 200"),
        "{}",
        out.stderr
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", "/health")
    );

    // A JSON assertion that does not hold fails the step, naming what it found.
    p.playbook(
        "bad",
        "name: bad\nsteps:\n  - id: app\n    http:\n      url: \"{{ vars.app_url }}/health\"\n      json:\n        - { path: $.status, equals: down }\n",
    );
    let out = p.run("bad", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("`$.status` is \"ok\", expected \"down\""),
        "{}",
        out.stderr
    );

    // A status it does not expect fails it too, with the body's start.
    let down = Server::start(vec![(503, r#"{"status":"starting"}"#)]);
    let p = project(&down.url);
    p.playbook(
        "app",
        "name: app\nsteps:\n  - id: app\n    http: { url: \"{{ vars.app_url }}/health\", expect_status: [200] }\n",
    );
    let out = p.run("app", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains("answered 503") && out.stderr.contains("expected one of 200"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("\"starting\""), "{}", out.stderr);
}

#[test]
fn the_steps_retry_waits_for_the_application_to_come_up() {
    let server = Server::start(vec![
        (503, r#"{"status":"starting"}"#),
        (503, r#"{"status":"starting"}"#),
        (200, HEALTHY),
    ]);
    let p = project(&server.url);
    p.playbook(
        "app",
        "name: app\nsteps:\n  - id: app\n    http: { url: \"{{ vars.app_url }}/health\", json: [{ path: $.status, equals: ok }] }\n    retry: { attempts: 4, delay: 100ms }\n",
    );
    let out = p.run("app", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(server.seen().len(), 3);
    let (id, _) = p.last_run();
    let st = p.status_json(&id);
    assert_eq!(st["steps"][0]["attempts"], 3, "{st:#}");
}

#[test]
fn credential_headers_reach_the_server_and_nothing_runbook_writes() {
    let server = Server::start(vec![(201, r#"{"accepted":true}"#)]);
    let p = project(&server.url);
    p.playbook(
        "post",
        "name: post\nparams:\n  token: { type: string, secret: true }\nsteps:\n  - id: notify\n    http:\n      method: POST\n      url: \"{{ vars.app_url }}/deploys\"\n      headers:\n        Authorization: \"Bearer {{ params.token }}\"\n        X-Api-Key: key-not-a-param-4242\n        Accept: application/json\n      body: { version: \"1.4.2\" }\n      expect_status: [201]\n      json: [{ path: /accepted, equals: true }]\n",
    );
    let token = "tok-secret-99887766";
    let out = p.run("post", &["--var", &format!("token={token}"), "-v"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let seen = server.seen();
    let header = |k: &str| {
        seen[0]
            .headers
            .iter()
            .find(|(h, _)| h == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(seen[0].method, "POST");
    assert_eq!(header("authorization"), format!("Bearer {token}"));
    assert_eq!(header("x-api-key"), "key-not-a-param-4242");
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(seen[0].body, r#"{"version":"1.4.2"}"#);
    // Not on the terminal, in the state store, the audit chain or the plan.
    let (id, _) = p.last_run();
    let status = p.cmd(&["status", &id, "--format", "json"]).stdout;
    let audit = p.cmd(&["audit", "export", &id]).stdout;
    let plan = p.cmd(&[
        "plan",
        "post",
        "--env",
        "dev",
        "--offline",
        "--var",
        &format!("token={token}"),
    ]);
    for (what, text) in [
        ("output", out.combined()),
        ("status", status),
        ("audit", audit),
        ("plan", plan.combined()),
    ] {
        assert!(what != "plan" || text.contains("X-Api-Key: ***"), "{text}");
        assert!(!text.contains(token), "{what}: {text}");
        assert!(!text.contains("key-not-a-param-4242"), "{what}: {text}");
    }
}

#[test]
fn a_bad_http_step_is_refused_at_its_line() {
    let p = project("http://127.0.0.1:9");
    p.playbook(
        "bad",
        "name: bad\nsteps:\n  - id: app\n    http:\n      url: ftp://example.com/x\n      method: FETCH\n      expect_status: [99]\n      json: [{ path: status }]\n",
    );
    let out = p.cmd(&["validate", "bad"]);
    assert_eq!(out.code, 2, "{}", out.combined());
    for says in [
        "`ftp://example.com/x` is not an http:// or https:// URL",
        "`FETCH` is not a method",
        "99 is not an HTTP status",
        "`status` is not a JSON path",
        "the assertion on `status` expects nothing",
    ] {
        assert!(out.stderr.contains(says), "{says}: {}", out.stderr);
    }
    assert!(out.stderr.contains("bad.yaml:5:12"), "{}", out.stderr);
}

/// The shipped project (config, playbooks, migrations, seeds) with the dev database in it.
fn shipped(app_health_url: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["playbooks", "migrations", "seeds"] {
        copy_dir(&repo().join(sub), &dir.path().join(sub));
    }
    let config = std::fs::read_to_string(repo().join("runbook.yaml")).unwrap();
    // The dev environment names the URL only when there is one: the shipped playbooks stay
    // valid for environments without the variable.
    let config = if app_health_url.is_empty() {
        config
    } else {
        config.replacen(
            "      seed_set: development\n",
            &format!("      seed_set: development\n      app_health_url: \"{app_health_url}\"\n"),
            1,
        )
    };
    std::fs::write(dir.path().join("runbook.yaml"), config).unwrap();
    std::fs::copy(
        repo().join("approvers.allowed_signers"),
        dir.path().join("approvers.allowed_signers"),
    )
    .unwrap();
    dir
}

fn shipped_run(dir: &std::path::Path, playbook: &str) -> crate::support::Output {
    let mut args = vec!["-C", dir.to_str().unwrap(), "run", playbook, "--env", "dev"];
    if playbook == "deploy" {
        args.extend(["--approve", "approve"]);
    }
    crate::support::Runbook::new(&args)
        .env("ADMIN_DEFAULT_PASSWORD", "a-long-enough-dev-password-1")
        .run()
}

#[test]
fn the_shipped_deploy_and_verify_check_the_application_when_a_url_is_configured() {
    // No URL: the check is skipped and the deploy succeeds.
    let dir = shipped("");
    let out = shipped_run(dir.path(), "deploy");
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(out.stderr.contains("app_health"), "{}", out.stderr);
    // The deploy ends with ANALYZE: SQLite keeps its statistics in sqlite_stat1.
    let stats = crate::support::sqlite::query(
        &dir.path().join(".runbook/dev.db"),
        "SELECT count(*) > 0 FROM sqlite_stat1",
    );
    assert_eq!(stats, ["1"], "{}", out.stderr);
    let out = shipped_run(dir.path(), "verify");
    assert_eq!(out.code, 0, "{}", out.combined());

    // With a URL the application must answer 200: the check runs after the deploy's verify.
    let server = Server::start(vec![(200, HEALTHY)]);
    let dir = shipped(&format!("{}/health", server.url));
    let out = shipped_run(dir.path(), "deploy");
    assert_eq!(out.code, 0, "{}", out.combined());
    let out = shipped_run(dir.path(), "verify");
    assert_eq!(out.code, 0, "{}", out.combined());
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|s| s.path == "/health"));
}

/// Ctrl-C while a request waits on a server that never answers: the run is interrupted and
/// the process ends at once. The request ran in the runtime's blocking pool, whose shutdown at
/// exit waited for it to time out (here 60 s), and a second Ctrl-C did nothing meanwhile.
#[test]
fn ctrl_c_during_a_request_ends_the_process_at_once() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/slow", listener.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept() {
            open.push(stream);
        }
    });
    drop(held);
    let p = project(&url);
    p.playbook(
        "call",
        &format!("name: call\nsteps:\n  - id: call\n    http: {{ url: \"{url}\", timeout_seconds: 60 }}\n"),
    );
    let mut child = p.start("call", &[]);
    let log = p.path().join("runbook.log");
    let mut waited = 0;
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("call")
    {
        assert!(waited < 400, "the run never started its request");
        std::thread::sleep(std::time::Duration::from_millis(50));
        waited += 1;
    }
    // The request is on its way once the step has started; give it a moment to connect.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut waited = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if waited >= 200 {
            let _ = child.kill();
            panic!(
                "runbook still running 10 s after Ctrl-C:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        waited += 1;
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(5), "{text}");
    assert_eq!(p.last_run().1, "interrupted", "{text}");
}
