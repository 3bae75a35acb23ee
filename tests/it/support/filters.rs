//! The one table of snapshot filters: what changes between machines, runs and edits (hashes,
//! times, durations, run ids, temp folders, ports, database names) becomes a placeholder, so a
//! snapshot holds only what a person would call the output.

/// (pattern, replacement), applied in order: longer forms before the shorter ones they hold.
pub const FILTERS: &[(&str, &str)] = &[
    (r"sha256 [0-9a-f]{64}", "sha256 [hash]"),
    (r"sha256 [0-9a-f]{12}", "sha256 [hash]"),
    (r"plan hash [0-9a-f]{64}", "plan hash [hash]"),
    (r"plan hash: +[0-9a-f]{64}", "plan hash: [hash]"),
    (
        r#""(content_hash|plan_hash)": "[0-9a-f]{64}""#,
        "\"$1\": \"[hash]\"",
    ),
    (
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        "[timestamp]",
    ),
    (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", "[utc]"),
    (r"\b\d{2}:\d{2}:\d{2}\b", "[time]"),
    (r"\b\d{8}-\d{6}-[0-9a-f]{6}\b", "[run]"),
    (r"\b\d+\.\ds\b", "[secs]"),
    (r#" time="\d+\.\d+""#, r#" time="[secs]""#),
    (r"\b\d+ms\b", "[ms]"),
    (r"sqlite:/\S+/target.db", "sqlite:[dir]/target.db"),
    (r"/tmp/\.tmp[A-Za-z0-9]+", "[dir]"),
    (
        r"127\.0\.0\.1:\d+/([a-z0-9_]+?)_\d+_\d+\b",
        "127.0.0.1:[port]/$1",
    ),
    (r"127\.0\.0\.1:\d+\b", "127.0.0.1:[port]"),
    (r"operator  \S+", "operator  [who]"),
    (r"playbook  (\S+) \(\S+\)", "playbook  $1 ([file])"),
];

/// Snapshot settings with every filter of [`FILTERS`].
pub fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in FILTERS {
        settings.add_filter(pattern, *replacement);
    }
    settings
}

/// Runs a block of snapshot assertions under [`settings`].
#[macro_export]
macro_rules! stable {
    ($body:block) => {{ $crate::support::filters::settings().bind(|| $body) }};
}
