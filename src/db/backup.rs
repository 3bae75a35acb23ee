//! Backups and restores: pg_dump/pg_restore and SQLite `VACUUM INTO`, manifests, verification, retention.
