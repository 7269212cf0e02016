//! The bwguard binary: parse, run, report, exit. Only this file exits.

use std::process::ExitCode;

fn main() -> ExitCode {
    // A shell asking for completions gets them, and nothing else runs.
    bwguard::cli::complete::answer_shell();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let json = args.iter().any(|a| a == "--json");
    let cli = match bwguard::cli::parse(&args) {
        Ok(cli) => cli,
        Err(e) => {
            if json && e.use_stderr() {
                bwguard::report_usage_json(&e.to_string());
            }
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    ExitCode::from(bwguard::main_with(cli) as u8)
}
