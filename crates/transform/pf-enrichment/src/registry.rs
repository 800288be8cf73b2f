//! All tables of a deployment, by name.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pf_error::{PfError, Result};

use crate::config::TableConfig;
use crate::table::EnrichmentTable;

/// The enrichment tables of a deployment, by name. Cheap to clone (the tables are shared);
/// every pipeline thread holds the same tables.
#[derive(Debug, Clone, Default)]
pub struct EnrichmentTables {
    tables: BTreeMap<String, Arc<EnrichmentTable>>,
}

impl EnrichmentTables {
    /// Loads every configured table, several at a time (one thread per core at most).
    ///
    /// Duplicate names are rejected before anything is read. If several tables fail, the
    /// error of the first one in configuration order is returned, so the message does not
    /// depend on thread timing.
    pub fn load(configs: &[TableConfig]) -> Result<EnrichmentTables> {
        for (i, c) in configs.iter().enumerate() {
            if configs[..i].iter().any(|p| p.name == c.name) {
                return Err(PfError::config(
                    format!("transform.tables[{i}].name"),
                    format!("table name `{}` is used more than once", c.name),
                ));
            }
        }
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(configs.len());
        let loaded = if threads <= 1 {
            configs.iter().map(EnrichmentTable::load).collect()
        } else {
            load_parallel(configs, threads)
        };
        let mut tables = BTreeMap::new();
        for (i, table) in loaded.into_iter().enumerate() {
            let table = table.map_err(|e| at_entry(i, e))?;
            tables.insert(table.name().to_owned(), Arc::new(table));
        }
        Ok(EnrichmentTables { tables })
    }

    /// A registry of tables built elsewhere (tests, computed tables); duplicate names are
    /// rejected.
    pub fn from_tables(
        tables: impl IntoIterator<Item = EnrichmentTable>,
    ) -> Result<EnrichmentTables> {
        let mut out = EnrichmentTables::default();
        for t in tables {
            out.insert(Arc::new(t))?;
        }
        Ok(out)
    }

    /// Adds `table`; an error if a table of that name is already present.
    pub fn insert(&mut self, table: Arc<EnrichmentTable>) -> Result<()> {
        let name = table.name().to_owned();
        if self.tables.contains_key(&name) {
            return Err(PfError::config(
                format!("transform.tables.{name}.name"),
                format!("table name `{name}` is used more than once"),
            ));
        }
        self.tables.insert(name, table);
        Ok(())
    }

    /// The table called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<EnrichmentTable>> {
        self.tables.get(name)
    }

    /// The table names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }

    /// The tables, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<EnrichmentTable>> {
        self.tables.values()
    }

    /// Number of tables.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// Whether no table is configured.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

/// Loads `configs` on `threads` scoped threads, each taking the next unloaded table, and
/// returns the results in configuration order.
fn load_parallel(configs: &[TableConfig], threads: usize) -> Vec<Result<EnrichmentTable>> {
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<Result<EnrichmentTable>>> = configs.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(config) = configs.get(i) else {
                            break;
                        };
                        done.push((i, EnrichmentTable::load(config)));
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            // A loader that panicked leaves its tables unset; they are reported below.
            if let Ok(done) = worker.join() {
                for (i, r) in done {
                    if let Some(slot) = results.get_mut(i) {
                        *slot = Some(r);
                    }
                }
            }
        }
    });
    results
        .into_iter()
        .zip(configs)
        .map(|(r, c)| {
            r.unwrap_or_else(|| {
                Err(PfError::config(
                    format!("transform.tables.{}.path", c.name),
                    format!("loading `{}` failed unexpectedly", c.path.display()),
                ))
            })
        })
        .collect()
}

/// An error of the table at `transform.tables[index]`, named by that key: a config error
/// keeps its field, anything else (a file that is missing, unreadable or malformed) is
/// an error of the entry's `path`.
fn at_entry(index: usize, err: PfError) -> PfError {
    match err {
        PfError::Config { key, message, .. } => {
            let field = key.rsplit('.').next().unwrap_or("path");
            PfError::config(format!("transform.tables[{index}].{field}"), message)
        }
        other => PfError::config(format!("transform.tables[{index}].path"), other),
    }
}
