//! `pf-chaos`: runs the chaos suite against the binaries beside it and prints its
//! table (see `testing/chaos.sh`). Exit status 0 when every row is clean, 1 otherwise.

use std::process::ExitCode;

use pf_tests::chaos::{ChaosOptions, SCENARIOS, run, table};

const USAGE: &str = "usage: pf-chaos [--rows N] [--files N] [--only SCENARIO]...\n\
scenarios (default: all):";

fn main() -> ExitCode {
    let mut options = ChaosOptions {
        bins: pf_tests::bin_dir(),
        rows: 200_000,
        files: 8,
        only: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next();
        let number = || value.as_deref().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), &value) {
            ("--rows", _) if number().is_some() => options.rows = number().unwrap_or(0),
            ("--files", _) if number().is_some() => {
                options.files = usize::try_from(number().unwrap_or(0)).unwrap_or(1);
            }
            ("--only", Some(v)) if SCENARIOS.contains(&v.as_str()) => options.only.push(v.clone()),
            _ => {
                eprintln!("pf-chaos: bad argument `{flag}`\n{USAGE}");
                for s in SCENARIOS {
                    eprintln!("  {s}");
                }
                return ExitCode::from(2);
            }
        }
    }
    let outcomes = run(&options);
    print!("{}", table(&outcomes));
    if outcomes.iter().all(|o| o.clean()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
