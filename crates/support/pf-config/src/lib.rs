//! Paraflow configuration: the YAML model shared by every binary, `${VAR}`
//! substitution, validation and a secret-free rendering of the effective settings.
//!
//! Loading runs in this order, and each step's errors are [`PfError::Config`] naming
//! the dotted key they concern:
//!
//! 1. [`substitute_env`] on the raw text (`${VAR}`, `${VAR:-default}`, `$$`);
//! 2. YAML parsing into [`Config`]; unknown keys and wrong types are rejected with the
//!    key path and what was expected;
//! 3. [`Config::validate`], which the binaries call again after applying CLI overrides.
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

mod env;
mod mask;
mod model;
mod validate;

use std::path::{Path, PathBuf};

use pf_error::PfError;

pub use env::substitute_env;
pub use mask::mask_url_userinfo;
pub use model::{
    AlertDestination, AlertsConfig, Config, CoordinatorConfig, Destination, ElasticsearchConfig,
    EsOpType, FieldSpec, FieldType, IndexerConfig, MetricsConfig, NdjsonConfig, ParquetConfig,
    Progress, QueueConfig, QueueKind, ReaderConfig, RecordDlqConfig, S3Config, SqsConfig,
    StorageConfig, TableFormatSpec, TableKindSpec, TableSpec, TransformConfig, ValkeyConfig,
    WorkerConfig,
};

/// The shipped `config/demo.yaml`: memory queue, local files, stats destination, no
/// external services. Embedded so `pf demo` runs without any file on disk.
pub const DEMO_CONFIG_YAML: &str = include_str!("../../../../config/demo.yaml");

/// The key reported for errors that concern the document as a whole (YAML syntax, a
/// top level that is not a mapping), where no dotted key applies.
pub const DOCUMENT_KEY: &str = "(document)";

impl Config {
    /// Reads the file at `path`, substitutes the process environment, parses and
    /// validates it.
    ///
    /// Errors name the file: unreadable files are [`PfError::Io`] /
    /// [`PfError::NotFound`]; everything else is [`PfError::Config`] whose message
    /// starts with `path:` (or `path:line:` for a bad value).
    pub fn load(path: &Path) -> Result<Config, PfError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PfError::io(format!("config file {}", path.display()), e))?;
        let process_env = |name: &str| std::env::var(name).ok();
        Self::parse_and_validate(&text, &process_env, Some(path))
    }

    /// Like [`Config::load`] for text already in memory, with variables looked up
    /// through `env` instead of the process environment.
    pub fn from_yaml_str(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, PfError> {
        Self::parse_and_validate(text, env, None)
    }

    /// The embedded demo configuration ([`DEMO_CONFIG_YAML`]), without environment
    /// substitution from the process.
    pub fn demo() -> Result<Config, PfError> {
        Self::from_yaml_str(DEMO_CONFIG_YAML, &|_| None)
    }

    /// Checks ranges and cross-key requirements; the error names the first offending
    /// key. Call again after changing fields (CLI overrides).
    pub fn validate(&self) -> Result<(), PfError> {
        validate::validate(self)
    }

    /// The effective configuration as YAML, with `password`, `api_key` and the userinfo
    /// of URLs (Valkey, Elasticsearch endpoints) replaced by `***`. Meant for
    /// `--print-config` and start-up logs.
    pub fn to_masked_yaml(&self) -> String {
        let mut masked = self.clone();
        let es = &mut masked.indexer.elasticsearch;
        let valkey_password = &mut masked.coordinator.valkey.password;
        for secret in [&mut es.password, &mut es.api_key, valkey_password] {
            if secret.is_some() {
                *secret = Some(mask::MASK.to_owned());
            }
        }
        let urls = es
            .endpoints
            .iter_mut()
            .chain(masked.coordinator.valkey.url.as_mut())
            .chain(masked.queue.sqs.endpoint.as_mut())
            .chain(masked.storage.s3.endpoint.as_mut());
        for url in urls {
            *url = mask_url_userinfo(url);
        }
        // Only a non-UTF-8 path (possible from a CLI override) can fail to serialize;
        // a printable note beats a panic in a diagnostic command.
        serde_norway::to_string(&masked)
            .unwrap_or_else(|e| format!("# cannot render the configuration as YAML: {e}\n"))
    }

    fn parse_and_validate(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        origin: Option<&Path>,
    ) -> Result<Config, PfError> {
        let with_origin = |err: PfError| match (err, origin) {
            (PfError::Config { key, message }, Some(path)) => PfError::Config {
                key,
                message: format!("{}: {message}", path.display()),
            },
            (err, _) => err,
        };
        let text = substitute_env(text, env).map_err(with_origin)?;
        let mut config = parse(&text).map_err(|failure| {
            let message = match (origin, failure.line) {
                (Some(path), Some(line)) => {
                    format!("{}:{line}: {}", path.display(), failure.message)
                }
                (Some(path), None) => format!("{}: {}", path.display(), failure.message),
                (None, _) => failure.message,
            };
            PfError::Config {
                key: failure.key,
                message,
            }
        })?;
        if let Some(dir) = origin.and_then(Path::parent) {
            config.resolve_paths(dir);
        }
        config.validate().map_err(with_origin)?;
        Ok(config)
    }

    /// Makes the relative paths of `transform` (script, rules, tables) relative to
    /// `base`, so a config file works from any working directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        let t = &mut self.transform;
        if let Some(p) = t.script.as_mut() {
            resolve(p);
        }
        if let Some(p) = t.rules.as_mut() {
            resolve(p);
        }
        for table in &mut t.tables {
            resolve(&mut table.path);
        }
    }
}

/// A parse error split into its parts, so `load` can add the file and line.
struct ParseFailure {
    key: String,
    message: String,
    line: Option<usize>,
}

fn parse(text: &str) -> Result<Config, ParseFailure> {
    // A syntax error late in the file can surface as a misleading type error when
    // deserializing the events before it, so the syntax is checked on its own first.
    if let Err(e) = serde_norway::from_str::<serde_norway::Value>(text) {
        return Err(ParseFailure {
            key: DOCUMENT_KEY.to_owned(),
            message: e.to_string(),
            line: None,
        });
    }
    // Deserializing from the text (not from the Value) keeps scalars untyped until the
    // target is known, so `password: 123456` is a string rather than a type error.
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
        ParseFailure {
            key,
            message: bare_message(&inner),
            line: inner.location().map(|l| l.line()),
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

#[cfg(test)]
mod tests;
