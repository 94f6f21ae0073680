//! From the request path to a file under the root, refusing every way out of it: encoded
//! separators and dots, backslashes, NUL, `..` left after decoding, and symlinks whose target
//! leaves the root (the resolved path must stay under the resolved root). Blocking: runs on
//! tokio's blocking pool.

use super::listing;
use percent_encoding::percent_decode;
use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why no file is served.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// 403: a traversal attempt, or something that is not ours to show.
    Forbidden(&'static str),
    /// 404.
    NotFound,
}

/// What a request names under the root.
pub enum Found {
    /// A regular file, open, with its metadata and the name its type is guessed from.
    File {
        /// The open file.
        file: File,
        /// Its metadata (size, modification time).
        meta: Metadata,
        /// Its file name.
        name: PathBuf,
    },
    /// A directory without index file, listed (`autoindex`): the HTML page.
    Listing(String),
    /// A directory asked for without its trailing `/`.
    AddSlash,
}

/// Escapes refused in the path (case-insensitive): `/`, `\` and NUL, which would change what
/// the path means once decoded.
const FORBIDDEN_ESCAPES: [&str; 3] = ["%2f", "%5c", "%00"];

/// Escapes refused after one decoding: a double-encoded dot or separator (`%252e`) is an
/// attack on a decoder that decodes twice.
const DOUBLE_ESCAPES: [&str; 4] = ["%2e", "%2f", "%5c", "%00"];

/// The path below the root that `rest` (the request path after the location's prefix) names,
/// percent-decoded once, and whether it asks for a directory (ends with `/` or is empty).
pub fn relative(rest: &str) -> Result<(PathBuf, bool), Refused> {
    if rest.contains(['\\', '\0']) {
        return Err(Refused::Forbidden("backslash or NUL in the path"));
    }
    let lower = rest.to_ascii_lowercase();
    if FORBIDDEN_ESCAPES.iter().any(|e| lower.contains(e)) {
        return Err(Refused::Forbidden("an encoded separator in the path"));
    }
    let decoded: Vec<u8> = percent_decode(rest.as_bytes()).collect();
    if decoded.iter().any(|b| *b == b'\\' || *b == 0) {
        return Err(Refused::Forbidden("backslash or NUL in the path"));
    }
    let lower = decoded.to_ascii_lowercase();
    if DOUBLE_ESCAPES
        .iter()
        .any(|e| lower.windows(3).any(|w| w == e.as_bytes()))
    {
        return Err(Refused::Forbidden(
            "a double-encoded dot or separator in the path",
        ));
    }
    let mut rel = PathBuf::new();
    for segment in decoded.split(|b| *b == b'/') {
        match segment {
            b"" => {}
            b"." | b".." => return Err(Refused::Forbidden("a dot segment in the path")),
            s => rel.push(OsStr::from_bytes(s)),
        }
    }
    Ok((rel, rest.is_empty() || rest.ends_with('/')))
}

/// What the server is told to do with directories.
pub struct DirRules<'a> {
    /// Index file name (empty: none).
    pub index: &'a str,
    /// List directories without index file.
    pub autoindex: bool,
    /// The request path, for the listing's title.
    pub shown_path: &'a str,
}

/// Resolves `rel` under `root` (canonical) and opens what it names.
pub fn resolve(
    root: &Path,
    rel: &Path,
    wants_dir: bool,
    dirs: &DirRules,
) -> Result<Found, Refused> {
    let (canon, meta) = inside(root, &root.join(rel))?;
    if meta.is_dir() {
        if !wants_dir {
            return Ok(Found::AddSlash);
        }
        if !dirs.index.is_empty() {
            match open(root, &canon.join(dirs.index)) {
                Err(Refused::NotFound) => {}
                found => return found,
            }
        }
        if !dirs.autoindex {
            return Err(Refused::Forbidden("directory listing is off"));
        }
        let page = listing::html(&canon, dirs.shown_path, canon != root)
            .map_err(|_| Refused::Forbidden("the directory cannot be read"))?;
        return Ok(Found::Listing(page));
    }
    if wants_dir {
        // `file.txt/` names no directory.
        return Err(Refused::NotFound);
    }
    open(root, &canon)
}

/// The canonical form of `path` and its metadata, when it is under `root`.
fn inside(root: &Path, path: &Path) -> Result<(PathBuf, Metadata), Refused> {
    let canon = fs::canonicalize(path).map_err(refusal)?;
    if !canon.starts_with(root) {
        return Err(Refused::Forbidden("the path leaves the served folder"));
    }
    let meta = fs::metadata(&canon).map_err(refusal)?;
    Ok((canon, meta))
}

/// Opens the regular file `path` names under `root`.
fn open(root: &Path, path: &Path) -> Result<Found, Refused> {
    let (canon, meta) = inside(root, path)?;
    if !meta.is_file() {
        return Err(Refused::Forbidden("not a regular file"));
    }
    // O_NOFOLLOW: the resolved path ends in no symlink, unless one was put there since;
    // O_NONBLOCK: a FIFO put there since does not hang the open.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&canon)
        .map_err(refusal)?;
    let meta = file.metadata().map_err(refusal)?;
    if !meta.is_file() {
        return Err(Refused::Forbidden("not a regular file"));
    }
    let name = canon.file_name().map(PathBuf::from).unwrap_or_default();
    Ok(Found::File { file, meta, name })
}

/// A missing path is 404; one we may not read, or a symlink loop, is 403.
fn refusal(e: std::io::Error) -> Refused {
    match e.kind() {
        ErrorKind::PermissionDenied => Refused::Forbidden("permission denied"),
        _ if e.raw_os_error() == Some(libc::ELOOP) => Refused::Forbidden("a symlink loop"),
        _ => Refused::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(rest: &str) -> bool {
        matches!(relative(rest), Err(Refused::Forbidden(_)))
    }

    #[test]
    fn every_traversal_form_is_forbidden() {
        for rest in [
            "..",
            "a/../../b",
            "%2e%2e/etc/passwd",
            "%2E%2e%2Fetc",
            "a%2fb",
            "a%5C..%5Cb",
            "..\\b",
            "a\0b",
            "a%00b",
            "%252e%252e/x",
            "./a",
            "a/%2e/b",
        ] {
            assert!(forbidden(rest), "{rest:?}");
        }
    }

    #[test]
    fn ordinary_paths_are_decoded_once() {
        let (rel, dir) = relative("a/my%20file.txt").expect("allowed");
        assert_eq!(rel, Path::new("a/my file.txt"));
        assert!(!dir);
        let (rel, dir) = relative("").expect("allowed");
        assert_eq!((rel, dir), (PathBuf::new(), true));
        let (rel, dir) = relative("sub//x/").expect("allowed");
        assert_eq!((rel, dir), (PathBuf::from("sub/x"), true));
        assert!(relative(".hidden/..x").is_ok());
        let (rel, _) = relative("100%25.txt").expect("allowed");
        assert_eq!(rel, Path::new("100%.txt"));
    }
}
