//! The PostgreSQL state store: what each event costs in round trips (one statement per event,
//! counted by a proxy in front of the server), and the rows it leaves, the same as the SQLite
//! store's for the same run, a crash and a resume included.

use crate::support::{Project, Runbook, Target, pg, sqlite};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A TCP proxy in front of the test cluster that counts round trips: each time a client
/// sends after the server answered it (or sends first) is one.
struct Proxy {
    port: u16,
    trips: Arc<AtomicUsize>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let trips = Arc::new(AtomicUsize::new(0));
        let counted = trips.clone();
        let upstream = pg::cluster().port();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                // Whether the client spoke last on this connection.
                let last = Arc::new(Mutex::new(false));
                let (c, s) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (l, t) = (last.clone(), counted.clone());
                std::thread::spawn(move || pump(c, s, Some((l, t)), None));
                std::thread::spawn(move || pump(server, client, None, Some(last)));
            }
        });
        Proxy { port, trips }
    }

    fn url(&self, db_url: &str) -> String {
        db_url.replace(
            &format!(":{}/", pg::cluster().port()),
            &format!(":{}/", self.port),
        )
    }

    fn trips(&self) -> usize {
        self.trips.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to`. The client's side counts a round trip when it speaks after the
/// server; the server's side marks that it spoke before it forwards its answer, so the
/// client's next message always finds the mark.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    client: Option<(Arc<Mutex<bool>>, Arc<AtomicUsize>)>,
    server_spoke: Option<Arc<Mutex<bool>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((last, trips)) = &client {
            let mut spoke = last.lock().unwrap();
            if !*spoke {
                trips.fetch_add(1, Ordering::SeqCst);
                *spoke = true;
            }
        }
        if let Some(last) = &server_spoke {
            *last.lock().unwrap() = false;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

const STEPS: &str = "  - id: s{i}\n    shell: { argv: [\"true\"] }\n";

fn steps(n: usize) -> String {
    let mut text = String::from("name: steps\nsteps:\n");
    for i in 0..n {
        text.push_str(&STEPS.replace("{i}", &i.to_string()));
    }
    text
}

/// How much `count` grows over a run of 5 steps and over a run of 25 on the state store
/// `state`, after a first run that creates the tables: the two differ by 20 steps, 40 events.
fn short_and_long(p: &Project, state: &str, count: impl Fn() -> i64) -> (i64, i64) {
    p.playbook("steps", &steps(5));
    assert_eq!(p.run("steps", &["--state", state]).code, 0);
    let mut grew = [0; 2];
    for (i, n) in [5, 25].into_iter().enumerate() {
        p.playbook("steps", &steps(n));
        let before = count();
        let out = p.run("steps", &["--state", state]);
        assert_eq!(out.code, 0, "{}", out.combined());
        grew[i] = count() - before;
    }
    (grew[0], grew[1])
}

#[test]
fn an_event_takes_at_most_two_round_trips_to_a_postgres_state_store() {
    let proxy = Proxy::start();
    let state = proxy.url(&pg::cluster().create_db("trips"));
    let p = Project::new(Target::sqlite);
    let (short, long) = short_and_long(&p, &state, || proxy.trips() as i64);
    let per_event = (long - short) as f64 / 40.0;
    // At most two (issue 20). Every event is one statement on a connection that prepared it
    // before: about one (a pool's ping on each use, or a transaction around it, makes two).
    assert!(
        per_event < 1.5,
        "{per_event} round trips per event (runs of 5 and 25 steps: {short} and {long})"
    );
}

const MIX: &str = r#"
name: mix
steps:
  - id: first
    shell: { argv: ["echo", "out"] }
  - id: flaky
    shell: { script: "echo no >&2; exit 3" }
    retry: { attempts: 2, delay: 10ms }
on_failure:
  - id: told
    log: { message: "failed" }
"#;

const CRASH: &str = r#"
name: crash
steps:
  - id: one
    shell: { argv: ["true"] }
  - id: two
    shell: { argv: ["true"] }
  - id: three
    shell: { argv: ["true"] }
"#;

/// A run's rows in a state store, without ids and times (only whether each is set).
const ROWS: [&str; 3] = [
    "SELECT step || '|' || phase || '|' || status || '|' || attempts || '|' || outputs || '|'
        || COALESCE(error, '-') || '|' || COALESCE(db_change, '-') || '|'
        || CASE WHEN started_at IS NULL THEN 'unstarted' ELSE 'started' END || '|'
        || CASE WHEN finished_at IS NULL THEN 'open' ELSE 'ended' END
     FROM runbook_steps s ORDER BY (SELECT started_at FROM runbook_runs r WHERE r.id = s.run_id), ord, phase",
    "SELECT kind || '|' || seq || '|' || COALESCE(step, '-') || '|' || COALESCE(phase, '-') || '|'
        || CASE WHEN audit_seq IS NULL THEN '-' ELSE 'chained' END
     FROM runbook_events e ORDER BY (SELECT started_at FROM runbook_runs r WHERE r.id = e.run_id), seq",
    "SELECT playbook || '|' || status || '|' || COALESCE(error, '-') || '|'
        || CASE WHEN finished_at IS NULL THEN 'open' ELSE 'ended' END || '|' || audit_synced
     FROM runbook_runs ORDER BY started_at",
];

/// Runs `mix` (a retried failure and its handler), then `crash` killed after step `two` acted
/// and resumed with `--retry-step two`, with the state store `state` (none: the project's
/// SQLite file).
fn scenario(p: &Project, state: Option<&str>) {
    let extra: Vec<&str> = state.map(|s| vec!["--state", s]).unwrap_or_default();
    p.playbook("mix", MIX).playbook("crash", CRASH);
    assert_eq!(p.run("mix", &extra).code, 1);
    let mut args = vec![
        "-C".to_owned(),
        p.path().display().to_string(),
        "run".into(),
        "crash".into(),
        "--target".into(),
        p.target.arg(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = Runbook::new(&args)
        .env("RUNBOOK_FAILPOINT", "acted:two")
        .run();
    assert_eq!(out.code, -1, "{}", out.combined());
    let mut runs = vec!["runs", "--format", "json"];
    runs.extend(&extra);
    let listed: serde_json::Value = serde_json::from_str(&p.cmd(&runs).stdout).unwrap();
    let id = listed["runs"][0]["run_id"].as_str().unwrap().to_owned();
    let mut resume = vec!["--retry-step", "two"];
    resume.extend(&extra);
    let out = p.resume(&id, &resume);
    assert_eq!(out.code, 0, "{}", out.combined());
}

#[test]
fn the_postgres_state_store_keeps_the_rows_the_sqlite_store_keeps() {
    let on_sqlite = Project::new(Target::sqlite);
    scenario(&on_sqlite, None);
    let on_postgres = Project::new(Target::sqlite);
    let state = pg::cluster().create_db("rows");
    scenario(&on_postgres, Some(&state));
    let store = on_sqlite.path().join(".runbook/state.db");
    for sql in ROWS {
        let sqlite_rows = sqlite::query(&store, sql);
        let pg_rows = pg::cluster().psql(&state, sql);
        assert_eq!(pg_rows, sqlite_rows.join("\n"), "{sql}");
    }
    // Both runs and every step in them, the retried and resumed ones included.
    let steps = pg::cluster().psql(&state, ROWS[0]);
    assert!(steps.contains("flaky|main|failed|2|"), "{steps}");
    assert!(steps.contains("two|main|succeeded|"), "{steps}");
    assert!(
        pg::cluster().psql(&state, ROWS[1]).contains("run_resumed|"),
        "the resume is an event"
    );
    // Each run's last commit noted its chain as fsynced through its last record.
    let runs = pg::cluster().psql(&state, ROWS[2]);
    let chains: Vec<String> = pg::cluster()
        .psql(
            &state,
            "SELECT max(audit_seq) FROM runbook_events GROUP BY run_id ORDER BY min(at)",
        )
        .lines()
        .map(str::to_owned)
        .collect();
    let noted: Vec<String> = runs
        .lines()
        .map(|l| l.rsplit('|').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(noted, chains, "{runs}");
}

/// The WAL fsyncs the server's backends made so far (`pg_stat_wal.wal_sync`, PostgreSQL 14
/// and later; an exited backend has reported its own).
fn wal_syncs(cluster: &pg::PgCluster) -> i64 {
    cluster
        .psql("postgres", "SELECT wal_sync FROM pg_stat_wal")
        .trim()
        .parse()
        .expect("a count")
}

/// A step's verdict is committed to a PostgreSQL store without waiting for the server's WAL
/// flush (`synchronous_commit = off` for its statement): the next step's start, committed
/// synchronously before that step acts, flushes both, so the server syncs its WAL once per
/// step, not once per event. On a cluster of its own whose WAL writer waits 10 s between
/// flushes, so that what it would flush on its own does not count (the tests' clusters run
/// with `fsync = off`; this one syncs).
#[test]
fn a_postgres_store_syncs_its_wal_once_per_step() {
    let cluster = pg::PgCluster::own(
        "fsync = on\nsynchronous_commit = on\nwal_writer_delay = 10000ms\nwal_writer_flush_after = 1GB\n",
    );
    let state = cluster.create_db("syncs");
    let p = Project::new(Target::sqlite);
    let (short, long) = short_and_long(&p, &state, || wal_syncs(&cluster));
    let per_step = (long - short) as f64 / 20.0;
    assert!(
        per_step < 1.5,
        "{per_step} WAL syncs per step (runs of 5 and 25 steps: {short} and {long})"
    );
    // Before a gate the verdicts are flushed on their own: one synchronous commit more.
    p.playbook(
        "gated",
        "name: gated\nsteps:\n  - id: s1\n    shell: { argv: [\"true\"] }\n  - id: check\n    gate: { condition: { expr: \"1 == 1\", message: \"never\" } }\n",
    );
    let out = p.run("gated", &["--state", &state]);
    assert_eq!(out.code, 0, "{}", out.combined());
}

/// Processes that open a new PostgreSQL store at once (two terminals, a fleet's children,
/// `runs` while a run starts) all open it: one makes the tables, the others wait for it and
/// find them made. Before, two `CREATE TABLE IF NOT EXISTS` of one table at once failed one
/// of the processes ("type runbook_steps already exists").
#[test]
fn processes_opening_a_new_postgres_store_at_once_all_open_it() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().display().to_string();
    for round in 0..4 {
        let state = pg::cluster().create_db("opened_at_once");
        let children: Vec<_> = (0..8)
            .map(|i| {
                Runbook::new(&["-C", &project, "runs", "--state", &state])
                    .start(&dir.path().join(format!("runs-{round}-{i}.log")))
            })
            .collect();
        for (i, mut child) in children.into_iter().enumerate() {
            let status = child.wait().unwrap();
            let log = std::fs::read_to_string(dir.path().join(format!("runs-{round}-{i}.log")))
                .unwrap_or_default();
            assert!(status.success(), "round {round}, process {i}: {log}");
        }
        assert_eq!(
            pg::cluster().psql(
                &state,
                "SELECT value FROM runbook_meta WHERE key = 'state_version'"
            ),
            "9"
        );
    }
}

/// A PostgreSQL store of layout 8 (runs without their process's start time) is brought up to
/// layout 9 in one transaction (the column added only where missing) and its runs still read;
/// a run on it records its start time.
#[test]
fn a_postgres_store_of_layout_8_gains_the_process_start_time() {
    let p = Project::new(Target::sqlite);
    let state = pg::cluster().create_db("layout_eight");
    p.playbook("one", &steps(1));
    assert_eq!(p.run("one", &["--state", &state]).code, 0);
    let q = |sql: &str| pg::cluster().psql(&state, sql);
    q("ALTER TABLE runbook_runs DROP COLUMN pid_start;
       UPDATE runbook_meta SET value = '8' WHERE key = 'state_version'");
    let out = p.run("one", &["--state", &state]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(
        q("SELECT value FROM runbook_meta WHERE key = 'state_version'"),
        "9"
    );
    assert_eq!(
        q("SELECT string_agg((pid_start > 0)::text, ',' ORDER BY started_at) FROM runbook_runs"),
        "false,true"
    );
}
