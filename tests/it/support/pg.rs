//! A throwaway PostgreSQL cluster for tests that need a real server.
//!
//! `cluster()` starts one cluster per test process on first use (initdb into a temp dir, its
//! own TCP port on 127.0.0.1 and its own socket directory) and shares it between tests; each
//! test makes its own database with `create_db`. Tests that need PostgreSQL fail loudly when
//! the server binaries are missing: a skipped test would look like a passing one.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

const NOT_FOUND: &str = "PostgreSQL server binaries not found; install postgresql \
     (apt-get install postgresql) — .ci/run does this";

/// A role that logs in with a password over TCP (scram-sha-256), for tests of a wrong one;
/// created by [`PgCluster::password_role`].
pub const PASSWORD_ROLE: &str = "runbook_password";

/// The OS user the server runs as when the tests run as root.
const PG_USER: &str = "postgres";

/// A running cluster, stopped and deleted by its watchdog once the test process exits.
pub struct PgCluster {
    bin_dir: PathBuf,
    port: u16,
    /// Never written to: the watchdog waits for end-of-file on this pipe, which the kernel
    /// delivers when this process exits however it exits (statics are never dropped).
    _watchdog: ChildStdin,
}

/// The cluster of this test process, started on first use.
pub fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(PgCluster::start)
}

