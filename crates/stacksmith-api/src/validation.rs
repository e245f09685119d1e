//! Patterns shared by the schema (enforced by the API server) and by offline checks.

/// A DNS-1123 label: lower-case alphanumerics and `-`, starting and ending alphanumeric.
pub const DNS1123_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A DNS-1123 subdomain: DNS-1123 labels joined by `.`.
pub const DNS1123_SUBDOMAIN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A Prometheus duration such as `15d`, `1h30m` or `0`.
pub const PROMETHEUS_DURATION: &str =
    "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$";

/// Whether `value` is a DNS-1123 label of at most `max_len` characters.
pub fn is_dns1123_label(value: &str, max_len: usize) -> bool {
    let bytes = value.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    bytes.len() <= max_len
        && first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_labels() {
        assert!(is_dns1123_label("acme", 63));
        assert!(is_dns1123_label("a-1", 63));
        assert!(!is_dns1123_label("", 63));
        assert!(!is_dns1123_label("-a", 63));
        assert!(!is_dns1123_label("a-", 63));
        assert!(!is_dns1123_label("Acme", 63));
        assert!(!is_dns1123_label("a_b", 63));
        assert!(!is_dns1123_label("abcdef", 5));
    }
}
