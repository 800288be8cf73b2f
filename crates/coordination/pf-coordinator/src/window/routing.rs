//! Where the window store's keys live: one server, or on a Valkey Cluster the node that
//! owns each key's hash slot.

use std::sync::Arc;
use std::time::Duration;

use pf_error::{PfError, Result};
use pf_types::SecretUrl;
use redis::Value;

use crate::ValkeyConfig;
use crate::connection::ValkeyPool;

/// Hash slots of a Valkey Cluster.
const SLOTS: usize = 16_384;

/// The servers holding the window keys and which one holds each hash slot.
pub(crate) struct Routing {
    /// The servers: one, or every primary of the cluster.
    nodes: Vec<Arc<ValkeyPool>>,
    /// Per hash slot, its node in `nodes`; empty for a single server.
    owner: Vec<u16>,
}

impl Routing {
    /// The server of `config`; when it is a cluster node, every primary of its cluster
    /// (from `CLUSTER SLOTS`), reached with the same credentials and settings.
    pub(crate) fn discover(config: &ValkeyConfig) -> Result<Self> {
        Self::read(
            Arc::new(ValkeyPool::new(config)?),
            config,
            config.outage_limit(),
        )
    }

    /// The slots read again, from the configured node or else from any node of this
    /// map that answers within `limit`: after a failover the configured node may be the
    /// dead one, and only the others know which replica took its slots.
    pub(crate) fn rediscover(&self, config: &ValkeyConfig, limit: Duration) -> Result<Self> {
        let mut failure = None;
        let seeds = std::iter::once(ValkeyPool::new(config).map(Arc::new))
            .chain(self.nodes.iter().cloned().map(Ok));
        for seed in seeds {
            match seed.and_then(|seed| Self::read(seed, config, limit)) {
                Ok(routing) => return Ok(routing),
                Err(e) => failure = Some(e),
            }
        }
        Err(failure.expect("the configured node was tried"))
    }

    /// Whether the keys are spread over the nodes of a Valkey Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        !self.owner.is_empty()
    }

    /// The routing `seed` reports, waiting at most `limit` for it; node addresses
    /// take the scheme and credentials of `config`'s URL.
    fn read(seed: Arc<ValkeyPool>, config: &ValkeyConfig, limit: Duration) -> Result<Self> {
        let info: String = seed.run_within("read the server's cluster mode", limit, |c| {
            redis::cmd("INFO").arg("cluster").query(c)
        })?;
        if !info.lines().any(|l| l.trim() == "cluster_enabled:1") {
            return Ok(Routing {
                nodes: vec![seed],
                owner: Vec::new(),
            });
        }
        let slots: Vec<Value> = seed.run_within("read the cluster's slots", limit, |c| {
            redis::cmd("CLUSTER").arg("SLOTS").query(c)
        })?;
        let base = config.url.as_ref().map(SecretUrl::expose).unwrap_or("");
        let mut addresses: Vec<(String, u16)> = Vec::new();
        let mut owner = vec![u16::MAX; SLOTS];
        for range in &slots {
            let Some((start, end, host, port)) = slot_range(range) else {
                continue;
            };
            let host = if host.is_empty() {
                host_of(base).to_owned()
            } else {
                host
            };
            let node = match addresses.iter().position(|a| *a == (host.clone(), port)) {
                Some(i) => i,
                None => {
                    addresses.push((host, port));
                    addresses.len() - 1
                }
            };
            for slot in owner.iter_mut().take(end + 1).skip(start) {
                *slot = node as u16;
            }
        }
        if let Some(slot) = owner.iter().position(|&o| o == u16::MAX) {
            return Err(PfError::config(
                "coordinator.valkey.url",
                format!(
                    "the Valkey Cluster at {} serves no node for hash slot {slot} (CLUSTER \
                     SLOTS): the cluster is not fully set up",
                    seed.target()
                ),
            ));
        }
        let nodes = addresses
            .iter()
            .map(|(host, port)| {
                let node = ValkeyConfig {
                    url: Some(SecretUrl::new(node_url(base, host, *port))),
                    ..config.clone()
                };
                ValkeyPool::new(&node).map(Arc::new)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Routing { nodes, owner })
    }

    /// The node holding `key` (by the hash tag in its braces, as the cluster does), as
    /// an index into [`nodes`](Self::nodes).
    pub(crate) fn node_index(&self, key: &str) -> usize {
        self.owner
            .get(slot(key))
            .map_or(0, |&n| usize::from(n).min(self.nodes.len() - 1))
    }

    /// The nodes, in the order of [`node_index`](Self::node_index).
    pub(crate) fn nodes(&self) -> &[Arc<ValkeyPool>] {
        &self.nodes
    }
}

