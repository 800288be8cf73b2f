//! Paraflow configuration: aggregates the configuration types the components declare
//! beside their code (`ElasticsearchConfig` in the Elasticsearch sink, `SqsConfig` in
//! the SQS queue, …), reads `worker.yaml`, substitutes `${VAR}`, applies overrides
//! (CLI flags bound to keys, `--set key=value`), validates across sections and builds
//! the worker ([`deploy`]).
//!
//! Secrets are [`pf_types::Secret`] / [`pf_types::SecretUrl`] values, which mask
//! themselves in `Debug`, `Display` and serialization, so [`Config::to_yaml`]
//! (`--print-config`) and logs never show them.
//!
//! Loading runs in this order, and each step's errors are [`PfError::Config`] naming
//! the dotted key they concern:
//!
//! 1. [`substitute_env`] on the raw text (`${VAR}`, `${VAR:-default}`, `$$`);
//! 2. YAML parsing into [`Config`]; unknown keys and wrong types are rejected with the
//!    key path and what was expected;
//! 3. [`Config::validate`], which [`deploy`] calls again.
//!
//! Errors found later, while a component starts (a table file that does not exist, a
//! rules file that does not parse), are [`PfError::Config`] naming the key too;
//! [`Origin::explain`] adds where that key was set (`worker.yaml:14`, `--threads`).
//!
//! ```
//! use pf_config::{Config, Destination};
//!
//! let env = |name: &str| (name == "ES_URL").then(|| "https://es:9200".to_owned());
//! let config = Config::from_yaml_str(
//!     "indexer:\n  destination: elasticsearch\n  elasticsearch:\n    endpoints: [${ES_URL}]\n",
//!     &env,
//! )?;
//! assert_eq!(config.indexer.destination, Destination::Elasticsearch);
//! assert_eq!(config.reader.batch_size, 65536);
//! # Ok::<(), pf_error::PfError>(())
//! ```

mod deploy;
mod env;
mod locate;
mod model;
mod overrides;
mod validate;

use std::path::{Path, PathBuf};

use pf_error::PfError;

pub use deploy::{Deployment, FilesKnown, deploy, describe_metrics, work_queue};
pub use env::substitute_env;
pub use locate::KeyLines;
pub use model::{
    AlertDestination, AlertsConfig, Config, CoordinatorConfig, Destination, ElasticsearchConfig,
    FlightSinkConfig, IndexerConfig, LocalConfig, MetricsConfig, NdjsonConfig, ParquetConfig,
    ParquetSinkConfig, QueueConfig, QueueKind, ReaderConfig, RecordDlqConfig, S3Config, SqsConfig,
    StorageConfig, TransformConfig, ValkeyConfig, WorkerConfig,
};
pub use overrides::{Override, ValueForm};

/// The shipped `config/demo.yaml`: memory queue, local files, stats destination, no
/// external services. Embedded so `pf demo` runs without any file on disk.
pub const DEMO_CONFIG_YAML: &str = include_str!("../../../../config/demo.yaml");

/// The key reported for errors that concern the document as a whole (YAML syntax, a
/// top level that is not a mapping), where no dotted key applies.
pub const DOCUMENT_KEY: &str = "(document)";

/// Where the values of a loaded configuration came from: the file and the line of each
/// key, and the overrides. Turns a key into `worker.yaml:14` or `--threads`.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    file: Option<PathBuf>,
    lines: KeyLines,
    /// `(key, source)` of each override, in order of application.
    overrides: Vec<(String, String)>,
}

impl Origin {
    /// Where `key` was set: the override that set it (or a key above it), else
    /// `file:line` of the key (or of the nearest key above it written in the file), else
    /// the file; `None` without a file.
    pub fn site(&self, key: &str) -> Option<String> {
        let under = |k: &str| {
            key == k
                || key
                    .strip_prefix(k)
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        };
        if let Some((_, source)) = self.overrides.iter().rev().find(|(k, _)| under(k)) {
            return Some(source.clone());
        }
        let file = self.file.as_ref()?;
        Some(match self.lines.line_of(key) {
            Some(line) => format!("{}:{line}", file.display()),
            None => file.display().to_string(),
        })
    }

