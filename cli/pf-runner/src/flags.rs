//! CLI flags declared as overrides of configuration keys.
//!
//! A binary lists its [`KeyFlag`]s once; each becomes a clap argument whose help ends
//! with `[config: key]`, and whatever the user passed (on the command line or through
//! the flag's environment variable) becomes an [`Override`] of that key. Values are
//! checked by the configuration itself, so a flag and its key accept the same values
//! and fail with the same message, naming both.

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches};
use pf_config::{Override, ValueForm};

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagValue {
    /// One value: `--threads 4`.
    One(&'static str),
    /// Repeatable; the values form a list: `--es-endpoint A --es-endpoint B`.
    Many(&'static str),
    /// No value; present means `true`: `--es-setup`.
    Switch,
}

/// One CLI flag that sets configuration keys.
#[derive(Debug, Clone, Copy)]
pub struct KeyFlag {
    /// The long name, without `--`.
    pub long: &'static str,
    /// An optional short name.
    pub short: Option<char>,
    /// The key paths it sets (usually one).
    pub keys: &'static [&'static str],
    /// How it takes its value (with the value's placeholder name).
    pub value: FlagValue,
    /// An environment variable it is also read from; its value is never shown in help.
    pub env: Option<&'static str>,
    /// One line of help; `[config: key]` is appended.
    pub help: &'static str,
}

impl KeyFlag {
    /// A one-value flag for `key`.
    pub const fn one(
        long: &'static str,
        value_name: &'static str,
        keys: &'static [&'static str],
        help: &'static str,
    ) -> Self {
        Self::new(long, keys, FlagValue::One(value_name), help)
    }

    /// This flag with a short name.
    pub const fn short(mut self, c: char) -> Self {
        self.short = Some(c);
        self
    }

    /// This flag also read from the environment variable `name`.
    pub const fn env(mut self, name: &'static str) -> Self {
        self.env = Some(name);
        self
    }

    /// This flag as a repeatable list.
    pub const fn many(mut self) -> Self {
        if let FlagValue::One(name) = self.value {
            self.value = FlagValue::Many(name);
        }
        self
    }

    /// A switch (no value) that sets `key` to `true`.
    pub const fn switch(
        long: &'static str,
        keys: &'static [&'static str],
        help: &'static str,
    ) -> Self {
        Self::new(long, keys, FlagValue::Switch, help)
    }

    const fn new(
        long: &'static str,
        keys: &'static [&'static str],
        value: FlagValue,
        help: &'static str,
    ) -> Self {
        KeyFlag {
            long,
            short: None,
            keys,
            value,
            env: None,
            help,
        }
    }

    /// The clap argument.
    pub fn arg(&self) -> Arg {
        let help = format!("{} [config: {}]", self.help, self.keys.join(", "));
        let mut arg = Arg::new(self.long).long(self.long).help(help);
        if let Some(c) = self.short {
            arg = arg.short(c);
        }
        arg = match self.value {
            FlagValue::One(name) => arg.value_name(name).action(ArgAction::Set),
            FlagValue::Many(name) => arg.value_name(name).action(ArgAction::Append),
            FlagValue::Switch => arg.action(ArgAction::SetTrue),
        };
        if let Some(env) = self.env {
            arg = arg.env(env).hide_env_values(true);
        }
        arg
    }

    /// The overrides this flag makes in `matches`; none when it was not given.
    pub fn overrides(&self, matches: &ArgMatches) -> Vec<Override> {
        let source = match matches.value_source(self.long) {
            Some(ValueSource::CommandLine) => format!("--{}", self.long),
            Some(ValueSource::EnvVariable) => self.env.unwrap_or(self.long).to_owned(),
            _ => return Vec::new(),
        };
        let values: Vec<String> = match self.value {
            FlagValue::Switch => {
                if !matches.get_flag(self.long) {
                    return Vec::new();
                }
                vec!["true".to_owned()]
            }
            _ => matches
                .get_raw(self.long)
                .into_iter()
                .flatten()
                .map(|v| v.to_string_lossy().into_owned())
                .collect(),
        };
        let form = match self.value {
            // A repeatable flag always sets a list, even of one.
            FlagValue::Many(_) => ValueForm::List,
            FlagValue::One(_) | FlagValue::Switch => ValueForm::Scalar,
        };
        self.keys
            .iter()
            .map(|key| Override {
                key: (*key).to_owned(),
                values: values.clone(),
                form,
                source: source.clone(),
            })
            .collect()
    }
}

/// The overrides of every flag in `flags`, then of each `--set key=value` in `sets`, in
/// that order (so `--set` wins).
pub fn overrides(
    matches: &ArgMatches,
    flags: &[KeyFlag],
    sets: &[String],
) -> pf_error::Result<Vec<Override>> {
    let mut out: Vec<Override> = flags.iter().flat_map(|f| f.overrides(matches)).collect();
    for s in sets {
        out.push(Override::parse_set(s)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[KeyFlag] = &[
        KeyFlag::one("threads", "N", &["worker.threads"], "Threads").short('t'),
        KeyFlag::one(
            "region",
            "R",
            &["storage.s3.region", "queue.sqs.region"],
            "Region",
        ),
        KeyFlag::one(
            "es-endpoint",
            "URL",
            &["indexer.elasticsearch.endpoints"],
            "Node",
        )
        .many(),
        KeyFlag::switch("es-setup", &["indexer.elasticsearch.setup"], "Set up"),
    ];

    fn parse(args: &[&str]) -> Vec<Override> {
        let cmd = clap::Command::new("t").args(FLAGS.iter().map(KeyFlag::arg));
        let m = cmd.try_get_matches_from(args).unwrap();
        overrides(&m, FLAGS, &["reader.batch_size=7".into()]).unwrap()
    }

    #[test]
    fn given_flags_become_overrides_of_their_keys() {
        let o = parse(&["t", "-t", "3", "--region", "eu-west-1", "--es-setup"]);
        // key, values, source: one line per override.
        let got: Vec<String> = o
            .iter()
            .map(|o| format!("{} {:?} {}", o.key, o.values, o.source))
            .collect();
        assert_eq!(
            got,
            [
                r#"worker.threads ["3"] --threads"#,
                r#"storage.s3.region ["eu-west-1"] --region"#,
                r#"queue.sqs.region ["eu-west-1"] --region"#,
                r#"indexer.elasticsearch.setup ["true"] --es-setup"#,
                r#"reader.batch_size ["7"] --set reader.batch_size"#,
            ]
        );
        let o = parse(&["t", "--es-endpoint", "http://a:1"]);
        assert_eq!(
            (o[0].values.as_slice(), o[0].form),
            (&["http://a:1".to_owned()][..], ValueForm::List)
        );
        let o = parse(&[
            "t",
            "--es-endpoint",
            "http://a:1",
            "--es-endpoint",
            "http://b:1",
        ]);
        assert_eq!(o[0].values, ["http://a:1", "http://b:1"]);
    }

    #[test]
    fn help_names_the_key() {
        let help = FLAGS[1].arg().get_help().unwrap().to_string();
        assert!(
            help.ends_with("[config: storage.s3.region, queue.sqs.region]"),
            "{help}"
        );
    }
}
