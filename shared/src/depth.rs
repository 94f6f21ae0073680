//! A linear pre-scan bounding how deeply a TOML, YAML or JSON text nests, run before any
//! parser sees it: parsers and the line scans cost time (and stack) that grows faster than
//! the depth, so 100,000 levels in 200 KB could stall `-t` or the API for many seconds.
//!
//! The scan over-approximates (a bracket it cannot tell from a value counts as a level), so
//! it may refuse a config nested almost [`MAX_DEPTH`] deep, never one far below it.

use crate::error::ConfigError;

/// Deepest nesting accepted (containers within containers, dotted TOML keys included).
pub const MAX_DEPTH: usize = 128;

/// Fails when a JSON text nests deeper than [`MAX_DEPTH`], naming the line.
pub fn check_json(text: &str) -> Result<(), ConfigError> {
    refuse(json(text))
}

/// Fails when a YAML text nests deeper than [`MAX_DEPTH`], naming the line.
pub fn check_yaml(text: &str) -> Result<(), ConfigError> {
    refuse(yaml(text))
}

/// Fails when a TOML text nests deeper than [`MAX_DEPTH`], naming the line.
pub fn check_toml(text: &str) -> Result<(), ConfigError> {
    refuse(toml(text))
}

fn refuse(found: Option<usize>) -> Result<(), ConfigError> {
    match found {
        None => Ok(()),
        Some(line) => Err(ConfigError::new(
            "",
            None,
            format!("the document nests deeper than {MAX_DEPTH} levels"),
        )
        .at(None, Some(line))),
    }
}