    /// `err` with the site of its key put before its message, when it is a configuration
    /// error and the site is known; other errors unchanged.
    pub fn explain(&self, err: PfError) -> PfError {
        match err {
            PfError::Config { key, message } => match self.site(&key) {
                Some(site) => PfError::Config {
                    message: format!("{site}: {message}"),
                    key,
                },
                None => PfError::Config { key, message },
            },
            other => other,
        }
    }
}

impl Config {
    /// Reads the file at `path`, substitutes the process environment, parses and
    /// validates it.
    ///
    /// Errors name the file: unreadable files are [`PfError::Io`] /
    /// [`PfError::NotFound`]; everything else is [`PfError::Config`] whose message
    /// starts with `path:` (or `path:line:` when the key is in the file).
    pub fn load(path: &Path) -> Result<Config, PfError> {
        Self::resolve(Some(path), &[]).map(|(config, _)| config)
    }

    /// The configuration of `file` (or the defaults) with `overrides` applied on top,
    /// the process environment substituted, validated; and where each value came from.
    pub fn resolve(
        file: Option<&Path>,
        overrides: &[Override],
    ) -> Result<(Config, Origin), PfError> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| PfError::io(format!("config file {}", path.display()), e))?,
            None => String::new(),
        };
        let process_env = |name: &str| std::env::var(name).ok();
        Self::parse_and_validate(&text, &process_env, file, overrides)
    }

    /// Like [`Config::load`] for text already in memory, with variables looked up
    /// through `env` instead of the process environment.
    pub fn from_yaml_str(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, PfError> {
        Self::parse_and_validate(text, env, None, &[]).map(|(config, _)| config)
    }

    /// The embedded demo configuration ([`DEMO_CONFIG_YAML`]), without environment
    /// substitution from the process.
    pub fn demo() -> Result<Config, PfError> {
        Self::from_yaml_str(DEMO_CONFIG_YAML, &|_| None)
    }

    /// Checks ranges and cross-key requirements; the error names the first offending
    /// key. Call again after changing fields.
    pub fn validate(&self) -> Result<(), PfError> {
        validate::validate(self)
    }

    /// The effective configuration as YAML, secrets masked by their types. Meant for
    /// `--print-config` and start-up logs.
    pub fn to_yaml(&self) -> String {
        // Only a non-UTF-8 path can fail to serialize; a printable note beats a panic in
        // a diagnostic command.
        serde_norway::to_string(self)
            .unwrap_or_else(|e| format!("# cannot render the configuration as YAML: {e}\n"))
    }

    fn parse_and_validate(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        file: Option<&Path>,
        overrides: &[Override],
    ) -> Result<(Config, Origin), PfError> {
        let with_file = |err: PfError| match (err, file) {
            (PfError::Config { key, message }, Some(path)) => PfError::Config {
                key,
                message: format!("{}: {message}", path.display()),
            },
            (err, _) => err,
        };
        let raw = text;
        let text = substitute_env(raw, env).map_err(with_file)?;
        let origin = Origin {
            file: file.map(Path::to_path_buf),
            // The file as written: a substituted value spanning lines shifts nothing.
            lines: KeyLines::index(raw),
            overrides: overrides
                .iter()
                .map(|o| (o.key.clone(), o.source.clone()))
                .collect(),
        };
        let mut config = parse(&text, overrides).map_err(|failure| {
            if failure.key == DOCUMENT_KEY || file.is_none() && overrides.is_empty() {
                return with_file(PfError::Config {
                    key: failure.key,
                    message: failure.message,
                });
            }
            match (origin.site(&failure.key), file, failure.line) {
                // The locator did not find the key; serde's position still points at it.
                (Some(site), Some(path), Some(line)) if site == path.display().to_string() => {
                    PfError::Config {
                        message: format!("{}:{line}: {}", path.display(), failure.message),
                        key: failure.key,
                    }
                }
                _ => origin.explain(PfError::Config {
                    key: failure.key,
                    message: failure.message,
                }),
            }
        })?;
        if let Some(dir) = file.and_then(Path::parent) {
            config.resolve_paths(dir);
        }
        config.validate().map_err(|e| origin.explain(e))?;
        Ok((config, origin))
    }

    /// Makes the relative paths of `transform` (script, rules, tables) and of
    /// `storage.local.allow` relative to `base`, so a config file works from any
    /// working directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        self.transform.resolve_paths(base);
        for dir in self.storage.local.allow.iter_mut().flatten() {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
    }
}

