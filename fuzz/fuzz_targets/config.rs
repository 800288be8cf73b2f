//! Configuration loading from YAML text (`Config::from_yaml_str`: `${VAR}` substitution,
//! YAML parsing, deserialization with key paths, validation), the key → line index used
//! in error messages, and `--set key=value` overrides applied on top of the defaults
//! (`Config::resolve` without a file). Must never panic.
//!
//! Input: UTF-8 text. The whole text is the configuration file; each of its lines that
//! `Override::parse_set` accepts (at most 4) is also applied as a `--set` override.
#![no_main]

use libfuzzer_sys::fuzz_target;

use pf_config::{Config, KeyLines, Override};

/// A fixed environment: a set variable, an empty one, a number and a value that is
/// YAML structure on its own.
fn env(name: &str) -> Option<String> {
    match name {
        "ES_URL" => Some("https://user:pw@es:9200".to_owned()),
        "EMPTY" => Some(String::new()),
        "THREADS" => Some("4".to_owned()),
        "YAML" => Some("a: [b\n- c: {".to_owned()),
        _ => None,
    }
}

const KEYS: &[&str] = &[
    "worker.threads",
    "indexer.elasticsearch.endpoints[0]",
    "transform.tables[1].path",
    "reader.ndjson.schema[0].name",
    "queue.sqs.queue_url",
];

fuzz_target!(|text: &str| {
    if let Ok(config) = Config::from_yaml_str(text, &env) {
        let _ = config.validate();
        let _ = config.to_yaml();
    }

    let lines = KeyLines::index(text);
    for key in KEYS {
        let _ = lines.line_of(key);
    }

    let overrides: Vec<Override> = text
        .lines()
        .filter_map(|line| Override::parse_set(line).ok())
        .take(4)
        .collect();
    if !overrides.is_empty() {
        // No file: the defaults with the overrides on top; the process environment is
        // consulted only for `${…}` in the (empty) file text, so runs stay reproducible.
        if let Ok((config, origin)) = Config::resolve(None, &overrides) {
            let _ = config.to_yaml();
            for o in &overrides {
                let _ = origin.site(&o.key);
            }
        }
    }
});
