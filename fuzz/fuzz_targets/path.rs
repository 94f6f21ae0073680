//! Path normalisation: whatever the client sends, a normalised path starts with `/`, holds no
//! `.` or `..` segment, no `//` and no escape of an unreserved character, and normalising it
//! again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use louailink::request::path::normalize;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let path = format!("/{raw}");
    let Ok(normal) = normalize(&path) else {
        return;
    };
    assert!(normal.starts_with('/'), "{path:?} -> {normal:?}");
    assert!(!normal.contains("//"), "{path:?} -> {normal:?}");
    for segment in normal.split('/') {
        assert!(segment != "." && segment != "..", "{path:?} -> {normal:?}");
    }
    for (i, _) in normal.match_indices('%') {
        let escape = &normal[i + 1..(i + 3).min(normal.len())];
        let decoded = u8::from_str_radix(escape, 16).ok();
        assert!(
            decoded.is_some_and(|b| !(b.is_ascii_alphanumeric() || b"-._~".contains(&b))),
            "{path:?} -> {normal:?} keeps an escape of an unreserved character"
        );
    }
    assert_eq!(normalize(&normal).as_deref(), Ok(&*normal), "not idempotent");
});
