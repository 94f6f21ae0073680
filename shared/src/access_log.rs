//! Access-log specs: a preset (`tiny`, `short`, `common`, `combined`) or a template of text and
//! `{tags}`, parsed once into parts. The data plane formats the parts; a missing value prints `-`.
//!
//! Template syntax: `{name}` is a variable of [`crate::vars::NAMES`], `{>Header}` a request
//! header, `{<Header}` a response header, `{~name}` a cookie, `{$NAME}` an environment variable
//! (read when parsed; `-` when unset); `{{` and `}}` are literal braces.

use crate::fields::suggest;
use crate::vars::{header_name, Part, Parts, Var};

/// Presets and the templates they stand for. `combined` and `common` are nginx's formats
/// (the remote user is always `-`); `{when}` should print nginx's `[10/Oct/2000:13:55:36 -0700]`.
pub const PRESETS: &[(&str, &str)] = &[
    ("tiny", "{method} {uri} {status} {size_human} - {latency}ms"),
    (
        "short",
        "{client_ip} {method} {uri} {proto} {status} {size_human} - {latency}ms",
    ),
    (
        "common",
        "{client_ip} - - [{when}] \"{method} {uri} {proto}\" {status} {size}",
    ),
    (
        "combined",
        "{client_ip} - - [{when}] \"{method} {uri} {proto}\" {status} {size} \"{referer}\" \"{user_agent}\"",
    ),
];

/// Parses an access-log spec (a preset name or a template) into parts.
pub fn parse_access_log(spec: &str) -> Result<Vec<Part>, String> {
    let trimmed = spec.trim();
    if let Some((_, template)) = PRESETS.iter().find(|(name, _)| *name == trimmed) {
        return parse_template(template);
    }
    if trimmed.is_empty() {
        return Err(
            "empty access_log; use a preset (tiny, short, common, combined) or a template".into(),
        );
    }
    let parts = parse_template(spec)?;
    // A lone word with no tags is almost certainly a misspelt preset, not a template.
    let word = trimmed
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if word && parts.iter().all(|p| matches!(p, Part::Text(_))) {
        let presets: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
        return Err(match suggest(trimmed, presets.iter().copied()) {
            Some(s) => format!("unknown access_log preset {trimmed:?} (did you mean {s:?}?)"),
            None => format!(
                "unknown access_log preset {trimmed:?}; use one of {} or a template with {{tags}}",
                presets.join(", ")
            ),
        });
    }
    Ok(parts)
}

fn parse_template(template: &str) -> Result<Vec<Part>, String> {
    let mut parts = Parts::default();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        parts.text(&rest[..i]);
        let brace = &rest[i..i + 1];
        let after = &rest[i + 1..];
        if after.starts_with(brace) {
            // `{{` or `}}`: a literal brace.
            parts.text(brace);
            rest = &after[1..];
            continue;
        }
        if brace == "}" {
            return Err(format!(
                "unmatched '}}' in access_log {template:?}; write '}}}}' for a literal brace"
            ));
        }
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed '{{' in access_log {template:?}"))?;
        match parse_tag(&after[..end])? {
            Part::Text(t) => parts.text(&t),
            Part::Var(v) => parts.var(v),
        }
        rest = &after[end + 1..];
    }
    parts.text(rest);
    Ok(parts.done())
}

fn parse_tag(tag: &str) -> Result<Part, String> {
    let named = |what: &str| {
        format!(
            "invalid {what} name {:?} in access_log tag {{{tag}}}",
            &tag[1..]
        )
    };
    let header = |what: &str| header_name(&tag[1..]).ok_or_else(|| named(what));
    let plain = |what: &str| {
        let name = &tag[1..];
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if ok {
            Ok(name.to_string())
        } else {
            Err(named(what))
        }
    };
    Ok(match tag.chars().next() {
        Some('>') => Part::Var(Var::RequestHeader(header("request header")?)),
        Some('<') => Part::Var(Var::ResponseHeader(header("response header")?)),
        Some('~') => Part::Var(Var::Cookie(plain("cookie")?)),
        Some('$') => {
            Part::Text(std::env::var(plain("environment variable")?).unwrap_or_else(|_| "-".into()))
        }
        _ => Part::Var(Var::from_name(tag).ok_or_else(|| {
            let hint = suggest(tag, crate::vars::NAMES.iter().map(|(n, _)| *n))
                .map(|s| format!(" (did you mean {{{s}}}?)"))
                .unwrap_or_default();
            format!("unknown access_log tag {{{tag}}}{hint}")
        })?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_expand() {
        for (name, _) in PRESETS {
            let parts = parse_access_log(name).unwrap();
            assert!(parts.contains(&Part::Var(Var::Status)), "{name}");
        }
        let combined = parse_access_log(" combined ").unwrap();
        assert_eq!(combined[0], Part::Var(Var::ClientIp));
        assert_eq!(combined.last(), Some(&Part::Text("\"".into())));
        assert!(combined.contains(&Part::Var(Var::UserAgent)));
    }

    #[test]
    fn templates() {
        std::env::set_var("LOUAILINK_LOG_TEST", "envval");
        let parts = parse_access_log(
            "{host} \"{>X-Req}\" {<Content-Type} {~sid} {$LOUAILINK_LOG_TEST} {{x}}",
        )
        .unwrap();
        assert_eq!(
            parts,
            vec![
                Part::Var(Var::Host),
                Part::Text(" \"".into()),
                Part::Var(Var::RequestHeader("x-req".into())),
                Part::Text("\" ".into()),
                Part::Var(Var::ResponseHeader("content-type".into())),
                Part::Text(" ".into()),
                Part::Var(Var::Cookie("sid".into())),
                Part::Text(" envval {x}".into()),
            ]
        );
        assert_eq!(
            parse_access_log("plain text").unwrap(),
            vec![Part::Text("plain text".into())]
        );
    }

    #[test]
    fn every_variable_is_a_tag() {
        for (name, var) in crate::vars::NAMES {
            assert_eq!(
                parse_access_log(&format!("{{{name}}}")).unwrap(),
                vec![Part::Var(var.clone())]
            );
        }
    }

    #[test]
    fn errors() {
        let e = parse_access_log("{stauts}").unwrap_err();
        assert_eq!(
            e,
            "unknown access_log tag {stauts} (did you mean {status}?)"
        );
        assert!(parse_access_log("{method")
            .unwrap_err()
            .contains("unclosed"));
        assert!(parse_access_log("a } b").unwrap_err().contains("unmatched"));
        assert!(parse_access_log("{>}")
            .unwrap_err()
            .contains("request header"));
        assert!(parse_access_log("{}")
            .unwrap_err()
            .contains("unknown access_log tag {}"));
        assert!(parse_access_log("").is_err());
        let e = parse_access_log("combinde").unwrap_err();
        assert!(e.contains("did you mean \"combined\""), "{e}");
    }
}
