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

    /// Data for stdout: plans, JSON, reports.
    pub fn data(&self, text: &str) {
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
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }

    /// An error line on stderr with an optional hint; never silenced.
    pub fn error(&self, text: &str, hint: Option<&str>) {
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
}
