//! `pf queue setup` and `pf dlq inspect|redrive|purge`: the SQS operations an operator
//! needs around a distributed run.

use clap::{Args as ClapArgs, Subcommand, ValueEnum};

use pf_aws::{AwsContext, AwsSettings};
use pf_error::ErrorClass;
use pf_queue_sqs::{DeadLetters, QueueSpec, setup_queues};

/// Where the queues live.
#[derive(Debug, ClapArgs)]
pub struct SqsConnection {
    /// SQS endpoint URL (LocalStack, moto); default: AWS.
    #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL")]
    sqs_endpoint: Option<String>,
    /// AWS region; default: the AWS default chain.
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
}

impl SqsConnection {
    fn connect(&self) -> anyhow::Result<AwsContext> {
        Ok(AwsContext::connect(&AwsSettings::new(
            self.sqs_endpoint.clone(),
            self.region.clone(),
        ))?)
    }
}

/// `pf queue …`
#[derive(Debug, ClapArgs)]
pub struct QueueArgs {
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// Create the work queue and its DLQ with a redrive policy and visibility timeout
    /// (idempotent: running it again updates the attributes) and print their URLs.
    Setup(SetupArgs),
}

#[derive(Debug, ClapArgs)]
struct SetupArgs {
    /// Work queue name.
    #[arg(long, default_value = "paraflow-work")]
    name: String,
    /// DLQ name; default: <name>-dlq.
    #[arg(long)]
    dlq_name: Option<String>,
    /// Visibility timeout of the work queue, seconds (workers extend it while they work).
    #[arg(long, default_value_t = 300)]
    visibility_timeout: u32,
    /// Receives after which SQS moves a message to the DLQ by itself (the backstop for
    /// items that crash workers).
    #[arg(long, default_value_t = 5)]
    max_receive_count: u32,
    /// Message retention, seconds (both queues; SQS maximum 14 days).
    #[arg(long, default_value_t = 1_209_600)]
    retention: u32,
    #[command(flatten)]
    connection: SqsConnection,
}

/// `pf dlq …`
#[derive(Debug, ClapArgs)]
pub struct DlqArgs {
    /// The dead-letter queue URL.
    #[arg(long, value_name = "URL", global = true)]
    dlq_url: Option<String>,
    #[command(flatten)]
    connection: SqsConnection,
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List messages with their error attributes, without consuming them.
    Inspect {
        /// Most messages to show.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Move messages back to the work queue.
    Redrive {
        /// The work queue URL.
        #[arg(long, value_name = "URL")]
        queue_url: String,
        /// Only messages that failed with this error class.
        #[arg(long, value_enum)]
        class: Option<ClassArg>,
    },
    /// Delete every message in the DLQ.
    Purge {
        /// Confirm: the messages are gone for good.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ClassArg {
    Transient,
    Permanent,
    Record,
}

/// Runs `pf queue …`.
pub fn queue(args: QueueArgs) -> anyhow::Result<i32> {
    let QueueCommand::Setup(a) = args.command;
    let aws = a.connection.connect()?;
    let urls = setup_queues(
        &aws,
        &QueueSpec {
            name: a.name,
            dlq_name: a.dlq_name,
            visibility_timeout_secs: a.visibility_timeout,
            max_receive_count: a.max_receive_count,
            retention_secs: a.retention,
        },
    )?;
    println!("PF_SQS_QUEUE_URL={}", urls.queue_url);
    println!("PF_SQS_DLQ_URL={}", urls.dlq_url);
    Ok(0)
}

/// Runs `pf dlq …`.
pub fn dlq(args: DlqArgs) -> anyhow::Result<i32> {
    let Some(dlq_url) = args.dlq_url.clone() else {
        anyhow::bail!("--dlq-url is required (see `pf queue setup`, which prints it)");
    };
    let dead = DeadLetters::new(args.connection.connect()?, dlq_url.clone());
    match args.command {
        DlqCommand::Inspect { limit, json } => {
            let letters = dead.inspect(limit)?;
            if json {
                for l in &letters {
                    println!("{}", serde_json::to_string(l)?);
                }
            } else {
                for l in &letters {
                    let a = |k: &str| l.attributes.get(k).map(String::as_str).unwrap_or("-");
                    use pf_queue_sqs::attributes as at;
                    println!(
                        "{}  class={} attempts={} worker={} first_failure={}\n    {}\n    error: {}",
                        l.message_id,
                        a(at::ERROR_CLASS),
                        a(at::ATTEMPTS),
                        a(at::WORKER_ID),
                        a(at::FIRST_FAILURE),
                        l.body,
                        a(at::ERROR_MESSAGE),
                    );
                }
                eprintln!(
                    "pf dlq: {} message(s) in {dlq_url} (shown, not consumed)",
                    letters.len()
                );
            }
        }
        DlqCommand::Redrive { queue_url, class } => {
            let class = class.map(|c| match c {
                ClassArg::Transient => ErrorClass::Transient,
                ClassArg::Permanent => ErrorClass::Permanent,
                ClassArg::Record => ErrorClass::Record,
            });
            let r = dead.redrive(&queue_url, class)?;
            eprintln!(
                "pf dlq: moved {} message(s) back to {queue_url}; {} left in the DLQ",
                r.moved, r.kept
            );
        }
        DlqCommand::Purge { yes } => {
            if !yes {
                anyhow::bail!("purging deletes every message in {dlq_url}; add --yes to confirm");
            }
            dead.purge()?;
            eprintln!("pf dlq: purged {dlq_url}");
        }
    }
    Ok(0)
}