/// `(first slot, last slot, host, port)` of one `CLUSTER SLOTS` entry (its primary).
fn slot_range(range: &Value) -> Option<(usize, usize, String, u16)> {
    let Value::Array(parts) = range else {
        return None;
    };
    let int = |v: &Value| match v {
        Value::Int(n) => usize::try_from(*n).ok(),
        _ => None,
    };
    let (start, end) = (int(parts.first()?)?, int(parts.get(1)?)?);
    let Value::Array(primary) = parts.get(2)? else {
        return None;
    };
    let host = match primary.first()? {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    let port = u16::try_from(int(primary.get(1)?)?).ok()?;
    (start <= end && end < SLOTS).then_some((start, end, host, port))
}

/// The host of a `redis://[userinfo@]host:port[/db]` URL.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match hostport.rsplit_once(':') {
        Some((host, _)) if !host.ends_with(']') || host.starts_with('[') => host,
        _ => hostport,
    }
}

/// `base` with its host and port replaced (scheme and credentials kept, database
/// dropped: a cluster has only database 0).
fn node_url(base: &str, host: &str, port: u16) -> String {
    let (scheme, rest) = base.split_once("://").unwrap_or(("redis", base));
    let authority = rest.split('/').next().unwrap_or(rest);
    let userinfo = authority.rsplit_once('@').map(|(u, _)| u);
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    match userinfo {
        Some(u) => format!("{scheme}://{u}@{host}:{port}"),
        None => format!("{scheme}://{host}:{port}"),
    }
}

/// The cluster hash slot of `key`: CRC16 (XMODEM) of its hash tag — the text between
/// the first `{` and the next `}` when that is not empty — else of the whole key.
pub(crate) fn slot(key: &str) -> usize {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|&b| b == b'{').and_then(|open| {
        let close = bytes[open + 1..].iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &bytes[open + 1..open + 1 + close])
    });
    usize::from(crc16(tagged.unwrap_or(bytes))) % SLOTS
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_cluster_specification() {
        // The specification's test vector, and slots the server itself reports
        // (`CLUSTER KEYSLOT`).
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("foo{}{bar}"), slot("foo{}{bar}"));
        assert_eq!(
            slot("foo{}{bar}"),
            usize::from(crc16(b"foo{}{bar}")) % SLOTS
        );
        assert_eq!(slot("foo{{bar}}zap"), usize::from(crc16(b"{bar")) % SLOTS);
        assert_eq!(
            slot("pf:windows:{rule:7}"),
            slot("pf:winheld:{rule:7}:item")
        );
    }

    #[test]
    fn node_urls_keep_scheme_and_credentials() {
        assert_eq!(
            node_url("rediss://u:p@seed:6379/0", "10.0.0.2", 7001),
            "rediss://u:p@10.0.0.2:7001"
        );
        assert_eq!(
            node_url("redis://seed:1", "::1", 7002),
            "redis://[::1]:7002"
        );
        assert_eq!(host_of("redis://u:p@seed:6379/0"), "seed");
        assert_eq!(host_of("redis://127.0.0.1:6379"), "127.0.0.1");
    }
}
