//! Build script: links the `runbook` binary as a position-dependent executable on Linux (glibc).
//!
//! A position-independent executable is relocated by the dynamic loader at every start: about
//! 69,000 pointers (vtables, static tables of strings), which writes to some 600 pages of the
//! binary before `main` runs. Measured on the 2-core machine of issue 20, `runbook --version`
//! took 2.4 ms as a PIE and 1.4 ms without (610 page faults against 189), and a 60-file
//! migrate run about 3 ms less: every command pays it, and runbook is started once per
//! command, often from CI loops. The cost of the choice: the binary's own code and data load
//! at a fixed address (ASLR still places the shared libraries, the heap and the stacks), as
//! Go builds its Linux binaries by default. `RUNBOOK_PIE=1` at build time keeps the
//! toolchain's default (a PIE). Only the binary's link changes: the library, the tests and
//! the dependencies are built as before.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUNBOOK_PIE");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let keep_pie = !var("RUNBOOK_PIE").is_empty() && var("RUNBOOK_PIE") != "0";
    if var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu" && !keep_pie {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
