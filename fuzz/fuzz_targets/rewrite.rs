//! Rewrite rules and variable templates: any rule either parses or is refused, a parsed rule
//! applied to any path never panics, and any template either compiles or is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use louailink_shared::{patterns, vars};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (rule, path) = text.split_once('\n').unwrap_or((text, "/"));
    let _ = vars::parse_template(rule);
    let Ok(rewrite) = patterns::parse_rewrite(rule) else {
        return;
    };
    let Ok(regex) = patterns::compile_regex(&rewrite.regex) else {
        return;
    };
    let _ = regex.replacen(path, 1, rewrite.replacement.as_str());
});
