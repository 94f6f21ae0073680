//! The request's conditions on a file: `If-None-Match` / `If-Modified-Since` (304), `Range`
//! (206, 416) and `If-Range`, decided from the file's validators.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// More ranges than this in one request are ignored (the whole file is sent): many small
/// ranges cost the server far more than they save.
const MAX_RANGES: usize = 16;

/// A file's validators.
pub struct Validators {
    /// `ETag`, quoted: size and modification time, so any change of either changes it.
    pub etag: String,
    /// Modification time, whole seconds (as `Last-Modified` says it).
    pub modified: SystemTime,
}

impl Validators {
    /// The validators of a file of `size` bytes modified at `modified`.
    pub fn new(size: u64, modified: SystemTime) -> Self {
        let since = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
        Validators {
            etag: format!(
                "\"{size:x}-{:x}-{:x}\"",
                since.as_secs(),
                since.subsec_nanos()
            ),
            modified: UNIX_EPOCH + Duration::from_secs(since.as_secs()),
        }
    }

    /// True when the client's copy is current: `If-None-Match` lists our tag (weak
    /// comparison) or is `*`; without it, `If-Modified-Since` is not older than the file.
    pub fn not_modified(
        &self,
        if_none_match: Option<&str>,
        if_modified_since: Option<&str>,
    ) -> bool {
        if let Some(list) = if_none_match {
            return list.trim() == "*"
                || list
                    .split(',')
                    .any(|t| t.trim().trim_start_matches("W/") == self.etag);
        }
        if_modified_since
            .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
            .is_some_and(|since| self.modified <= since)
    }

    /// True when `If-Range` (absent: true) still names this file: our strong tag, or exactly
    /// our modification date.
    pub fn range_applies(&self, if_range: Option<&str>) -> bool {
        match if_range.map(str::trim) {
            None => true,
            Some(v) if v.starts_with('"') => v == self.etag,
            Some(v) if v.starts_with("W/") => false,
            Some(v) => httpdate::parse_http_date(v).is_ok_and(|d| d == self.modified),
        }
    }
}

/// Bytes `start..start + len` of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Length (at least 1).
    pub len: u64,
}

impl ByteRange {
    /// `Content-Range` value for a file of `size` bytes.
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{size}", self.start, self.start + self.len - 1)
    }
}

/// What a `Range` header asks of a file.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranges {
    /// The whole file: no `Range`, one we do not understand, or one we choose to ignore.
    Full,
    /// These ranges, in the order asked.
    Partial(Vec<ByteRange>),
    /// None of the ranges is inside the file: 416.
    Unsatisfiable,
}

/// Reads a `Range` header against a file of `size` bytes (RFC 9110 14.1.2).
pub fn parse(header: &str, size: u64) -> Ranges {
    let Some((unit, specs)) = header.split_once('=') else {
        return Ranges::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranges::Full;
    }
    let mut ranges = Vec::new();
    let mut asked = 0;
    for spec in specs.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        asked += 1;
        if asked > MAX_RANGES {
            return Ranges::Full;
        }
        let Some((first, last)) = spec.split_once('-') else {
            return Ranges::Full;
        };
        let number = |s: &str| -> Option<u64> {
            let s = s.trim();
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let range = match (first.trim().is_empty(), number(first), number(last)) {
            // `-n`: the last n bytes.
            (true, _, Some(n)) => (n > 0 && size > 0).then(|| ByteRange {
                start: size - n.min(size),
                len: n.min(size),
            }),
            // `a-` and `a-b`.
            (false, Some(a), b) if last.trim().is_empty() || b.is_some() => {
                let b = b.unwrap_or(u64::MAX);
                if b < a {
                    return Ranges::Full;
                }
                (a < size).then(|| ByteRange {
                    start: a,
                    len: b.min(size - 1) - a + 1,
                })
            }
            _ => return Ranges::Full,
        };
        ranges.extend(range);
    }
    if asked == 0 {
        return Ranges::Full;
    }
    if ranges.is_empty() {
        return Ranges::Unsatisfiable;
    }
    // Overlapping ranges would send some bytes many times over: send the file once instead.
    let mut sorted = ranges.clone();
    sorted.sort_unstable_by_key(|r| r.start);
    if sorted
        .windows(2)
        .any(|w| w[0].start + w[0].len > w[1].start)
    {
        return Ranges::Full;
    }
    Ranges::Partial(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, len: u64) -> ByteRange {
        ByteRange { start, len }
    }

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        use Ranges::*;
        assert_eq!(parse("bytes=0-9", 100), Partial(vec![r(0, 10)]));
        assert_eq!(parse("bytes=90-", 100), Partial(vec![r(90, 10)]));
        assert_eq!(parse("bytes=95-200", 100), Partial(vec![r(95, 5)]));
        assert_eq!(parse("bytes=-10", 100), Partial(vec![r(90, 10)]));
        assert_eq!(parse("bytes=-500", 100), Partial(vec![r(0, 100)]));
        assert_eq!(
            parse("bytes=0-0, -1", 100),
            Partial(vec![r(0, 1), r(99, 1)])
        );
        assert_eq!(parse("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse("bytes=200-300, 0-4", 100), Partial(vec![r(0, 5)]));
        for ignored in [
            "bytes=5-1",
            "items=0-1",
            "bytes=a-b",
            "bytes=",
            "bytes=1",
            "bytes=0-5,3-9",
        ] {
            assert_eq!(parse(ignored, 100), Full, "{ignored}");
        }
        let many = format!("bytes={}", vec!["0-0"; 17].join(","));
        assert_eq!(parse(&many, 100), Full);
    }

    #[test]
    fn validators_decide_304_and_if_range() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        let v = Validators::new(10, t);
        let tag = v.etag.clone();
        assert!(v.not_modified(Some(&tag), None));
        assert!(v.not_modified(Some(&format!("\"x\", W/{tag}")), None));
        assert!(v.not_modified(Some("*"), None));
        assert!(!v.not_modified(Some("\"x\""), Some("Sun, 06 Nov 2100 08:49:37 GMT")));
        let date = httpdate::fmt_http_date(t);
        assert!(v.not_modified(None, Some(&date)));
        assert!(!v.not_modified(None, Some("Sun, 06 Nov 1994 08:49:37 GMT")));
        assert!(v.range_applies(None));
        assert!(v.range_applies(Some(&tag)));
        assert!(v.range_applies(Some(&date)));
        assert!(!v.range_applies(Some(&format!("W/{tag}"))));
        assert!(!v.range_applies(Some("\"other\"")));
        assert!(!v.range_applies(Some("Sun, 06 Nov 1994 08:49:37 GMT")));
    }
}
