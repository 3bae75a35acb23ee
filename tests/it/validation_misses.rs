//! Mistakes validation catches before anything runs: each case exits 2 with the file, line and
//! column of the mistake, and the playbook's first step (which would leave a marker file) never
//! ran. Each was once missed, or found only after earlier steps ran.

use crate::support::{Project, Target};
use std::path::Path;

/// The config of every case unless it gives its own.
const CONFIG: &str = "environments:\n  dev:\n    target: { sqlite: target.db }\n";

/// A first step that leaves `marker` behind if anything ran.
const HEAD: &str = "name: p\nsteps:\n  - id: mark\n    shell: { argv: [touch, marker] }\n";

struct Case {
    name: &'static str,
    config: &'static str,
    /// Lines after `HEAD` (so the first is line 5), or a whole playbook when it starts with
    /// `name:`.
    playbook: &'static str,
    /// What the first error says and where: `file:line:col`.
    says: &'static str,
    at: &'static str,
}

fn case(name: &'static str, playbook: &'static str, says: &'static str, at: &'static str) -> Case {
    Case {
        name,
        config: CONFIG,
        playbook,
        says,
        at,
    }
}

fn config_case(
    name: &'static str,
    config: &'static str,
    says: &'static str,
    at: &'static str,
) -> Case {
    Case {
        name,
        config,
        playbook: "",
        says,
        at,
    }
}

fn project(c: &Case) -> Project {
    let p = Project::new(Target::sqlite);
    std::fs::write(p.path().join("runbook.yaml"), c.config).unwrap();
    let text = if c.playbook.starts_with("name:") {
        c.playbook.to_owned()
    } else {
        format!("{HEAD}{}", c.playbook)
    };
    p.playbook("p", &text);
    p
}

/// Runs `runbook run p` (or `runbook validate` for problems of other files) and checks the
/// case's error, its position and that nothing ran.
fn check(c: &Case, p: &Project, command: &str) -> Option<String> {
    let out = p.cmd(&[command, "p"][..if command == "run" { 2 } else { 1 }]);
    let mut wrong = Vec::new();
    if out.code != 2 {
        wrong.push(format!("exit {} (not 2)", out.code));
    }
    if !out.stderr.contains(c.says) {
        wrong.push(format!("does not say {:?}", c.says));
    }
    if !out.stderr.contains(&format!("--> {}", c.at)) {
        wrong.push(format!("not at {}", c.at));
    }
    if p.path().join("marker").exists() {
        wrong.push("the first step ran".to_owned());
    }
    (!wrong.is_empty()).then(|| format!("{}: {}\n{}", c.name, wrong.join("; "), out.combined()))
}

fn check_all(cases: &[Case], prepare: impl Fn(&Case, &Path)) {
    check_with("run", cases, prepare);
}

fn check_with(command: &str, cases: &[Case], prepare: impl Fn(&Case, &Path)) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let p = project(c);
            prepare(c, p.path());
            check(c, &p, command)
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn time_zones_are_known_zones_or_real_offsets() {
    check_all(
        &[
            case(
                "misspelt zone",
                "  - id: w\n    gate:\n      window:\n        start: \"00:00\"\n        end: \"23:59\"\n        tz: Europe/Berlinn\n",
                "`Europe/Berlinn` is not a time zone",
                "playbooks/p.yaml:10:13",
            ),
            case(
                "offset past 14 hours",
                "  - id: w\n    gate:\n      window:\n        start: \"00:00\"\n        end: \"23:59\"\n        tz: \"+25:00\"\n",
                "`+25:00` is not a time zone",
                "playbooks/p.yaml:10:13",
            ),
            config_case(
                "zone on Mars in the config",
                "environments:\n  dev:\n    target: { sqlite: target.db }\n    protections:\n      windows:\n        - start: \"00:00\"\n          end: \"23:59\"\n          tz: Mars/Olympus\n",
                "`Mars/Olympus` is not a time zone",
                "runbook.yaml:8:15",
            ),
        ],
        |_, _| {},
    );
}

#[test]
fn durations_are_above_zero_and_countable() {
    check_all(
        &[
            case(
                "zero timeout",
                "  - id: s\n    timeout: 0s\n    shell: { argv: [\"true\"] }\n",
                "a `timeout` of `0s`",
                "playbooks/p.yaml:6:14",
            ),
            case(
                "timeout that overflows",
                "  - id: s\n    timeout: 99999999999999999999s\n    shell: { argv: [\"true\"] }\n",
                "`99999999999999999999s` is too long",
                "playbooks/p.yaml:6:14",
            ),
            case(
                "retry delay that overflows",
                "  - id: s\n    retry:\n      attempts: 2\n      delay: 999999999999999d\n    shell: { argv: [\"true\"] }\n",
                "`999999999999999d` is too long",
                "playbooks/p.yaml:8:14",
            ),
            config_case(
                "approval expiry that overflows",
                "environments:\n  dev:\n    target: { sqlite: target.db }\n    protections:\n      approval_expiry: 99999999999999999999h\n",
                "`99999999999999999999h` is too long",
                "runbook.yaml:5:24",
            ),
        ],
        |_, _| {},
    );
}

