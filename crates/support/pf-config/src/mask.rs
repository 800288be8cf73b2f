//! Hiding secrets before a configuration is printed or logged.

/// What a secret value is replaced with.
pub(crate) const MASK: &str = "***";

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
}
