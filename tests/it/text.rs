//! Text people read: counts through one plural helper, tables that stay aligned whatever the
//! names' lengths, statuses worded as sentences.

use crate::stable;
use crate::support::{Project, Runbook, Target};

const LONG: &str = "a-rather-long-playbook-name-for-tables";

fn project() -> Project {
    let p = Project::new(Target::sqlite);
    p.playbook(
        LONG,
        &format!(
            "name: {LONG}\ndescription: one step with a long id\nsteps:\n  - id: make_the_table_with_a_long_step_id\n    sql: {{ query: \"CREATE TABLE t (a INTEGER)\" }}\n"
        ),
    );
    p
}

#[test]
fn counts_of_one_are_singular_and_statuses_read_as_sentences() {
    let p = project();
    let mut shown = String::new();
    for args in [
        vec!["validate"],
        vec!["plan", LONG, "--env", "default", "--offline"],
    ] {
        let out = p.as_user("alice", &args);
        assert_eq!(out.code, 0, "{}", out.combined());
        shown.push_str(&format!(
            "$ runbook {}\n{}\n",
            args.join(" "),
            out.combined()
        ));
    }
    let out = p.run(LONG, &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let (id, _) = p.last_run();
    for args in [
        vec!["approve", id.as_str(), "x"],
        vec!["resume", id.as_str()],
    ] {
        let out = p.as_user("alice", &args);
        assert_ne!(out.code, 0, "{}", out.combined());
        shown.push_str(&format!(
            "$ runbook {}\n{}\n",
            args.join(" "),
            out.combined()
        ));
    }
    stable!({ insta::assert_snapshot!(shown) });
}

#[test]
fn tables_stay_aligned_with_long_names() {
    let p = project();
    p.playbook(
        "hello",
        "name: hello\nsteps:\n  - id: hello\n    log: { message: hello }\n",
    );
    let out = p.as_user(
        "a-very-long-operator-name",
        &["run", LONG, "--target", &p.target.arg()],
    );
    assert_eq!(out.code, 0, "{}", out.combined());
    let out = p.as_user("bob", &["run", "hello"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let (hello, _) = p.last_run();
    let mut shown = String::new();
    for args in [
        vec!["runs"],
        vec!["list"],
        vec!["status", hello.as_str()],
        vec!["audit", "list"],
    ] {
        let out = p.as_user("alice", &args);
        assert_eq!(out.code, 0, "{}", out.combined());
        shown.push_str(&format!(
            "$ runbook {}\n{}\n",
            args.join(" "),
            out.combined()
        ));
    }
    stable!({ insta::assert_snapshot!(shown) });
}

/// Every line of a text table has its columns at the same offsets as the header's.
#[test]
fn runs_columns_start_where_the_header_says() {
    let p = project();
    let out = p.run(LONG, &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let out = Runbook::new(&["-C", &p.path().display().to_string(), "runs"]).run();
    let lines: Vec<&str> = out.stdout.lines().collect();
    let env_at = lines[0].find("env").unwrap();
    assert_eq!(&lines[1][env_at..env_at + 3], "dev", "{}", out.stdout);
}
