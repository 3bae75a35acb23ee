//! The `runbook` binary: parse arguments, run the command, exit with its documented code.

fn main() {
    let code = runbook::cli::main();
    std::process::exit(code.code());
}
