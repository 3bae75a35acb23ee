//! The auditor's tools over the audit log: verify chains (and signatures), list runs, show a
//! run's timeline, export records, and write a self-contained HTML report.

use crate::audit::{self, Head, Problem};
use crate::diagnostic::xml_escape;
use serde_json::{Map, Value as Json};
use std::fmt::Write as _;
use std::path::Path;

/// One run's verification result.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub run_id: String,
    pub records: usize,
    pub head: Option<String>,
    pub problem: Option<Problem>,
    /// `Some(Ok)` when a signature was checked and holds; `Some(Err)` when it does not.
    pub signature: Option<Result<(), String>>,
    pub entries: Vec<Map<String, Json>>,
}

impl Verdict {
    /// Tampering, truncation or a bad signature: what makes `verify` fail.
    pub fn failed(&self) -> bool {
        self.problem.as_ref().is_some_and(Problem::is_tampering)
            || matches!(self.signature, Some(Err(_)))
    }

    pub fn summary(&self) -> String {
        let mut s = match &self.problem {
            None => format!(
                "ok: {} records, head {}",
                self.records,
                short(self.head.as_deref().unwrap_or("-"))
            ),
            Some(p @ Problem::Torn { .. }) => format!(
                "ok up to record {}, then a torn write: {} (a crash while writing, not tampering)",
                self.records,
                p.describe()
            ),
            Some(p) => format!("FAILED at record {}: {}", p.seq(), p.describe()),
        };
        match &self.signature {
            Some(Ok(())) => s.push_str("; signature valid"),
            Some(Err(e)) => s.push_str(&format!("; signature INVALID: {e}")),
            None => {}
        }
        s
    }
}

fn short(h: &str) -> &str {
    &h[..12.min(h.len())]
}

/// Verifies one run's chain against the head the state store recorded (if any) and, with a
/// public key, its signature.
pub fn verify_run(dir: &Path, run_id: &str, expected: Option<&Head>, key: Option<&str>) -> Verdict {
    let path = dir.join(format!("{run_id}.jsonl"));
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(_) => {
            let problem = expected.map(|h| Problem::Truncated {
                have: 0,
                expected: h.seq,
            });
            return Verdict {
                run_id: run_id.to_owned(),
                records: 0,
                head: None,
                problem,
                signature: None,
                entries: Vec::new(),
            };
        }
    };
    let report = audit::verify_bytes(&bytes, expected);
    let signature = key.map(|k| {
        let head = Head {
            seq: report.records as i64,
            hash: report.head.clone().unwrap_or_default(),
        };
        audit::check_signature(dir, run_id, &head, k)
    });
    Verdict {
        run_id: run_id.to_owned(),
        records: report.records,
        head: report.head,
        problem: report.problem,
        signature,
        entries: report.entries,
    }
}

/// The run ids that have a chain in the audit folder, oldest first by the index, then the rest.
pub fn chains(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = audit::read_index(dir)
        .iter()
        .filter_map(|e| e["run_id"].as_str().map(str::to_owned))
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".jsonl"))
                        .map(str::to_owned)
                })
                .filter(|n| n != "index")
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for f in files {
        if !ids.contains(&f) {
            ids.push(f);
        }
    }
    ids.dedup();
    ids
}

/// A step's life in the timeline.
#[derive(Debug, Clone, Default)]
pub struct Span {
    pub step: String,
    pub phase: String,
    pub action: String,
    pub start: Option<chrono::DateTime<chrono::Utc>>,
    pub end: Option<chrono::DateTime<chrono::Utc>>,
    pub status: String,
    pub detail: String,
    pub attempts: i64,
}

