//! The invalid-playbook corpus: every file gets exit code 2 and a snapshot of its exact
//! diagnostics. None may panic.

use crate::support::{Runbook, repo};

#[test]
fn corpus_is_large_enough() {
    let n = std::fs::read_dir(repo().join("tests/fixtures/invalid"))
        .expect("corpus folder")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        .count();
    assert!(
        n >= 40,
        "the corpus has {n} files; the issue asks for at least 40"
    );
}

#[test]
fn every_invalid_playbook_is_rejected_with_its_diagnostic() {
    insta::glob!(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"),
        "invalid/*.yaml",
        |path| {
            let file = path
                .file_name()
                .and_then(|f| f.to_str())
                .expect("utf-8 name");
            let rel = format!("../invalid/{file}");
            let out = Runbook::new(&["-C", "tests/fixtures/project", "validate", &rel]).run();
            assert!(
                !out.stderr.contains("panicked"),
                "{rel} panicked:\n{}",
                out.stderr
            );
            assert_eq!(out.code, 2, "{rel} must exit 2:\n{}", out.combined());
            assert!(
                out.stderr.contains("error["),
                "{rel} printed no diagnostic:\n{}",
                out.combined()
            );
            insta::assert_snapshot!(out.combined());
        }
    );
}

#[test]
fn the_fixture_project_itself_is_valid() {
    let out = Runbook::new(&["-C", "tests/fixtures/project", "validate"]).run();
    assert_eq!(out.code, 0, "{}", out.combined());
}
