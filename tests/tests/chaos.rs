//! The chaos suite in its short form (see `pf_tests::chaos` and `testing/chaos.sh`):
//! every fault scenario at a small scale, through the test profile's binaries; every
//! row must be clean.

use pf_tests::chaos::{ChaosOptions, run, table};

#[test]
fn every_chaos_scenario_loses_nothing_and_duplicates_nothing() {
    let outcomes = run(&ChaosOptions {
        bins: pf_tests::bin_dir(),
        rows: 24_000,
        files: 4,
        only: Vec::new(),
    });
    let table = table(&outcomes);
    println!("{table}");
    assert_eq!(outcomes.len(), pf_tests::chaos::SCENARIOS.len());
    assert!(outcomes.iter().all(|o| o.clean()), "{table}");
}