/// The timeline of a run from its records: steps with times and outcomes, gate decisions with
/// approvers, rollbacks.
pub fn timeline(entries: &[Map<String, Json>]) -> (Vec<Span>, Vec<String>) {
    let ts = |r: &Map<String, Json>| {
        r.get("ts")
            .and_then(Json::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let mut spans: Vec<Span> = Vec::new();
    let mut notes = Vec::new();
    for r in entries {
        let event = r.get("event").and_then(Json::as_str).unwrap_or_default();
        let step = r
            .get("step")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        let phase = r
            .get("phase")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        let outcome = r.get("outcome").cloned().unwrap_or(Json::Null);
        let when = ts(r)
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_default();
        let find = |spans: &mut Vec<Span>| {
            spans
                .iter()
                .rposition(|s| s.step == step && s.phase == phase)
        };
        match event {
            "step_started" => match find(&mut spans) {
                Some(i) if spans[i].end.is_none() || spans[i].status == "failed" => {
                    spans[i].attempts += 1;
                    spans[i].status = "running".to_owned();
                    spans[i].end = None;
                }
                _ => spans.push(Span {
                    step: step.clone(),
                    phase: phase.clone(),
                    action: r
                        .get("action")
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    start: ts(r),
                    status: "running".to_owned(),
                    attempts: 1,
                    ..Default::default()
                }),
            },
            "step_finished" | "step_failed" | "step_skipped" => {
                let status = outcome
                    .get("status")
                    .and_then(Json::as_str)
                    .unwrap_or(event)
                    .to_owned();
                let detail = outcome
                    .get("error")
                    .or_else(|| outcome.get("reason"))
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let i = match find(&mut spans) {
                    Some(i) => i,
                    None => {
                        spans.push(Span {
                            step: step.clone(),
                            phase: phase.clone(),
                            start: ts(r),
                            ..Default::default()
                        });
                        spans.len() - 1
                    }
                };
                spans[i].end = ts(r);
                spans[i].status = status;
                spans[i].detail = detail;
            }
            "gate_decision" => {
                let approvers = r
                    .get("approvals")
                    .and_then(Json::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Json::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                let status = outcome
                    .get("status")
                    .and_then(Json::as_str)
                    .unwrap_or_default();
                let reason = outcome
                    .get("reason")
                    .and_then(Json::as_str)
                    .unwrap_or_default();
                let by = if approvers.is_empty() {
                    String::new()
                } else {
                    format!(" by {approvers}")
                };
                notes.push(format!("{when} gate {step}: {status}{by} ({reason})"));
            }
            "approval_recorded" => {
                if let Some(a) = r.get("approvals").and_then(|a| a.get(0)) {
                    let comment = a
                        .get("comment")
                        .and_then(Json::as_str)
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default();
                    notes.push(format!(
                        "{when} {} {}d gate {step}{comment}",
                        a.get("actor").and_then(Json::as_str).unwrap_or("?"),
                        a.get("decision").and_then(Json::as_str).unwrap_or("?")
                    ));
                }
            }
            "rollback_started" => notes.push(format!(
                "{when} rollback started after step {} failed",
                outcome
                    .get("failed_step")
                    .and_then(Json::as_str)
                    .unwrap_or("?")
            )),
            "rollback_finished" => notes.push(format!(
                "{when} rollback finished ({})",
                if outcome.get("ok").and_then(Json::as_bool).unwrap_or(false) {
                    "every compensation succeeded"
                } else {
                    "a compensation failed"
                }
            )),
            "run_waiting" => notes.push(format!(
                "{when} run waiting: {}",
                outcome
                    .get("reason")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
            )),
            "run_resumed" => notes.push(format!(
                "{when} run resumed by {}",
                outcome
                    .get("operator")
                    .and_then(Json::as_str)
                    .unwrap_or("?")
            )),
            "resume_decision" => notes.push(format!(
                "{when} {} chose to {} in-flight step {step}",
                r.get("decided_by").and_then(Json::as_str).unwrap_or("?"),
                outcome.get("status").and_then(Json::as_str).unwrap_or("?")
            )),
            "run_interrupted" => notes.push(format!("{when} run interrupted")),
            "run_finished" => notes.push(format!(
                "{when} run finished: {}{}",
                outcome.get("status").and_then(Json::as_str).unwrap_or("?"),
                outcome
                    .get("error")
                    .and_then(Json::as_str)
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )),
            "torn_tail_repaired" => notes.push(format!(
                "{when} {}",
                r.get("detail").and_then(Json::as_str).unwrap_or_default()
            )),
            _ => {}
        }
    }
    (spans, notes)
}

/// The header facts of a run from its first record.
pub fn header(entries: &[Map<String, Json>]) -> Vec<(String, String)> {
    let Some(first) = entries.first() else {
        return Vec::new();
    };
    let last = entries.last().unwrap_or(first);
    let s = |v: Option<&Json>| v.and_then(Json::as_str).unwrap_or("-").to_owned();
    let pb = first.get("playbook").cloned().unwrap_or(Json::Null);
    let target = first.get("target").cloned().unwrap_or(Json::Null);
    let status = entries
        .iter()
        .rev()
        .find_map(|r| match r.get("event").and_then(Json::as_str) {
            Some("run_finished" | "run_interrupted") => r
                .get("outcome")
                .and_then(|o| o.get("status"))
                .and_then(Json::as_str)
                .map(str::to_owned),
            Some("run_waiting") => Some("waiting_approval".to_owned()),
            _ => None,
        })
        .unwrap_or_else(|| "running (or crashed)".to_owned());
    let git = pb
        .get("git_commit")
        .and_then(Json::as_str)
        .map(|c| format!(", git {}", short(c)))
        .unwrap_or_default();
    vec![
        ("run".into(), s(first.get("run_id"))),
        (
            "playbook".into(),
            format!(
                "{} ({}, sha256 {}{git})",
                s(pb.get("name")),
                s(pb.get("file")),
                short(pb.get("sha256").and_then(Json::as_str).unwrap_or("-"))
            ),
        ),
        ("environment".into(), s(first.get("env"))),
        (
            "target".into(),
            format!(
                "{} {} ({})",
                s(target.get("host")),
                s(target.get("database")),
                s(target.get("server_version"))
            ),
        ),
        (
            "operator".into(),
            format!("{}@{}", s(first.get("operator")), s(first.get("host"))),
        ),
        (
            "tool".into(),
            format!("runbook {}", s(first.get("tool_version"))),
        ),
        ("started".into(), s(first.get("ts"))),
        ("last record".into(), s(last.get("ts"))),
        ("status".into(), status),
    ]
}

/// The readable timeline `runbook audit show` prints.
pub fn show(v: &Verdict) -> String {
    let mut out = String::new();
    for (k, val) in header(&v.entries) {
        let _ = writeln!(out, "{k:<12} {val}");
    }
    let _ = writeln!(out, "{:<12} {}", "audit", v.summary());
    let (spans, notes) = timeline(&v.entries);
    let w = spans.iter().map(|s| s.step.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(
        out,
        "\n{:<8}  {:<w$}  {:<10}  {:<8}  {:<10}  {:>8}  detail",
        "start", "step", "phase", "action", "status", "took"
    );
    for s in &spans {
        let took = match (s.start, s.end) {
            (Some(a), Some(b)) => format!("{:.1}s", (b - a).num_milliseconds() as f64 / 1000.0),
            _ => "-".to_owned(),
        };
        let retries = if s.attempts > 1 {
            format!(" ({} attempts)", s.attempts)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{:<8}  {:<w$}  {:<10}  {:<8}  {:<10}  {:>8}  {}{retries}",
            s.start
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_default(),
            s.step,
            s.phase,
            s.action,
            s.status,
            took,
            s.detail
        );
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "\nevents");
        for n in notes {
            let _ = writeln!(out, "  {n}");
        }
    }
    out
}

/// Records as CSV, one line per record.
pub fn csv(verdicts: &[Verdict]) -> String {
    let mut out =
        String::from("run_id,seq,ts,event,step,phase,action,status,operator,env,prev,hash\n");
    let cell = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    for v in verdicts {
        for r in &v.entries {
            let g = |k: &str| {
                r.get(k)
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                    .unwrap_or_default()
            };
            let status = r
                .get("outcome")
                .and_then(|o| o.get("status"))
                .and_then(Json::as_str)
                .unwrap_or_default();
            let fields = [
                g("run_id"),
                g("seq"),
                g("ts"),
                g("event"),
                g("step"),
                g("phase"),
                g("action"),
                status.to_owned(),
                g("operator"),
                g("env"),
                g("prev"),
                g("hash"),
            ];
            let _ = writeln!(
                out,
                "{}",
                fields.iter().map(|f| cell(f)).collect::<Vec<_>>().join(",")
            );
        }
    }
    out
}

/// One self-contained HTML page for auditors: summary, verification, a timeline chart (inline
/// SVG), gates with approvers, rollbacks and failures. No external assets.
pub fn html(v: &Verdict) -> String {
    let e = |s: &str| xml_escape(s);
    let (spans, notes) = timeline(&v.entries);
    let verified = !v.failed();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>runbook audit: run {id}</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1b1f24;background:#fff}}
h1{{font-size:1.5rem;margin:0 0 .25rem}} h2{{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.25rem}}
table{{border-collapse:collapse;font-size:.9rem}} td,th{{padding:.3rem .7rem;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}}
th{{background:#f6f8fa}} .ok{{color:#1a7f37;font-weight:600}} .bad{{color:#cf222e;font-weight:600}} .muted{{color:#57606a}}
.badge{{display:inline-block;padding:.2rem .6rem;border-radius:1rem;font-weight:600}} .badge.ok{{background:#dafbe1}} .badge.bad{{background:#ffebe9}}
code{{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85rem}}
</style></head><body>
<h1>Audit report: run <code id="run-id">{id}</code></h1>
<p class="muted">Generated by runbook {ver} at {now}. Everything on this page comes from the run's hash-chained audit log.</p>
<p><span class="badge {cls}">{verdict}</span></p>
"#,
        id = e(&v.run_id),
        ver = env!("CARGO_PKG_VERSION"),
        now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC"),
        cls = if verified { "ok" } else { "bad" },
        verdict = e(&format!(
            "{} {}",
            if verified {
                "Verified:"
            } else {
                "Verification failed:"
            },
            v.summary()
        )),
    );
    let _ = write!(out, "<h2>Summary</h2><table>");
    for (k, val) in header(&v.entries) {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", e(&k), e(&val));
    }
    let _ = write!(out, "</table>");
    // The timeline chart: one bar per step, placed by start time and sized by duration.
    let t0 = spans.iter().filter_map(|s| s.start).min();
    let t1 = spans.iter().filter_map(|s| s.end.or(s.start)).max();
    if let (Some(t0), Some(t1)) = (t0, t1) {
        let total = ((t1 - t0).num_milliseconds().max(1)) as f64;
        let (label_w, chart_w, row_h) = (180.0, 640.0, 22.0);
        let height = row_h * spans.len() as f64 + 30.0;
        let _ = write!(
            out,
            r#"<h2>Timeline</h2><svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" role="img" aria-label="step timeline">"#,
            w = label_w + chart_w + 80.0
        );
        for (i, s) in spans.iter().enumerate() {
            let y = i as f64 * row_h + 4.0;
            let start = s
                .start
                .map_or(0.0, |t| (t - t0).num_milliseconds() as f64 / total);
            let end = s
                .end
                .or(s.start)
                .map_or(start, |t| (t - t0).num_milliseconds() as f64 / total);
            let x = label_w + start * chart_w;
            let width = ((end - start) * chart_w).max(3.0);
            let color = match s.status.as_str() {
                "succeeded" => "#2da44e",
                "skipped" => "#8c959f",
                "failed" => "#cf222e",
                _ => "#bf8700",
            };
            let took = match (s.start, s.end) {
                (Some(a), Some(b)) => format!("{:.1}s", (b - a).num_milliseconds() as f64 / 1000.0),
                _ => String::new(),
            };
            let _ = write!(
                out,
                r##"<text x="0" y="{ty}" font-size="12">{label}</text><rect x="{x:.1}" y="{y:.1}" width="{width:.1}" height="{h}" rx="3" fill="{color}"><title>{title}</title></rect><text x="{tx:.1}" y="{ty}" font-size="11" fill="#57606a">{took}</text>"##,
                ty = y + 13.0,
                label = e(&format!("{} ({})", s.step, s.phase)),
                h = row_h - 6.0,
                title = e(&format!("{} {} {}", s.step, s.status, s.detail)),
                tx = x + width + 4.0,
            );
        }
        let _ = write!(out, "</svg>");
    }
    let _ = write!(
        out,
        "<h2>Steps</h2><table><tr><th>step</th><th>phase</th><th>action</th><th>status</th><th>started</th><th>detail</th></tr>"
    );
    for s in &spans {
        let cls = if s.status == "failed" {
            "bad"
        } else if s.status == "succeeded" {
            "ok"
        } else {
            "muted"
        };
        let _ = write!(
            out,
            r#"<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class="{cls}">{}</td><td>{}</td><td>{}</td></tr>"#,
            e(&s.step),
            e(&s.phase),
            e(&s.action),
            e(&s.status),
            s.start
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_default(),
            e(&s.detail)
        );
    }
    let _ = write!(out, "</table>");
    let section = |title: &str, pick: &dyn Fn(&str) -> bool| {
        let items: Vec<&String> = notes.iter().filter(|n| pick(n)).collect();
        let mut s = format!("<h2>{}</h2>", e(title));
        if items.is_empty() {
            s.push_str("<p class=\"muted\">None.</p>");
        } else {
            s.push_str("<ul>");
            for n in items {
                s.push_str(&format!("<li>{}</li>", e(n)));
            }
            s.push_str("</ul>");
        }
        s
    };
    out.push_str(&section("Gates and approvals", &|n: &str| {
        n.contains(" gate ") || n.contains("approved") || n.contains("rejected")
    }));
    out.push_str(&section("Rollbacks", &|n: &str| n.contains("rollback")));
    let failures: Vec<&Span> = spans.iter().filter(|s| s.status == "failed").collect();
    let _ = write!(out, "<h2>Failures</h2>");
    if failures.is_empty() {
        let _ = write!(out, "<p class=\"muted\">None.</p>");
    } else {
        let _ = write!(out, "<ul>");
        for f in failures {
            let _ = write!(
                out,
                "<li><code>{}</code>: {}</li>",
                e(&f.step),
                e(&f.detail)
            );
        }
        let _ = write!(out, "</ul>");
    }
    out.push_str(&section("All events", &|_| true));
    let _ = writeln!(out, "</body></html>");
    out
}