impl PgCluster {
    /// The URL of database `db` for the `postgres` superuser (trust authentication).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates [`PASSWORD_ROLE`] with `password` (at the first call: one password per test
    /// process) and gives the URL of
    /// database `db` for it with `given` as the password.
    pub fn password_role(&self, password: &str, db: &str, given: &str) -> String {
        static CREATED: std::sync::Once = std::sync::Once::new();
        CREATED.call_once(|| {
            self.psql(
                "postgres",
                &format!("CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{password}'"),
            );
        });
        format!(
            "postgres://{PASSWORD_ROLE}:{given}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    /// Creates a database no other test uses and returns its URL.
    pub fn create_db(&self, prefix: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        // A plain lowercase name needs no quoting anywhere (URLs, psql, SQL).
        assert!(
            !prefix.is_empty()
                && prefix.len() <= 40
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "create_db prefix must be 1-40 chars of [a-z0-9_], got {prefix:?}"
        );
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}_{n}_{}", std::process::id());
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Creates a database owned by a role of its own that is not a superuser (the managed
    /// PostgreSQL case: the application's role owns its database and nothing else) and returns
    /// the URL that connects as that role.
    pub fn create_owned_db(&self, prefix: &str) -> String {
        let url = self.create_db(prefix);
        let name = url.rsplit('/').next().expect("a database name").to_owned();
        let role = format!("{name}_owner");
        self.psql(
            "postgres",
            &format!("CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"),
        );
        self.psql(
            "postgres",
            &format!("ALTER DATABASE {name} OWNER TO {role}"),
        );
        format!("postgres://{role}@127.0.0.1:{}/{name}", self.port)
    }

    /// `pg_dump --schema-only` of a database (name or URL) as comparable text: without the
    /// lines that differ between two dumps of the same schema (the dump's random `\restrict`
    /// key, versions).
    pub fn schema_dump(&self, db: &str) -> String {
        let target = if db.contains("://") {
            db.to_owned()
        } else {
            self.url(db)
        };
        let out = Command::new(self.bin_dir.join("pg_dump"))
            .args(["--schema-only", "--no-password", "--dbname"])
            .arg(&target)
            .stdin(Stdio::null())
            .output()
            .expect("pg_dump starts");
        assert!(
            out.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("pg_dump prints UTF-8")
            .lines()
            .filter(|l| {
                !l.starts_with("\\restrict")
                    && !l.starts_with("\\unrestrict")
                    && !l.starts_with("-- Dumped")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Runs `sql` with `psql -At` against `db` (a database name, or a URL such as the one
    /// `create_db` returns) and returns its stdout without the final newline. Panics with
    /// psql's stderr if the statement fails.
    ///
    /// The text goes through `psql -c`, so several statements run in one transaction.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let target = if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            db.to_owned()
        } else {
            self.url(db)
        };
        let out = Command::new(self.psql_program())
            // -X: a developer's ~/.psqlrc must not change the output.
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(&target)
            .arg("-c")
            .arg(sql)
            .stdin(Stdio::null())
            .output()
            .expect("psql starts");
        if !out.status.success() {
            panic!(
                "psql failed ({}) on {target}\n--- sql\n{sql}\n--- stderr\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut stdout = String::from_utf8(out.stdout).expect("psql prints UTF-8");
        if stdout.ends_with('\n') {
            stdout.pop();
        }
        stdout
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Opens a psql session on `db` (a URL) that runs `sql` and stays open, holding whatever
    /// its open transaction holds, until the returned session is released or dropped.
    pub fn hold(&self, db: &str, sql: &str) -> Session {
        let mut child = Command::new(self.psql_program())
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("psql starts");
        let mut stdin = child.stdin.take().expect("psql stdin is piped");
        writeln!(stdin, "{sql}\n\\echo held").expect("write to psql");
        stdin.flush().expect("flush psql's stdin");
        let stdout = child.stdout.take().expect("psql stdout is piped");
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        loop {
            match lines.next() {
                Some(Ok(line)) if line == "held" => break,
                Some(Ok(_)) => {}
                _ => panic!("psql ended before it held: {sql}"),
            }
        }
        Session {
            child,
            stdin: Some(stdin),
        }
    }

    /// The directory of the server binaries (initdb, pg_ctl, postgres, and usually psql).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Runs a SQL file with `psql -f` against `db` (name or URL), stopping at the first error,
    /// as a person applying a migration by hand would; returns whether psql succeeded.
    pub fn psql_file(&self, db: &str, file: &std::path::Path) -> bool {
        let target = if db.contains("://") {
            db.to_owned()
        } else {
            self.url(db)
        };
        Command::new(self.psql_program())
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(&target)
            .arg("-f")
            .arg(file)
            .stdin(Stdio::null())
            .output()
            .expect("psql starts")
            .status
            .success()
    }

    fn psql_program(&self) -> PathBuf {
        let own = self.bin_dir.join("psql");
        if own.is_file() {
            own
        } else {
            PathBuf::from("psql")
        }
    }

    fn start() -> PgCluster {
        PgCluster::launch(None, "")
    }

    /// A cluster of the calling test's own, stopped and deleted when it is dropped (or the
    /// test process exits), with `conf` added to its postgresql.conf: for a test that changes
    /// the server in ways other tests must not see (a standby streaming from it).
    pub fn own(conf: &str) -> PgCluster {
        PgCluster::launch(None, conf)
    }

    /// A streaming standby of this cluster: a base backup taken with `pg_basebackup -R` (which
    /// writes `primary_conninfo` and `standby.signal`), started on a port of its own, reporting
    /// its positions every second and named `cluster_name` (the application name the primary
    /// shows in pg_stat_replication). The primary needs `wal_level = replica`, WAL senders and
    /// a `replication` line in pg_hba.conf, which [`PgCluster::own`] gives it.
    pub fn standby(&self, cluster_name: &str) -> PgCluster {
        PgCluster::launch(
            Some(self),
            &format!(
                "wal_receiver_status_interval = 1s\nhot_standby = on\ncluster_name = '{cluster_name}'\n"
            ),
        )
    }

    /// Starts a cluster: a fresh one (initdb) or, with `primary`, a standby made from its base
    /// backup; `conf` is added to its postgresql.conf.
    fn launch(primary: Option<&PgCluster>, conf: &str) -> PgCluster {
        let started = Instant::now();
        let bin_dir = find_bin_dir();
        // keep(): the watchdog deletes the directory, after the server has stopped.
        let dir = tempfile::Builder::new()
            .prefix("runbook-pg-")
            .tempdir()
            .expect("create a temp dir for PostgreSQL")
            .keep();
        let sock = dir.join("sock");
        fs::create_dir(&sock).expect("create the socket dir");
        let run_as = RunAs::detect(&dir);
        let data = dir.join("data");
        let log = dir.join("server.log");
        let pg_ctl = bin_dir.join("pg_ctl");

        // Started before anything else so a failed start is cleaned up too: a panic below
        // drops the pipe, and the watchdog stops whatever is running and deletes the dir.
        let watchdog = spawn_watchdog(
            run_as
                .command(&pg_ctl)
                .arg("-D")
                .arg(&data)
                .args(["stop", "-m", "immediate"]),
            &dir,
        );
        run_as.hand_over(&dir);

        match primary {
            None => {
                let initdb = run_as
                    .command(&bin_dir.join("initdb"))
                    .arg("-D")
                    .arg(&data)
                    .args(["-A", "trust", "-U", PG_USER, "--no-sync"])
                    .args(["-E", "UTF8", "--locale=C", "--no-instructions"])
                    .current_dir(&dir)
                    .output()
                    .expect("initdb starts");
                check(&initdb, "initdb", None);
                require_password(&data);
                allow_replication(&data);
            }
            Some(primary) => {
                let backup = run_as
                    .command(&bin_dir.join("pg_basebackup"))
                    .args(["-h", "127.0.0.1", "-p", &primary.port.to_string()])
                    .args(["-U", PG_USER, "-D"])
                    .arg(&data)
                    .args(["-R", "-X", "stream", "-c", "fast", "--no-sync", "-w"])
                    .current_dir(&dir)
                    .stdin(Stdio::null())
                    .output()
                    .expect("pg_basebackup starts");
                check(&backup, "pg_basebackup", None);
            }
        }

        // Settings go into postgresql.conf rather than `pg_ctl -o`, which passes them
        // through a shell: no quoting of paths. Speed over durability: the data is thrown away.
        // A standby's copy already holds its primary's lines; later lines win.
        append_conf(
            &data,
            &format!(
                "listen_addresses = '127.0.0.1'\n\
                 unix_socket_directories = '{}'\n\
                 max_connections = 100\n\
                 shared_buffers = 32MB\n\
                 fsync = off\n\
                 synchronous_commit = off\n\
                 full_page_writes = off\n\
                 shared_preload_libraries = 'pg_stat_statements'\n\
                 wal_level = replica\n\
                 max_wal_senders = 10\n{conf}",
                sock.display().to_string().replace('\'', "''")
            ),
        );

        // The free port can be taken by someone else between our probe and the server's
        // bind; a later `port` line overrides an earlier one, so retry with a new one.
        let mut attempt = 1;
        let port = loop {
            let port = free_port();
            append_conf(&data, &format!("port = {port}\n"));
            let start = run_as
                .command(&pg_ctl)
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "start"])
                .current_dir(&dir)
                .stdin(Stdio::null())
                .output()
                .expect("pg_ctl starts");
            if start.status.success() {
                break port;
            }
            let server_log = fs::read_to_string(&log).unwrap_or_default();
            if attempt < 3 && server_log.contains("could not bind") {
                attempt += 1;
                continue;
            }
            fail(&start, "pg_ctl start", Some(&server_log));
        };

        let cluster = PgCluster {
            bin_dir,
            port,
            _watchdog: watchdog,
        };
        // pg_ctl -w waits for the socket; this proves the TCP path tests use works too.
        cluster.psql("postgres", "SELECT 1");
        eprintln!(
            "PostgreSQL {} in {} on port {port}, started in {:.2?}",
            if primary.is_some() {
                "standby"
            } else {
                "cluster"
            },
            dir.display(),
            started.elapsed()
        );
        cluster
    }
}

/// A psql session kept open by [`PgCluster::hold`]: its transaction ends (rolled back) when
/// the session is released, which closes psql's stdin.
pub struct Session {
    child: std::process::Child,
    stdin: Option<ChildStdin>,
}

impl Session {
    pub fn release(mut self) {
        self.end();
    }

    fn end(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.end();
    }
}

/// `RUNBOOK_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin` (Debian's layout), else
/// `initdb` on `PATH`.
fn find_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUNBOOK_PG_BIN") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("initdb").is_file(),
            "RUNBOOK_PG_BIN={} has no initdb. {NOT_FOUND}",
            dir.display()
        );
        return dir;
    }
    let newest = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max();
    if let Some((_, bin)) = newest {
        return bin;
    }
    find_program("initdb")
        .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| panic!("{NOT_FOUND}"))
}

/// Searches `PATH`, and the sbin directories a non-login root shell may lack.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// How the server programs are run: PostgreSQL refuses to run as root, so as root they run
/// as the `postgres` OS user (which the postgresql package creates).
enum RunAs {
    CurrentUser,
    Runuser(PathBuf),
    Su(PathBuf),
}

impl RunAs {
    /// `own` is a directory this process just created: its owner is our effective uid
    /// (std has no geteuid).
    fn detect(own: &Path) -> RunAs {
        let uid = fs::metadata(own).expect("stat the temp dir").uid();
        if uid != 0 {
            return RunAs::CurrentUser;
        }
        let known = Command::new("id")
            .args(["-u", PG_USER])
            .output()
            .is_ok_and(|out| out.status.success());
        assert!(
            known,
            "running as root, and PostgreSQL refuses to: there is no `{PG_USER}` user to run \
             it as. {NOT_FOUND}"
        );
        if let Some(runuser) = find_program("runuser") {
            RunAs::Runuser(runuser)
        } else if let Some(su) = find_program("su") {
            RunAs::Su(su)
        } else {
            panic!(
                "running as root, and neither runuser nor su exists to run PostgreSQL as {PG_USER}"
            )
        }
    }

    fn command(&self, program: &Path) -> Command {
        match self {
            RunAs::CurrentUser => Command::new(program),
            RunAs::Runuser(runuser) => {
                let mut cmd = Command::new(runuser);
                cmd.args(["-u", PG_USER, "--"]).arg(program);
                cmd
            }
            RunAs::Su(su) => {
                // su passes what follows `--` to the shell as $0, $1, ...
                let mut cmd = Command::new(su);
                cmd.args([PG_USER, "-s", "/bin/sh", "-c", r#"exec "$0" "$@""#, "--"])
                    .arg(program);
                cmd
            }
        }
    }

    /// Gives `dir` to the user the server runs as, and checks that user can reach it (every
    /// parent must be traversable, which a root-only TMPDIR is not).
    fn hand_over(&self, dir: &Path) {
        if matches!(self, RunAs::CurrentUser) {
            return;
        }
        let chown = Command::new("chown")
            .arg("-R")
            .arg(format!("{PG_USER}:"))
            .arg(dir)
            .output()
            .expect("chown starts");
        check(&chown, "chown", None);
        let reachable = self
            .command(Path::new("test"))
            .arg("-w")
            .arg(dir)
            .current_dir("/")
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            reachable,
            "the {PG_USER} user cannot write to {}; its parent directories must be \
             traversable by {PG_USER} (set TMPDIR to a directory such as /tmp)",
            dir.display()
        );
    }
}

/// Starts a detached shell that waits for end-of-file on its stdin, then runs `stop` and
/// deletes `dir`. The returned pipe end is the only writer and is close-on-exec, so EOF comes
/// exactly when this process exits, even after a panic or a kill -9. It runs as the current
/// user, not the server's: `kill -0` polling would fail across users, and rm needs our rights.
#[expect(
    clippy::zombie_processes,
    reason = "the watchdog must outlive this process, so it is never waited for"
)]
fn spawn_watchdog(stop: &Command, dir: &Path) -> ChildStdin {
    let mut argv: Vec<OsString> = vec![stop.get_program().to_owned()];
    argv.extend(stop.get_args().map(ToOwned::to_owned));
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"cat >/dev/null; dir=$1; shift; "$@"; rm -rf -- "$dir""#)
        .arg("runbook-pg-watchdog")
        .arg(dir)
        .args(argv)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C on the test run must not kill it before cleanup.
        .process_group(0)
        .spawn()
        .expect("start the PostgreSQL watchdog");
    child.stdin.take().expect("watchdog stdin is piped")
}

fn append_conf(data: &Path, lines: &str) {
    let mut conf = fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .expect("open postgresql.conf");
    conf.write_all(lines.as_bytes())
        .expect("write postgresql.conf");
}

/// The role that must give its password ([`PASSWORD_ROLE`]); every other role is trusted.
/// The line goes first: pg_hba.conf's first matching line decides.
fn require_password(data: &Path) {
    let hba = data.join("pg_hba.conf");
    let rest = fs::read_to_string(&hba).expect("read pg_hba.conf");
    let line = format!("host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n");
    fs::write(&hba, line + &rest).expect("write pg_hba.conf");
}

/// Replication connections from 127.0.0.1 for the `postgres` superuser (initdb's sample has
/// such a line; this one does not depend on it), for a standby's base backup and streaming.
fn allow_replication(data: &Path) {
    let hba = data.join("pg_hba.conf");
    let rest = fs::read_to_string(&hba).expect("read pg_hba.conf");
    let line = format!("host replication {PG_USER} 127.0.0.1/32 trust\n");
    fs::write(&hba, rest + &line).expect("write pg_hba.conf");
}

/// A port that was free a moment ago (the listener is dropped before the server binds).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a probe port on 127.0.0.1")
        .port()
}

fn check(out: &Output, what: &str, server_log: Option<&str>) {
    if !out.status.success() {
        fail(out, what, server_log);
    }
}

fn fail(out: &Output, what: &str, server_log: Option<&str>) -> ! {
    panic!(
        "{what} failed ({})\n--- stdout\n{}--- stderr\n{}--- server log\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server_log.unwrap_or("(none)")
    );
}
