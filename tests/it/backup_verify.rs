//! What a directory-format backup must keep however it is sped up: the manifest hashes every
//! file exactly as pg_dump left it on disk (recomputed here with sha256 over the files), the
//! row counts are the archive's rows (taken in the dump's snapshot even while the application
//! writes), and verification notices a file changed after the backup.

use crate::support::pg;
use crate::support::{Output, Project, Target};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const BACKUP_DIR: &str =
    "name: bkd\nsteps:\n  - id: backup\n    backup: { dir: backups, format: directory, jobs: 2 }\n";

const FIND: &str = r#"
name: fb
params:
  from: { type: string, required: true }
steps:
  - id: find
    find_backup: { dir: backups, from: "{{ params.from }}" }
"#;

fn ok(out: &Output) {
    assert_eq!(out.code, 0, "{}", out.combined());
}

/// Tables of several sizes (pg_dump -j 2 writes the big ones side by side, the small ones
/// while a big one is still being written), one in a second schema and an empty one.
fn project(prefix: &str) -> Project {
    let p = Project::new(|_| Target::postgres(prefix));
    pg::cluster().psql(
        &p.target.arg(),
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g;
         CREATE TABLE mid AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) AS v FROM generate_series(1, 80000) g;
         CREATE TABLE small (id int PRIMARY KEY, v text);
         INSERT INTO small SELECT g, 's' || g FROM generate_series(1, 40) g;
         CREATE TABLE nothing (id int);
         CREATE SCHEMA other;
         CREATE TABLE other.t AS SELECT g AS id FROM generate_series(1, 1234) g;",
    );
    p.playbook("bkd", BACKUP_DIR).playbook("fb", FIND);
    p
}

/// The one backup's manifest and archive.
fn the_backup(p: &Project) -> (Value, PathBuf) {
    let dir = p.path().join("backups");
    let manifests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .collect();
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifests[0]).unwrap()).unwrap();
    let archive = dir.join(m["archive"].as_str().unwrap());
    (m, archive)
}

/// Every file of the archive, hashed now, against the manifest: the same names, each file's
/// sha256 and size, the archive's sum over the listing and its total size.
fn assert_hashes_match_disk(m: &Value, archive: &Path) {
    let files = m["files"].as_object().unwrap();
    let mut on_disk: Vec<String> = std::fs::read_dir(archive)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let listed: Vec<String> = files.keys().cloned().collect();
    assert_eq!(listed, on_disk);
    let mut listing = String::new();
    let mut total = 0;
    for name in &on_disk {
        let bytes = std::fs::read(archive.join(name)).unwrap();
        let sum = hex::encode(Sha256::digest(&bytes));
        assert_eq!(files[name]["sha256"], sum, "{name}");
        assert_eq!(files[name]["size"], bytes.len() as u64, "{name}");
        listing.push_str(&format!("{sum}  {name}\n"));
        total += bytes.len() as u64;
    }
    assert_eq!(m["sha256"], hex::encode(Sha256::digest(listing.as_bytes())));
    assert_eq!(m["size"], total);
}

/// Rows of `schema.table` in an archive: the lines of its COPY block.
fn archive_rows(archive: &Path, schema: &str, table: &str) -> u64 {
    let out = std::process::Command::new(pg::cluster().bin_dir().join("pg_restore"))
        .args([
            "--data-only",
            "--file=-",
            "--schema",
            schema,
            "--table",
            table,
        ])
        .arg(archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines().skip_while(|l| !l.starts_with("COPY "));
    assert!(lines.next().is_some(), "no COPY of {schema}.{table}");
    lines.take_while(|l| *l != "\\.").count() as u64
}

#[test]
fn a_directory_backup_hashes_every_file_as_written_and_counts_exactly() {
    let p = project("bkv_dir");
    ok(&p.run("bkd", &[]));
    let (m, archive) = the_backup(&p);
    assert_eq!(m["format"], "directory");
    assert_hashes_match_disk(&m, &archive);
    assert_eq!(
        m["row_counts"],
        serde_json::json!({
            "other.t": 1234,
            "public.big": 200000,
            "public.mid": 80000,
            "public.nothing": 0,
            "public.small": 40,
        })
    );
    // It verifies as it is.
    ok(&p.run("fb", &["--var", &format!("from={}", archive.display())]));
}

#[test]
fn verification_notices_a_directory_file_changed_after_the_backup() {
    let p = project("bkv_changed");
    ok(&p.run("bkd", &[]));
    let (m, archive) = the_backup(&p);
    // The largest data file, one byte flipped in its middle: same name, same size.
    let (name, _) = m["files"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(n, _)| n.ends_with(".dat.gz"))
        .max_by_key(|(_, s)| s["size"].as_u64().unwrap())
        .unwrap();
    let path = archive.join(name);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let out = p.run("fb", &["--var", &format!("from={}", archive.display())]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.combined().contains("is corrupt") && out.combined().contains(name.as_str()),
        "{}",
        out.combined()
    );
}

/// Counts taken in the dump's snapshot: while the application inserts and deletes during the
/// whole backup, each count is the rows of the table's data in the archive.
#[test]
fn directory_counts_are_the_archives_while_the_application_writes() {
    let p = project("bkv_busy");
    let stop = Arc::new(AtomicBool::new(false));
    let url = p.target.arg();
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut rounds = 0u32;
            while !stop.load(Ordering::Relaxed) || rounds < 3 {
                pg::cluster().psql(
                    &url,
                    "INSERT INTO big SELECT g, 'later' FROM generate_series(1, 1000) g;
                     INSERT INTO small SELECT 1000 + max(id), 'later' FROM small;
                     DELETE FROM other.t WHERE id = (SELECT min(id) FROM other.t);",
                );
                rounds += 1;
            }
            rounds
        })
    };
    let out = p.run("bkd", &[]);
    stop.store(true, Ordering::Relaxed);
    let rounds = writer.join().unwrap();
    ok(&out);
    let (m, archive) = the_backup(&p);
    assert_hashes_match_disk(&m, &archive);
    let counts = m["row_counts"].as_object().unwrap();
    assert_eq!(counts.len(), 5, "{m}");
    for (key, n) in counts {
        let (schema, table) = key.split_once('.').unwrap();
        assert_eq!(
            n.as_u64().unwrap(),
            archive_rows(&archive, schema, table),
            "{key} after {rounds} rounds of writes"
        );
    }
    // The writer wrote after the snapshot: counts taken outside it would differ.
    let now: u64 = p.target.query("SELECT count(*) FROM big")[0]
        .parse()
        .unwrap();
    assert!(now > m["row_counts"]["public.big"].as_u64().unwrap());
}