#[test]
fn empty_lists_that_mean_nothing_are_refused() {
    check_all(
        &[
            Case {
                name: "no choices",
                config: CONFIG,
                playbook: "name: p\nparams:\n  level:\n    type: string\n    choices: []\nsteps:\n  - id: mark\n    shell: { argv: [touch, marker] }\n",
                says: "`choices` is empty",
                at: "playbooks/p.yaml:5:14",
            },
            case(
                "no health checks",
                "  - id: h\n    health:\n      checks: []\n",
                "`checks` is empty",
                "playbooks/p.yaml:7:15",
            ),
            case(
                "a window on no day",
                "  - id: w\n    gate:\n      window:\n        days: []\n        start: \"00:00\"\n        end: \"23:59\"\n",
                "`days` is empty",
                "playbooks/p.yaml:8:15",
            ),
            config_case(
                "a config window on no day",
                "environments:\n  dev:\n    target: { sqlite: target.db }\n    protections:\n      windows:\n        - days: []\n          start: \"00:00\"\n          end: \"23:59\"\n",
                "`days` is empty",
                "runbook.yaml:6:17",
            ),
        ],
        |_, _| {},
    );
}

#[test]
fn the_config_names_each_store_once_and_no_empty_paths() {
    check_all(
        &[
            config_case(
                "two state stores",
                "environments:\n  dev:\n    target: { sqlite: target.db }\nstate:\n  url_env: STATE_URL\n  sqlite: state.db\n",
                "`state` names two stores",
                "runbook.yaml:5:12",
            ),
            config_case(
                "empty audit dir",
                "environments:\n  dev:\n    target: { sqlite: target.db }\naudit:\n  dir: \"\"\n",
                "`audit.dir` is empty",
                "runbook.yaml:5:8",
            ),
            config_case(
                "empty state path",
                "environments:\n  dev:\n    target: { sqlite: target.db }\nstate:\n  sqlite: \"\"\n",
                "`state.sqlite` is empty",
                "runbook.yaml:5:11",
            ),
            config_case(
                "empty target path",
                "environments:\n  dev:\n    target:\n      sqlite: \"\"\n",
                "the `sqlite` path of `dev` is empty",
                "runbook.yaml:4:15",
            ),
            config_case(
                "missing targets file",
                "environments:\n  dev:\n    target: { sqlite: target.db }\n    targets_file: fleet/targets.yaml\n",
                "cannot read the targets file `fleet/targets.yaml`",
                "runbook.yaml:4:19",
            ),
        ],
        |_, _| {},
    );
}

#[test]
fn what_a_step_reads_exists_before_anything_runs() {
    check_all(
        &[
            case(
                "unknown filter on a step's output",
                "  - id: say\n    log: { message: \"{{ steps.mark.status | shout }}\" }\n",
                "unknown filter `shout`",
                "playbooks/p.yaml:6:",
            ),
            case(
                "missing seed set",
                "  - id: seed\n    seed: { set: nosuchset }\n",
                "seed set `nosuchset`",
                "playbooks/p.yaml:6:18",
            ),
            case(
                "missing migrations folder",
                "  - id: up\n    migrate: { action: apply, dir: no/such/dir }\n",
                "migrations folder `no/such/dir`",
                "playbooks/p.yaml:6:36",
            ),
        ],
        |_, _| {},
    );
}

#[test]
fn a_secret_is_never_written_into_a_shell_script() {
    check_all(
        &[Case {
            name: "secret in a script",
            config: CONFIG,
            playbook: "name: p\nparams:\n  token: { type: string, secret: true, default: x }\nsteps:\n  - id: mark\n    shell: { argv: [touch, marker] }\n  - id: call\n    shell:\n      script: 'curl -H \"Authorization: {{ params.token }}\" https://example.com'\n",
            says: "secret parameter `token` is written into a shell script",
            at: "playbooks/p.yaml:9:",
        }],
        |_, _| {},
    );
}

#[test]
fn playbook_files_that_cannot_be_read_or_clash_are_errors() {
    check_with(
        "validate",
        &[
            case(
                "a 10 MB playbook",
                "",
                "is larger than",
                "playbooks/big.yaml:1:1",
            ),
            case(
                "a symlink loop",
                "",
                "cannot read",
                "playbooks/loop.yaml:1:1",
            ),
            case(
                "two playbooks named p",
                "",
                "two playbooks are named `p`",
                "playbooks/twin.yaml:1:7",
            ),
        ],
        |c, dir| {
            let books = dir.join("playbooks");
            match c.name {
                "a 10 MB playbook" => {
                    let mut text = String::from("name: big\nsteps:\n");
                    while text.len() < 10 * 1024 * 1024 {
                        text.push_str("# padding padding padding padding padding padding\n");
                    }
                    std::fs::write(books.join("big.yaml"), text).unwrap();
                }
                "a symlink loop" => {
                    std::os::unix::fs::symlink("loop.yaml", books.join("loop.yaml")).unwrap();
                }
                _ => std::fs::write(books.join("twin.yaml"), HEAD).unwrap(),
            }
        },
    );
}
