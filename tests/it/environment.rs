//! Errors that are the user's environment, not runbook's: a database that refuses the
//! connection or the password. They exit 8 with a hint, never 70 ("internal error"), and say
//! what failed without the server's source line (`at line 334`).

use crate::stable;
use crate::support::{Project, Target, pg};
use std::net::TcpListener;

const PLAYBOOK: &str = "name: p\nsteps:\n  - id: q\n    sql:\n      query: SELECT 1\n";

/// A URL whose port nothing listens on (free a moment ago).
fn refused_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    format!("postgres://app:secret@127.0.0.1:{port}/app")
}

fn assert_environment(out: &crate::support::Output) {
    assert_eq!(out.code, 8, "{}", out.combined());
    for wrong in ["internal error", "cannot lock", " at line ", "secret"] {
        assert!(!out.stderr.contains(wrong), "{wrong}: {}", out.combined());
    }
}

#[test]
fn a_refused_connection_exits_8_with_a_hint() {
    let url = refused_url();
    let p = Project::new(|_| Target::Postgres(url.clone()));
    p.playbook("p", PLAYBOOK);
    let out = p.run("p", &[]);
    assert_environment(&out);
    stable!({ insta::assert_snapshot!(out.combined()) });
}

#[test]
fn a_resume_on_a_refused_connection_exits_8() {
    let p = Project::new(|_| Target::postgres("env_resume"));
    p.playbook(
        "p",
        "name: p\nsteps:\n  - id: ok\n    gate: { approval: { message: ship } }\n",
    );
    let waiting = p.run("p", &[]);
    assert_eq!(waiting.code, 3, "{}", waiting.combined());
    let (run, _) = p.last_run();
    let out = p.cmd(&["resume", &run, "--target", &refused_url()]);
    assert_environment(&out);
    stable!({ insta::assert_snapshot!(out.combined()) });
}

#[test]
fn an_unreachable_state_store_exits_8() {
    let url = refused_url();
    let p = Project::new(Target::sqlite);
    let out = p.cmd(&["runs", "--state", &url]);
    assert_environment(&out);
    stable!({ insta::assert_snapshot!(out.combined()) });
}

#[test]
fn a_wrong_password_exits_8_with_a_hint() {
    let url = pg::cluster().password_role("right-one", "postgres", "secret");
    let p = Project::new(|_| Target::Postgres(url.clone()));
    p.playbook("p", PLAYBOOK);
    let out = p.run("p", &[]);
    assert_environment(&out);
    assert!(out.stderr.contains("password"), "{}", out.combined());
    stable!({ insta::assert_snapshot!(out.combined()) });
}

/// A step whose program is not installed fails the run (exit 1: the run started and its
/// rollback ran) and says the program is missing, not an OS error number.
#[test]
fn a_missing_program_is_named_as_not_installed() {
    let p = Project::new(Target::sqlite);
    p.playbook(
        "p",
        "name: p\nsteps:\n  - id: tool\n    shell: { argv: [no-such-tool-runbook, --version] }\n",
    );
    let out = p.run("p", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("`no-such-tool-runbook`: it is not installed or not on PATH"),
        "{}",
        out.combined()
    );
    assert!(!out.combined().contains("os error"), "{}", out.combined());
}

/// A connected plan on a database that refuses the connection is the environment too.
#[test]
fn a_connected_plan_on_a_refused_connection_exits_8() {
    let url = refused_url();
    let p = Project::new(|_| Target::Postgres(url.clone()));
    p.playbook("p", PLAYBOOK);
    let out = p.cmd(&["plan", "p", "--env", "dev", "--target", &url]);
    assert_environment(&out);
    assert!(out.stderr.contains("--offline"), "{}", out.combined());
    assert!(!out.stderr.contains("os error"), "{}", out.combined());
}
