//! Values that must never be printed: passwords, API keys, URLs with credentials.
//!
//! The types mask themselves wherever they are shown — `Debug`, `Display` and
//! serialization (so `--print-config`, logs and summaries are safe by construction) —
//! and hand out the real value only through an explicit `expose` call at the point of
//! use.

use std::cell::Cell;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a secret is shown as.
pub const MASK: &str = "***";

thread_local! {
    /// Set only inside [`with_secrets_revealed`].
    static REVEALED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with secrets serializing as their real values on this thread. Only for
/// round-tripping a configuration through its serialized form in memory (applying
/// overrides); never for anything that is shown or written.
pub fn with_secrets_revealed<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            REVEALED.with(|r| r.set(self.0));
        }
    }
    let _restore = Restore(REVEALED.with(|r| r.replace(true)));
    f()
}

fn revealed() -> bool {
    REVEALED.with(Cell::get)
}

/// Builds a secret wrapper from its plain text: `From<String>`, `From<&str>`, and
/// deserialization from a plain string (configuration files hold the real value).
macro_rules! from_plain_text {
    ($wrapper:ident) => {
        impl<'de> Deserialize<'de> for $wrapper {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map($wrapper)
            }
        }

        impl From<String> for $wrapper {
            fn from(value: String) -> Self {
                $wrapper(value)
            }
        }

        impl From<&str> for $wrapper {
            fn from(value: &str) -> Self {
                $wrapper(value.to_owned())
            }
        }
    };
}

/// A secret string (password, API key). Shown as `***`; read with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The real value, for the one place that sends it (an auth header, a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if revealed() { &self.0 } else { MASK })
    }
}

from_plain_text!(Secret);

/// A URL that may carry credentials in its userinfo (`redis://:pw@host:6379`). Shown
/// with the userinfo replaced by `***`; read with [`SecretUrl::expose`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        SecretUrl(url.into())
    }

    /// The URL with its credentials, for the one place that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL as it may be shown: userinfo masked.
    pub fn masked(&self) -> String {
        mask_url_userinfo(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.masked())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if revealed() {
            serializer.serialize_str(&self.0)
        } else {
            serializer.serialize_str(&self.masked())
        }
    }
}

from_plain_text!(SecretUrl);

/// Compares the real URL (for tests and equality checks; never shown).
impl PartialEq<&str> for SecretUrl {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// `url` with its userinfo (`user:password@`) replaced by `***`, e.g.
/// `redis://:s3cret@cache:6379/0` → `redis://***@cache:6379/0`.
///
/// The userinfo is taken to end at the *last* `@`, so a password with an unencoded
/// `/`, `?` or `#` is still hidden; over-masking an odd path is the lesser evil.
/// Text without `@` is returned unchanged.
pub fn mask_url_userinfo(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    match url[start..].rfind('@') {
        Some(at) => format!("{}{MASK}{}", &url[..start], &url[start + at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_masked() {
        assert_eq!(
            mask_url_userinfo("redis://:s3cret@cache:6379/0"),
            "redis://***@cache:6379/0"
        );
        assert_eq!(
            mask_url_userinfo("rediss://user:p/a#ss@cache:6380"),
            "rediss://***@cache:6380"
        );
        assert_eq!(
            mask_url_userinfo("redis://cache:6379"),
            "redis://cache:6379"
        );
        assert_eq!(mask_url_userinfo("user:pw@host"), "***@host");
    }

    #[test]
    fn secrets_mask_themselves_everywhere_they_are_shown() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "hunter2");
        let back: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(back.expose(), "hunter2");

        let u = SecretUrl::new("redis://:pw@cache:6379");
        assert_eq!(format!("{u}"), "redis://***@cache:6379");
        assert!(!format!("{u:?}").contains("pw"));
        assert_eq!(
            serde_json::to_string(&u).unwrap(),
            "\"redis://***@cache:6379\""
        );
        assert_eq!(u.expose(), "redis://:pw@cache:6379");
        // Revealed only inside the call, and only for serialization.
        let both = (Secret::new("hunter2"), u.clone());
        let inside = with_secrets_revealed(|| serde_json::to_string(&both).unwrap());
        assert_eq!(inside, r#"["hunter2","redis://:pw@cache:6379"]"#);
        assert!(!serde_json::to_string(&both).unwrap().contains("hunter2"));
    }
}