/// The line where JSON nesting first exceeds the bound.
fn json(text: &str) -> Option<usize> {
    let (mut depth, mut line, mut in_string, mut escaped) = (0usize, 1, false, false);
    for b in text.bytes() {
        if b == b'\n' {
            line += 1;
        }
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(line);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// The line where YAML nesting (block indentation levels plus flow brackets) first exceeds
/// the bound. A quote or bracket counts only where a YAML value can start with it.
fn yaml(text: &str) -> Option<usize> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    // The quote a multi-line quoted scalar is still open with.
    let mut quote: Option<u8> = None;
    // A block scalar (`|`, `>`) swallows the lines indented deeper than this.
    let mut block_scalar: Option<usize> = None;
    for (n, raw) in text.lines().enumerate() {
        let bytes = raw.as_bytes();
        let indent = bytes.iter().take_while(|b| **b == b' ').count();
        if let Some(level) = block_scalar {
            if raw.trim().is_empty() || indent > level {
                continue;
            }
            block_scalar = None;
        }
        let mut i = indent;
        if quote.is_none() && flow == 0 {
            if i >= bytes.len() || bytes[i] == b'#' {
                continue;
            }
            while indents.last().is_some_and(|&top| top >= indent) {
                indents.pop();
            }
            indents.push(indent);
            // `- - - x`: each dash opens one more sequence on the same line.
            while bytes.get(i) == Some(&b'-') && matches!(bytes.get(i + 1), Some(b' ') | None) {
                i += 2;
                indents.push(indent + i);
            }
        }
        // Where a value may start: the line's start (after its dashes), after `: `, or in a flow
        // collection after `,` or a bracket.
        let mut value_start = true;
        while i < bytes.len() {
            let b = bytes[i];
            i += 1;
            if let Some(q) = quote {
                if q == b'"' && b == b'\\' {
                    i += 1;
                } else if b == q {
                    quote = None;
                    value_start = false;
                }
                continue;
            }
            match b {
                b'#' if i == 1 || bytes[i - 2] == b' ' || bytes[i - 2] == b'\t' => break,
                b'"' | b'\'' if value_start => quote = Some(b),
                b'[' | b'{' if value_start || flow > 0 => {
                    flow += 1;
                    value_start = true;
                }
                b']' | b'}' if flow > 0 => flow -= 1,
                b',' if flow > 0 => value_start = true,
                b':' if matches!(bytes.get(i), Some(b' ' | b'\t') | None) => {
                    value_start = true;
                }
                b'|' | b'>' if value_start && flow == 0 => {
                    block_scalar = Some(indent);
                    break;
                }
                b' ' | b'\t' => {}
                _ => value_start = false,
            }
            if indents.len() + flow > MAX_DEPTH {
                return Some(n + 1);
            }
        }
        if indents.len() + flow > MAX_DEPTH {
            return Some(n + 1);
        }
    }
    None
}

/// The line where TOML nesting (arrays and inline tables, plus the dots of the keys within
/// them and of the line's key or table header) first exceeds the bound.
fn toml(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut line, mut i) = (1, 0);
    // Open brackets, each with the key dots counted when it opened (restored after it).
    let mut open: Vec<(u8, usize)> = Vec::new();
    // Dots of the keys leading to here; counted while reading a key.
    let (mut dots, mut in_key) = (0usize, true);
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        match b {
            b'\n' => {
                line += 1;
                if open.is_empty() {
                    (dots, in_key) = (0, true);
                }
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' | b'\'' => {
                let triple = bytes.get(i..i + 2) == Some(&[b, b][..]);
                if triple {
                    i += 2;
                }
                while i < bytes.len() {
                    let c = bytes[i];
                    i += 1;
                    if c == b'\n' {
                        line += 1;
                    } else if c == b'\\' && b == b'"' {
                        i += 1;
                    } else if c == b && (!triple || bytes.get(i..i + 2) == Some(&[b, b][..])) {
                        if triple {
                            i += 2;
                        }
                        break;
                    }
                }
            }
            b'.' if in_key => dots += 1,
            b'=' => in_key = false,
            b'[' | b'{' => {
                open.push((b, dots));
                if b == b'{' {
                    in_key = true;
                }
            }
            b']' | b'}' => {
                if let Some((_, before)) = open.pop() {
                    dots = before;
                }
                in_key = open.is_empty() && b == b']';
            }
            b',' => {
                if let Some(&(b'{', before)) = open.last() {
                    (dots, in_key) = (before, true);
                }
            }
            _ => {}
        }
        if open.len() + dots > MAX_DEPTH {
            return Some(line);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug)]
    enum Format {
        Json,
        Yaml,
        Toml,
    }

    fn check_depth(text: &str, format: Format) -> Result<(), ConfigError> {
        match format {
            Format::Json => check_json(text),
            Format::Yaml => check_yaml(text),
            Format::Toml => check_toml(text),
        }
    }

    fn deep(format: Format, n: usize) -> String {
        match format {
            Format::Json => format!("{{\"basic\": {}{}}}", "[".repeat(n), "]".repeat(n)),
            Format::Yaml => format!("basic: {}{}\n", "[".repeat(n), "]".repeat(n)),
            Format::Toml => format!("basic = {}{}\n", "[".repeat(n), "]".repeat(n)),
        }
    }

    #[test]
    fn deep_documents_are_refused_with_their_line() {
        for format in [Format::Json, Format::Yaml, Format::Toml] {
            assert!(
                check_depth(&deep(format, 100), format).is_ok(),
                "{format:?}"
            );
            let e = check_depth(&deep(format, 100_000), format).unwrap_err();
            assert_eq!(e.line, Some(1), "{format:?}");
            assert!(e.message.contains("deeper than 128"), "{e}");
        }
        let dashes = format!("basic:\n  x: 1\nlist:\n  {}1\n", "- ".repeat(200));
        assert_eq!(
            check_depth(&dashes, Format::Yaml).unwrap_err().line,
            Some(4)
        );
        let mut indented = String::new();
        for level in 0..200 {
            indented.push_str(&format!("{}k{level}:\n", " ".repeat(level)));
        }
        assert!(check_depth(&indented, Format::Yaml).is_err());
        let dotted = format!("[{}]\nx = 1\n", vec!["a"; 300].join("."));
        assert!(check_depth(&dotted, Format::Toml).is_err());
        let inline = format!("x = {}1{}\n", "{a = ".repeat(200), "}".repeat(200));
        assert!(check_depth(&inline, Format::Toml).is_err());
    }

    #[test]
    fn brackets_in_values_and_strings_do_not_count() {
        let many = "[x]\n".to_string() + &"a = \"[[[[[[[[[[\"\n".repeat(50);
        assert!(check_depth(&many, Format::Toml).is_ok());
        let yaml = "locations:\n".to_string()
            + &(0..300)
                .map(|i| format!("  l{i}:\n    path: /a[b{i}\n    note: it's [ok\n    re: \"[[[[\"\n    lit: |\n      [[[[[[[[[[\n"))
                .collect::<String>();
        assert!(check_depth(&yaml, Format::Yaml).is_ok());
        let json = format!("{{\"a\": \"{}\"}}", "[{".repeat(500));
        assert!(check_depth(&json, Format::Json).is_ok());
        let comments = "# [[[[[[\n".repeat(300) + "a: 1 # {{{{\n";
        assert!(check_depth(&comments, Format::Yaml).is_ok());
    }
}
