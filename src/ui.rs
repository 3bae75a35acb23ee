//! The one owner of the terminal. Data goes to stdout; diagnostics, progress and notes go to
//! stderr. Colour only when stderr is a terminal and `NO_COLOR` is unset.

use crate::diagnostic::Diagnostic;
use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone)]
pub struct Ui {
    color: bool,
    quiet: bool,
}

impl Ui {
    pub fn new(choice: ColorChoice, quiet: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color && std::io::stderr().is_terminal(),
        };
        Ui { color, quiet }
    }

    /// clap's help, version and usage errors, as clap formats them (help and version on
    /// stdout, errors on stderr).
    pub fn clap_error(e: &clap::Error) {
        let _ = e.print();
    }

    /// Whether progress can be drawn: stderr is a terminal and `-q` was not given.
    pub fn is_interactive(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }

    /// Data for stdout: plans, JSON, reports.
    pub fn data(&self, text: &str) {
        let text = &crate::redact::global().redact(text);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
        let _ = out.flush();
    }

    pub fn diagnostic(&self, d: &Diagnostic) {
        let _ = std::io::stderr()
            .lock()
            .write_all(d.render(self.color).as_bytes());
    }

    pub fn diagnostics(&self, diags: &[Diagnostic]) {
        for d in diags {
            self.diagnostic(d);
        }
    }

    /// A status line on stderr, silenced by `-q`.
    pub fn note(&self, text: &str) {
        let text = &crate::redact::global().redact(text);
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }

    /// An error line on stderr with an optional hint; never silenced.
    pub fn error(&self, text: &str, hint: Option<&str>) {
        let text = &crate::redact::global().redact(text);
        let hint = hint.map(|h| crate::redact::global().redact(h));
        let hint = hint.as_deref();
        let (red, bold, reset) = if self.color {
            ("\x1b[31m", "\x1b[1m", "\x1b[0m")
        } else {
            ("", "", "")
        };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{bold}{red}error{reset}{bold}: {text}{reset}");
        if let Some(h) = hint {
            let _ = writeln!(err, "  {bold}hint{reset}: {h}");
        }
    }

    /// Whether a person can answer a prompt: stdin and stderr are both terminals.
    pub fn can_prompt(&self) -> bool {
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
    }

    /// Asks a question on stderr and reads one line of answer from stdin; `None` when stdin
    /// is closed (Ctrl-D, a terminal hung up) or unreadable, and when `cancel` (Ctrl-C) comes
    /// first: then the question is not asked if Ctrl-C came before it, and the read of the
    /// terminal is left behind (on a thread of its own: the exit does not wait for it).
    pub async fn prompt(
        &self,
        question: &str,
        cancel: &tokio::sync::watch::Receiver<bool>,
    ) -> Option<String> {
        let question = crate::redact::global().redact(question);
        let read = async {
            crate::cancel::detached("prompt", move || {
                let mut err = std::io::stderr();
                let _ = write!(err, "{question}");
                let _ = err.flush();
                let mut line = String::new();
                match std::io::stdin().read_line(&mut line) {
                    Ok(0) | Err(_) => None,
                    Ok(_) => Some(line.trim().to_owned()),
                }
            })
            .await
            .ok()
            .flatten()
        };
        let mut cancel = cancel.clone();
        tokio::select! {
            biased;
            _ = crate::cancel::wait_cancel(&mut cancel) => None,
            answer = read => answer,
        }
    }
}

/// A `tracing` writer that redacts every line before it reaches stderr.
pub struct RedactingWriter;

