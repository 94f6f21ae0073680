//! `autoindex`: an HTML page listing a directory. Names are HTML-escaped for display and
//! percent-encoded in links, so no name can inject markup or turn into another URL (`a:b`
//! would read as a scheme).

use crate::request::reply::html_escape;
use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::fmt::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes kept as they are in a link: the unreserved characters of RFC 3986.
pub const LINK: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One entry of the listing.
struct Entry {
    name: Vec<u8>,
    dir: bool,
    size: u64,
    modified: Option<std::time::SystemTime>,
}

/// The listing of `dir`, titled with the request path `shown`; `parent` adds a `../` link.
pub fn html(dir: &Path, shown: &str, parent: bool) -> std::io::Result<String> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        // Follows symlinks, to show what a link leads to; one that leads nowhere is a file.
        let meta = std::fs::metadata(entry.path()).ok();
        entries.push(Entry {
            name: entry.file_name().as_bytes().to_vec(),
            dir: meta.as_ref().is_some_and(|m| m.is_dir()),
            size: meta.as_ref().map_or(0, |m| m.len()),
            modified: meta.and_then(|m| m.modified().ok()),
        });
    }
    entries.sort_unstable_by(|a, b| (!a.dir, &a.name).cmp(&(!b.dir, &b.name)));
    let title = html_escape(&percent_decode_str(shown).decode_utf8_lossy());
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1><hr><pre>\n"
    );
    if parent {
        page.push_str("<a href=\"../\">../</a>\n");
    }
    for e in &entries {
        let slash = if e.dir { "/" } else { "" };
        let link = percent_encode(&e.name, LINK);
        let name = html_escape(&String::from_utf8_lossy(&e.name));
        let modified = e.modified.map(httpdate::fmt_http_date).unwrap_or_default();
        let size = if e.dir {
            "-".to_string()
        } else {
            e.size.to_string()
        };
        // Writing to a String cannot fail.
        let _ = writeln!(
            page,
            "<a href=\"{link}{slash}\">{name}{slash}</a>  {modified}  {size}"
        );
    }
    page.push_str("</pre><hr></body></html>\n");
    Ok(page)
}