/// A parse error split into its parts, so `load` can add the file and line.
struct ParseFailure {
    key: String,
    message: String,
    line: Option<usize>,
}

fn parse(text: &str, overrides: &[Override]) -> Result<Config, ParseFailure> {
    let document_failure = |e: serde_norway::Error| ParseFailure {
        key: DOCUMENT_KEY.to_owned(),
        message: e.to_string(),
        line: None,
    };
    // A syntax error late in the file can surface as a misleading type error when
    // deserializing the events before it, so the syntax is checked on its own first.
    serde_norway::from_str::<serde_norway::Value>(text).map_err(document_failure)?;
    let config = deserialize(text, true)?;
    if overrides.is_empty() {
        return Ok(config);
    }
    // Overrides are set on the configuration as its own types read it (written out in
    // memory with secrets revealed), so a file's `password: 0x1F` stays the string it
    // was; the merged document is then read again, which types the override values by
    // their keys.
    let mut document = pf_types::with_secrets_revealed(|| serde_norway::to_value(&config))
        .map_err(document_failure)?;
    for o in overrides {
        o.apply(&mut document).map_err(|e| ParseFailure {
            key: o.key.clone(),
            message: e.to_string(),
            line: None,
        })?;
    }
    let merged = serde_norway::to_string(&document).map_err(document_failure)?;
    // Positions in the written-out document are not the file's; the caller locates keys.
    deserialize(&merged, false)
}

/// `text` as a [`Config`]. Deserializing from text (not from a `Value`) keeps scalars
/// untyped until the target is known, so `password: 123456` is a string rather than a
/// type error. `positions_are_the_files`: whether serde's line numbers can be reported.
fn deserialize(text: &str, positions_are_the_files: bool) -> Result<Config, ParseFailure> {
    let deserializer = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        if key == "." {
            return ParseFailure {
                key: DOCUMENT_KEY.to_owned(),
                message: inner.to_string(),
                line: None,
            };
        }
        let message = bare_message(&inner);
        ParseFailure {
            message: if holds_secret(&key) {
                mask_quoted(&message)
            } else {
                message
            },
            key,
            line: inner
                .location()
                .filter(|_| positions_are_the_files)
                .map(|l| l.line()),
        }
    })
}

/// The serde message without the YAML path prefix and position suffix that
/// serde_norway adds, since the key and line are reported separately.
fn bare_message(err: &serde_norway::Error) -> String {
    let mut text = err.to_string();
    if let Some(location) = err.location() {
        let suffix = format!(" at line {} column {}", location.line(), location.column());
        if text.ends_with(&suffix) {
            text.truncate(text.len() - suffix.len());
        }
    }
    match text.split_once(": ") {
        // A path has no spaces; serde messages ("invalid type: …") always do before
        // their first colon.
        Some((path, message)) if !path.contains(' ') => message.to_owned(),
        _ => text,
    }
}

/// Whether the value at `key` may carry a secret (a password, a key, credentials in a
/// URL), so messages about it must not quote it.
fn holds_secret(key: &str) -> bool {
    ["password", "api_key", "url", "endpoints", "endpoint"]
        .iter()
        .any(|name| key.split(['.', '[']).any(|part| part == *name))
}

/// `message` with every double-quoted value replaced by `"***"`: serde quotes the
/// offending value (`invalid type: string "https://u:pw@es:9200", expected a sequence`).
fn mask_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        out.push('"');
        out.push_str(if i % 2 == 0 { pf_types::MASK } else { part });
    }
    out
}

#[cfg(test)]
mod tests;
