//! `storage.local`: which local paths a work item may name.

use std::path::{Component, Path, PathBuf};

use pf_error::{PfError, Result};
use serde::{Deserialize, Serialize};

/// `storage.local`: local files (`file://` URIs and plain paths).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    /// `allow`: directories under which work items may name local files; a path
    /// outside them (after resolving `..` and symbolic links) is refused before a byte
    /// is read and its item goes to the DLQ as permanent. Default `null`: any path when
    /// work items come from stdin or memory (the operator's own pipe), none when they
    /// come from SQS (anyone who can send to the queue could name `/etc/passwd`).
    pub allow: Option<Vec<PathBuf>>,
}

/// Which local paths may be read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LocalAccess {
    /// Any path (work items come from the operator).
    #[default]
    Any,
    /// Only paths under these directories (canonical); none when empty.
    Under(Vec<PathBuf>),
}

impl LocalConfig {
    /// The access `allow` grants; `untrusted_queue`: work items come from a queue others
    /// may write to, so the default is no local access. Directories that do not exist
    /// are configuration errors naming their entry.
    pub fn access(&self, untrusted_queue: bool) -> Result<LocalAccess> {
        let Some(dirs) = &self.allow else {
            return Ok(if untrusted_queue {
                LocalAccess::Under(Vec::new())
            } else {
                LocalAccess::Any
            });
        };
        dirs.iter()
            .enumerate()
            .map(|(i, d)| {
                std::fs::canonicalize(d).map_err(|e| {
                    PfError::config(
                        format!("storage.local.allow[{i}]"),
                        format!("{}: {e}", d.display()),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(LocalAccess::Under)
    }
}

impl LocalAccess {
    /// Refuses `path` unless it lies under an allowed directory. The check resolves
    /// symbolic links and `..` (of the longest existing ancestor, so a missing file under
    /// an allowed directory is still reported as missing, not refused).
    pub fn check(&self, uri: &str, path: &Path) -> Result<()> {
        let LocalAccess::Under(roots) = self else {
            return Ok(());
        };
        let resolved = resolve(path);
        if roots.iter().any(|root| resolved.starts_with(root)) {
            return Ok(());
        }
        Err(PfError::InvalidWorkItem {
            message: format!(
                "local path `{uri}` is not under storage.local.allow ({}); refused without reading it",
                if roots.is_empty() {
                    "no local paths are allowed for this queue".to_owned()
                } else {
                    roots
                        .iter()
                        .map(|r| r.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        })
    }
}

/// `path` made absolute with symbolic links and `..` resolved as far as it exists; the
/// rest is appended lexically (`..` dropping a component).
fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            let mut out = real;
            for c in rest.iter().rev() {
                match c {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(n) => out.push(n),
                    _ => {}
                }
            }
            return out;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_under_allowed_directories_pass() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("data");
        std::fs::create_dir(&allowed).unwrap();
        std::fs::write(allowed.join("a.ndjson"), "{}\n").unwrap();
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::os::unix::fs::symlink(&other, allowed.join("link")).unwrap();

        let access = LocalConfig {
            allow: Some(vec![allowed.clone()]),
        }
        .access(true)
        .unwrap();
        let ok = |p: PathBuf| access.check(&p.display().to_string(), &p);
        assert!(ok(allowed.join("a.ndjson")).is_ok());
        assert!(
            ok(allowed.join("missing.ndjson")).is_ok(),
            "missing, not refused"
        );
        let refused = ok(allowed.join("../other/x")).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("not under storage.local.allow"),
            "{refused}"
        );
        assert!(
            ok(allowed.join("link/x")).is_err(),
            "a symlink out is refused"
        );
        assert!(ok(PathBuf::from("/etc/passwd")).is_err());

        // From SQS with no allow-list nothing local is readable; from stdin everything.
        let none = LocalConfig::default().access(true).unwrap();
        let e = none
            .check("file:///etc/passwd", Path::new("/etc/passwd"))
            .unwrap_err();
        assert!(e.to_string().contains("no local paths are allowed"), "{e}");
        let any = LocalConfig::default().access(false).unwrap();
        assert!(any.check("/etc/passwd", Path::new("/etc/passwd")).is_ok());

        let bad = LocalConfig {
            allow: Some(vec![dir.path().join("nope")]),
        };
        let e = bad.access(true).unwrap_err();
        assert!(e.to_string().contains("storage.local.allow[0]"), "{e}");
    }
}
