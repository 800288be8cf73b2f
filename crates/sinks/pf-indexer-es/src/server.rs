//! What answers at the endpoint: the destination asks once at start (`GET /`) and logs
//! it, so that an operator sees whether Elasticsearch, OpenSearch or another compatible
//! server took the documents.

use serde_json::Value;

/// The flavour and version a server reports at `GET /`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `Elasticsearch`, `OpenSearch`, or the build flavour another compatible server
    /// names.
    pub flavour: String,
    /// `version.number`.
    pub version: String,
}

impl ServerInfo {
    /// Reads the `GET /` answer of an Elasticsearch-compatible server; `None` when it
    /// has no `version.number`.
    pub fn from_root(body: &[u8]) -> Option<ServerInfo> {
        let root: Value = serde_json::from_slice(body).ok()?;
        let version = &root["version"];
        let flavour = match (
            version["distribution"].as_str(),
            version["build_flavor"].as_str(),
        ) {
            (Some("opensearch"), _) => "OpenSearch",
            (Some(other), _) => other,
            (None, None | Some("default" | "oss")) => "Elasticsearch",
            (None, Some(other)) => other,
        };
        Some(ServerInfo {
            flavour: flavour.to_owned(),
            version: version["number"].as_str()?.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavours_are_told_apart() {
        let cases: [(&str, Option<(&str, &str)>); 5] = [
            (
                r#"{"name":"noida-db","tagline":"You Know, for Search","version":{"build_flavor":"default","number":"8.15.3"}}"#,
                Some(("Elasticsearch", "8.15.3")),
            ),
            (
                r#"{"name":"osmem-node","version":{"distribution":"opensearch","number":"3.8.0"}}"#,
                Some(("OpenSearch", "3.8.0")),
            ),
            (
                r#"{"version":{"number":"9.1.0","build_flavor":"protocol-test-server"}}"#,
                Some(("protocol-test-server", "9.1.0")),
            ),
            (r#"{"version":{}}"#, None),
            ("not json", None),
        ];
        for (body, expected) in cases {
            let got = ServerInfo::from_root(body.as_bytes());
            let got = got
                .as_ref()
                .map(|i| (i.flavour.as_str(), i.version.as_str()));
            assert_eq!(got, expected, "{body}");
        }
    }
}
