//! The config parser and validation: any text, in each format, is either a config or a list
//! of errors; nothing panics, and deep nesting is refused before parsing can grow costly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use louailink_shared::formats::Format;
use louailink_shared::{loader, validate};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = match selector % 3 {
        0 => Format::Toml,
        1 => Format::Yaml,
        _ => Format::Json,
    };
    if let Ok(loaded) = loader::parse_text(text, format, None) {
        let _ = validate::validate_without_files(&loaded.config, &loaded.sources);
    }
});
