//! Path normalisation before anything matches on a path (config.md, "Path patterns"), so
//! `/x/../admin`, `//admin` and `/%61dmin` all meet the rules written for `/admin`:
//! percent-encoded unreserved characters are decoded, `.` and `..` segments resolved, repeated
//! slashes merged. An encoded slash or NUL, a bad escape and a `..` above the root are refused.

use std::borrow::Cow;

/// Why a path is refused (the client gets 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPath {
    /// `%2F` or `%00`: a backend could read it as a separator or a terminator.
    EncodedSeparator,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// A `..` that climbs above `/`.
    AboveRoot,
}

impl BadPath {
    /// The message the client sees.
    pub fn message(self) -> &'static str {
        match self {
            BadPath::EncodedSeparator => "an encoded slash or NUL in the path",
            BadPath::BadEscape => "a malformed percent-escape in the path",
            BadPath::AboveRoot => "the path climbs above the root",
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// True when the path is already in normal form, which is the common case (no copy).
fn is_normal(path: &[u8]) -> bool {
    let mut prev_slash = false;
    for (i, &b) in path.iter().enumerate() {
        match b {
            b'%' => return false,
            b'/' if prev_slash => return false,
            b'.' if prev_slash => {
                let rest = &path[i..];
                let segment = rest.split(|&c| c == b'/').next().unwrap_or(rest);
                if segment == b"." || segment == b".." {
                    return false;
                }
            }
            _ => {}
        }
        prev_slash = b == b'/';
    }
    true
}

/// The normal form of an origin-form path (one starting with `/`); other targets (`*`) are
/// returned as they are.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, BadPath> {
    let raw = path.as_bytes();
    if raw.first() != Some(&b'/') || is_normal(raw) {
        return Ok(Cow::Borrowed(path));
    }
    // Decode unreserved escapes; keep the others, with upper-case hex.
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'%' {
            decoded.push(raw[i]);
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            raw.get(i + 1).copied().and_then(hex),
            raw.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(BadPath::BadEscape);
        };
        let byte = hi << 4 | lo;
        if byte == b'/' || byte == 0 {
            return Err(BadPath::EncodedSeparator);
        }
        if unreserved(byte) {
            decoded.push(byte);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            decoded.extend_from_slice(&[b'%', HEX[usize::from(hi)], HEX[usize::from(lo)]]);
        }
        i += 3;
    }
    // Resolve dot segments and merge slashes.
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded[1..].split(|&b| b == b'/') {
        trailing_slash = true;
        match segment {
            b"" | b"." => {}
            b".." => {
                if segments.pop().is_none() {
                    return Err(BadPath::AboveRoot);
                }
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        // Only ASCII bytes were decoded, so the segments are as valid UTF-8 as the input.
        out.push_str(std::str::from_utf8(s).map_err(|_| BadPath::BadEscape)?);
    }
    if trailing_slash || segments.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tricks_that_reach_admin_become_admin() {
        for trick in [
            "/x/../admin",
            "/./admin",
            "//admin",
            "/%61dmin",
            "/x/%2e%2e/admin",
            "/x/%2E%2E/admin",
            "///a/../admin",
        ] {
            assert_eq!(normalize(trick).unwrap(), "/admin", "{trick}");
        }
        assert_eq!(normalize("//secret/a").unwrap(), "/secret/a");
        assert_eq!(normalize("/%73ecret/a").unwrap(), "/secret/a");
    }

    #[test]
    fn normal_paths_are_kept_without_a_copy() {
        for path in ["/", "/a/b", "/a/b/", "/a.b/.c/..d", "/a-b_c~d", "*"] {
            assert!(
                matches!(normalize(path), Ok(Cow::Borrowed(p)) if p == path),
                "{path}"
            );
        }
    }

    #[test]
    fn trailing_slashes_and_reserved_escapes() {
        assert_eq!(normalize("/a/b/..").unwrap(), "/a/");
        assert_eq!(normalize("/a/.").unwrap(), "/a/");
        assert_eq!(normalize("/a//").unwrap(), "/a/");
        assert_eq!(normalize("/..a/%7e").unwrap(), "/..a/~");
        assert_eq!(normalize("/a%20b/%3f").unwrap(), "/a%20b/%3F");
        assert_eq!(normalize("/a/../").unwrap(), "/");
    }

    #[test]
    fn hostile_paths_are_refused() {
        assert_eq!(normalize("/a%2fb"), Err(BadPath::EncodedSeparator));
        assert_eq!(normalize("/a%2F..%2Fadmin"), Err(BadPath::EncodedSeparator));
        assert_eq!(normalize("/a%00b"), Err(BadPath::EncodedSeparator));
        assert_eq!(normalize("/a%zz"), Err(BadPath::BadEscape));
        assert_eq!(normalize("/a%4"), Err(BadPath::BadEscape));
        assert_eq!(normalize("/.."), Err(BadPath::AboveRoot));
        assert_eq!(normalize("/a/../../etc/passwd"), Err(BadPath::AboveRoot));
    }
}
