//! Reading a local file with bounds: only a regular file (a FIFO, a device such as
//! `/dev/zero` or a directory is refused before anything is read, and opening never blocks)
//! and at most a given size, so a config that names the wrong file cannot exhaust memory or
//! hang the reader.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Largest certificate or key file read (PEM chains are a few KiB).
pub const MAX_PEM_FILE: u64 = 1024 * 1024;
/// Largest config file read.
pub const MAX_CONFIG_FILE: u64 = 256 * 1024 * 1024;

/// Why a bounded read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Not a regular file.
    #[error("is not a regular file ({0})")]
    NotRegular(&'static str),
    /// Over the size bound.
    #[error("is larger than {0} bytes")]
    TooLarge(u64),
    /// The file system's error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn file_type(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// The content of the regular file at `path`, if it is at most `max` bytes.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(file_type(&meta)));
    }
    // Non-blocking open: the path may have been swapped for a FIFO since the check.
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(file_type(&meta)));
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge(max));
    }
    let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(ReadError::TooLarge(max));
    }
    Ok(out)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, max: u64) -> Result<String, ReadError> {
    String::from_utf8(read_regular(path, max)?).map_err(|_| {
        ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_directories_and_large_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_regular(Path::new("/dev/zero"), MAX_PEM_FILE).unwrap_err();
        assert!(e.to_string().contains("a device"), "{e}");
        assert!(read_regular(dir.path(), MAX_PEM_FILE)
            .unwrap_err()
            .to_string()
            .contains("a directory"));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_regular(&fifo, MAX_PEM_FILE).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 2000]).unwrap();
        assert!(matches!(
            read_regular(&big, 1000),
            Err(ReadError::TooLarge(1000))
        ));
        assert_eq!(read_regular(&big, 2000).unwrap().len(), 2000);
        assert!(read_regular(&dir.path().join("none"), 10).is_err());
    }
}
