//! `pf status`: progress of a job from the shared Valkey metadata.

use std::time::Duration;

use anyhow::Context;
use clap::Args as ClapArgs;
use pf_coordinator::{ValkeyConfig, ValkeyMetadataStore, print_status};
use pf_runner::EXIT_FILES_FAILED;

/// Arguments of `pf status`.
#[derive(Debug, ClapArgs)]
pub struct StatusArgs {
    /// The Valkey the workers use, e.g. redis://localhost:6379 (password in the URL or
    /// VALKEY_PASSWORD).
    #[arg(
        long,
        value_name = "URL",
        env = "PF_VALKEY_URL",
        hide_env_values = true
    )]
    valkey_url: String,
    /// The job (the discoverer's --job-id); default: the most recently active job.
    #[arg(long, value_name = "ID")]
    job: Option<String>,
    /// Print again every --interval seconds until the job is completed or failed.
    #[arg(long)]
    watch: bool,
    /// Seconds between reports with --watch.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    interval: f64,
    /// One JSON object per report, for scripts.
    #[arg(long)]
    json: bool,
    /// Items without a heartbeat for this long are reported as stale (the workers'
    /// coordinator.valkey.stale_after_secs).
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    stale_after: u64,
    /// Key prefix the workers use (coordinator.valkey.key_prefix).
    #[arg(long, value_name = "PREFIX", default_value = "pf:")]
    key_prefix: String,
}

/// Runs `pf status`; exit 0, or 2 when the job has failed items.
pub fn status(args: StatusArgs) -> anyhow::Result<i32> {
    let config = ValkeyConfig {
        key_prefix: args.key_prefix.clone(),
        // A status query should say the server is down, not wait for it.
        outage_limit_secs: 5,
        ..ValkeyConfig::for_url(args.valkey_url.as_str()).with_env_password()
    };
    let store = ValkeyMetadataStore::connect(&config).context("cannot reach Valkey")?;
    let watch = args
        .watch
        .then(|| Duration::from_secs_f64(args.interval.clamp(0.1, 3600.0)));
    let stdout = std::io::stdout();
    let failed = print_status(
        &store,
        args.job.as_deref(),
        Duration::from_secs(args.stale_after),
        watch,
        args.json,
        &mut stdout.lock(),
    )?;
    match failed {
        None => match &args.job {
            Some(j) => anyhow::bail!("job `{j}` is not in the metadata store"),
            None => anyhow::bail!("the metadata store knows no job"),
        },
        Some(true) => Ok(EXIT_FILES_FAILED),
        Some(false) => Ok(0),
    }
}
