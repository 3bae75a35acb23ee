//! Seed data: baseline rows applied as upserts by natural key, secrets hashed with argon2id.
