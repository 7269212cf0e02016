//! Writes a synthetic self-hosted Bitwarden install for demos and benchmarks.
//!
//! `cargo run --release --example make-install -- DEST [--size-mb N] [--backups K] [--seed S] [--sparse]`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use bwguard::sample::{SampleOptions, generate};

const USAGE: &str = "usage: make-install DEST [--size-mb N] [--backups K] [--seed S] [--sparse]
  N: size of vault.mdf in MiB (default 256); K: nightly .BAK files (default 2), each 60% of N;
  S: PRNG seed (default 1); --sparse leaves the unused tail of each .mdf as a hole";

/// Parses the arguments, or returns the message to print before the usage.
fn parse(mut args: impl Iterator<Item = String>) -> Result<(PathBuf, SampleOptions), String> {
    let mut opts = SampleOptions::default();
    let mut dest = None;
    while let Some(arg) = args.next() {
        let mut number = |name: &str| {
            let value = args.next().ok_or(format!("{name} needs a value"))?;
            value.parse::<u64>().map_err(|e| format!("{name} {value}: {e}"))
        };
        match arg.as_str() {
            "--size-mb" => opts.vault_mb = number("--size-mb")?,
            "--backups" => {
                opts.backups = number("--backups")?.try_into().map_err(|e| format!("--backups: {e}"))?
            }
            "--seed" => opts.seed = number("--seed")?,
            "--sparse" => opts.sparse_tail = true,
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}")),
            _ if dest.is_some() => return Err(format!("unexpected argument {arg}")),
            _ => dest = Some(PathBuf::from(arg)),
        }
    }
    Ok((dest.ok_or("missing DEST")?, opts))
}

fn main() -> ExitCode {
    let (dest, opts) = match parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(msg) => {
            eprintln!("make-install: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    match generate(&dest, &opts) {
        Ok(bytes) => {
            let secs = start.elapsed().as_secs_f64();
            let mib = bytes as f64 / (1 << 20) as f64;
            println!("{}", std::path::absolute(&dest).unwrap_or(dest).display());
            println!("{bytes} bytes ({mib:.1} MiB) in {secs:.2} s ({:.0} MiB/s)", mib / secs);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("make-install: {e}");
            ExitCode::FAILURE
        }
    }
}