impl std::io::Write for RedactingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(crate::redact::global().redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Step progress for runs: an indicatif spinner with elapsed time per step and a summary
/// table when stderr is a terminal; plain timestamped lines otherwise (CI logs).
pub struct Progress {
    tty: bool,
    quiet: bool,
    color: bool,
    bar: Option<indicatif::ProgressBar>,
    rows: Vec<(String, String, String, String)>,
    /// What the running step printed (its notes), for its audit record's excerpt; `None`
    /// between steps. A mutex because `db` reports through `&self` from any thread.
    printed: std::sync::Mutex<Option<String>>,
}

/// Most characters of a step's notes kept for its record (the record keeps fewer).
const PRINTED_MAX: usize = 4096;

impl Progress {
    pub fn new(ui: &Ui) -> Self {
        let tty = std::io::stderr().is_terminal() && !ui.quiet;
        Progress {
            tty,
            quiet: ui.quiet,
            color: ui.color,
            bar: None,
            rows: Vec::new(),
            printed: std::sync::Mutex::new(None),
        }
    }

    /// What the running step printed since it started (its notes, one a line, redacted), and
    /// stops collecting until the next step starts.
    pub fn take_printed(&self) -> String {
        self.printed
            .lock()
            .map(|mut p| p.take().unwrap_or_default())
            .unwrap_or_default()
    }

    fn stamp() -> String {
        chrono::Utc::now().format("%H:%M:%S").to_string()
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        let text = &crate::redact::global().redact(text);
        match &self.bar {
            Some(bar) => bar.println(text),
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        }
    }

    /// A run-level message (run started, rollback started, ...), or a running step's note.
    pub fn note(&self, text: &str) {
        if let Ok(mut guard) = self.printed.lock()
            && let Some(p) = guard.as_mut()
            && p.len() < PRINTED_MAX
        {
            if !p.is_empty() {
                p.push('\n');
            }
            p.push_str(&crate::redact::global().redact(text));
        }
        if self.tty {
            self.line(text);
        } else {
            self.line(&format!("{} {text}", Self::stamp()));
        }
    }

    pub fn start(&mut self, id: &str, action: &str, attempt: u32) {
        if let Ok(mut p) = self.printed.lock() {
            *p = Some(String::new());
        }
        let retry = if attempt > 1 {
            format!(" (attempt {attempt})")
        } else {
            String::new()
        };
        if self.tty {
            let bar = indicatif::ProgressBar::new_spinner();
            let style = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.set_message(format!("{id} ({action}){retry}"));
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            self.bar = Some(bar);
        } else {
            self.line(&format!("{} start  {id} ({action}){retry}", Self::stamp()));
        }
    }

    /// Replaces the running step's spinner text (e.g. bytes written so far). Without a
    /// terminal there is no spinner and this does nothing: CI logs get the step's start and
    /// finish lines and the action's notes, not a line per tick.
    pub fn detail(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.to_owned());
        }
    }

    /// Ends the current step: `status` is ok, failed, skipped or interrupted.
    pub fn finish(
        &mut self,
        id: &str,
        action: &str,
        status: &str,
        took: std::time::Duration,
        detail: &str,
    ) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let secs = format!("{:.1}s", took.as_secs_f64());
        let (tone, reset) = match (self.color, status) {
            (true, "ok") => ("\x1b[32m", "\x1b[0m"),
            (true, "skipped") => ("\x1b[2m", "\x1b[0m"),
            (true, _) => ("\x1b[31m", "\x1b[0m"),
            _ => ("", ""),
        };
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!("  {detail}")
        };
        if self.tty {
            self.line(&format!(
                "{tone}{status:<7}{reset} {id} ({action}) {secs}{detail}"
            ));
        } else {
            self.line(&format!(
                "{} {status:<6} {id} ({action}) {secs}{detail}",
                Self::stamp()
            ));
        }
        self.rows
            .push((id.to_owned(), action.to_owned(), status.to_owned(), secs));
    }

    /// The summary table, on a terminal only.
    pub fn summary(&self, outcome: &str) {
        if !self.tty {
            self.line(&format!("{} {outcome}", Self::stamp()));
            return;
        }
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|(id, action, status, secs)| {
                vec![id.clone(), action.clone(), status.clone(), secs.clone()]
            })
            .collect();
        use crate::table::Align::{Left, Right};
        let mut out = format!(
            "\n{}",
            crate::table::render(
                &["step", "action", "status", "time"],
                &[Left, Left, Left, Right],
                &rows
            )
        );
        out.push_str(&format!("\n{outcome}"));
        self.line(&out);
    }
}

impl crate::db::op::Report for Progress {
    fn note(&self, text: &str) {
        Progress::note(self, text);
    }

    fn detail(&self, text: &str) {
        Progress::detail(self, text);
    }
}

/// Where a fleet stands when a target ends.
#[derive(Debug, Clone, Copy)]
pub struct FleetTally {
    pub done: usize,
    pub running: usize,
    pub failed: usize,
}

/// Fleet progress: on a terminal, a spinner per target in flight under a totals bar; otherwise
/// a timestamped line per target started and ended (CI logs).
pub struct FleetProgress {
    ui: Ui,
    total: usize,
    began: std::time::Instant,
    bars: Option<(indicatif::MultiProgress, indicatif::ProgressBar)>,
    spinners: Vec<(String, indicatif::ProgressBar)>,
}

impl FleetProgress {
    pub fn new(ui: &Ui, total: usize) -> Self {
        let bars = ui.is_interactive().then(|| {
            let multi = indicatif::MultiProgress::new();
            let totals = multi.add(indicatif::ProgressBar::new(total as u64));
            totals.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} targets done  {msg}  {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            (multi, totals)
        });
        FleetProgress {
            ui: ui.clone(),
            total,
            began: std::time::Instant::now(),
            bars,
            spinners: Vec::new(),
        }
    }

    /// A target's child started.
    pub fn started(&mut self, target: &str, canary: bool) {
        let label = format!("{target}{}", if canary { " (canary)" } else { "" });
        match &self.bars {
            Some((multi, _)) => {
                let sp = multi.insert(0, indicatif::ProgressBar::new_spinner());
                sp.set_message(label);
                sp.enable_steady_tick(std::time::Duration::from_millis(120));
                self.spinners.push((target.to_owned(), sp));
            }
            None => self
                .ui
                .note(&format!("{} start   {label}", Progress::stamp())),
        }
    }

    /// A target's child ended with `result` after `took`.
    pub fn finished(
        &mut self,
        target: &str,
        result: &str,
        took: std::time::Duration,
        tally: FleetTally,
    ) {
        let shown = if result == "succeeded" { "ok" } else { result };
        let FleetTally {
            done,
            running,
            failed,
        } = tally;
        let Some((multi, totals)) = &self.bars else {
            self.ui.note(&format!(
                "{} {shown:<8} {target} in {:.1}s    [{done}/{} done, {running} running, {failed} failed, {:.0}s]",
                Progress::stamp(),
                took.as_secs_f64(),
                self.total,
                self.began.elapsed().as_secs_f64()
            ));
            return;
        };
        if let Some(i) = self.spinners.iter().position(|(t, _)| t == target) {
            let (_, sp) = self.spinners.swap_remove(i);
            sp.finish_and_clear();
            multi.remove(&sp);
        }
        totals.set_position(done as u64);
        totals.set_message(format!("{running} running, {failed} failed"));
        let _ = multi.println(format!("{shown:<8} {target} in {:.1}s", took.as_secs_f64()));
    }
}

impl Ui {
    /// An urgent line on stderr that `-q` does not silence, such as the Ctrl-C notice. The
    /// text is the program's own, never data, so it is written as it is.
    pub fn urgent(&self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }
}
