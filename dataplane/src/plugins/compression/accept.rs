//! Choosing a codec from `Accept-Encoding` (RFC 9110 12.5.3): the highest q-value wins, `q=0`
//! refuses, `*` stands for every coding not named; at equal q the server prefers br, then
//! zstd, then gzip. One pass over the bytes, no allocation, whatever the header holds.

/// A content coding this plugin can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Brotli (`br`).
    Br,
    /// Zstandard (`zstd`).
    Zstd,
    /// gzip (`gzip`, also accepted as `x-gzip`).
    Gzip,
}

impl Codec {
    /// Every codec, in the server's order of preference at equal q.
    pub const PREFERENCE: [Codec; 3] = [Codec::Br, Codec::Zstd, Codec::Gzip];

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Codec::Br => "br",
            Codec::Zstd => "zstd",
            Codec::Gzip => "gzip",
        }
    }

    /// The position in [`Codec::PREFERENCE`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A q-value in thousandths (`q=0.5` is 500); `None` when malformed.
fn qvalue(text: &[u8]) -> Option<u16> {
    let (int, frac) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &b""[..]),
    };
    if int.len() != 1 || frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut q = match int[0] {
        b'0' => 0u16,
        b'1' => 1000,
        _ => return None,
    };
    for (i, d) in frac.iter().enumerate() {
        q += u16::from(d - b'0') * [100, 10, 1][i];
    }
    (q <= 1000).then_some(q)
}

/// The q of one list member's parameters (`;q=0.5`); 1000 when none is given.
fn member_q(params: &[u8]) -> Option<u16> {
    let mut q = Some(1000);
    for param in params.split(|&b| b == b';') {
        let param = param.trim_ascii();
        if param.len() >= 2 && param[..2].eq_ignore_ascii_case(b"q=") {
            q = qvalue(param[2..].trim_ascii());
        }
    }
    q
}

/// The codec to use for these `Accept-Encoding` values, among the `enabled` ones (indexed
/// like [`Codec::PREFERENCE`]); `None` means identity (no header, nothing acceptable).
pub fn choose<'a>(values: impl Iterator<Item = &'a [u8]>, enabled: [bool; 3]) -> Option<Codec> {
    let mut named: [Option<u16>; 3] = [None; 3];
    let mut star: Option<u16> = None;
    for value in values {
        for member in value.split(|&b| b == b',') {
            let (coding, params) = match member.iter().position(|&b| b == b';') {
                Some(i) => (&member[..i], &member[i..]),
                None => (member, &b""[..]),
            };
            let slot = match coding.trim_ascii() {
                c if c.eq_ignore_ascii_case(b"br") => &mut named[Codec::Br.index()],
                c if c.eq_ignore_ascii_case(b"zstd") => &mut named[Codec::Zstd.index()],
                c if c.eq_ignore_ascii_case(b"gzip") || c.eq_ignore_ascii_case(b"x-gzip") => {
                    &mut named[Codec::Gzip.index()]
                }
                b"*" => &mut star,
                _ => continue,
            };
            // The first mention counts; a malformed q refuses rather than guesses.
            if slot.is_none() {
                *slot = Some(member_q(params).unwrap_or(0));
            }
        }
    }
    let mut best: Option<(Codec, u16)> = None;
    for codec in Codec::PREFERENCE {
        let q = named[codec.index()].or(star).unwrap_or(0);
        if enabled[codec.index()] && q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((codec, q));
        }
    }
    best.map(|(codec, _)| codec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(header: &str) -> Option<&'static str> {
        choose(std::iter::once(header.as_bytes()), [true; 3]).map(Codec::token)
    }

    #[test]
    fn q_values_and_server_preference() {
        assert_eq!(pick("gzip"), Some("gzip"));
        assert_eq!(pick("gzip, deflate, br, zstd"), Some("br"));
        assert_eq!(pick("gzip;q=0, br"), Some("br"));
        assert_eq!(pick("br;q=0.5, gzip;q=0.8"), Some("gzip"));
        assert_eq!(pick("br;q=0.5, gzip;q=0.8, zstd;Q=0.9"), Some("zstd"));
        assert_eq!(pick("*"), Some("br"));
        assert_eq!(pick("*;q=0"), None);
        assert_eq!(pick("br;q=0, *"), Some("zstd"));
        assert_eq!(pick("identity"), None);
        assert_eq!(pick(""), None);
        assert_eq!(pick("GZIP ; q=1.000"), Some("gzip"));
        assert_eq!(pick("x-gzip"), Some("gzip"));
        assert_eq!(pick("gzip;q=1.5, br;q=abc, zstd;q=0.001"), Some("zstd"));
        assert_eq!(pick("gzip;q=0.0001"), None);
    }

    #[test]
    fn disabled_codecs_are_never_chosen() {
        let only_gzip = [false, false, true];
        assert_eq!(
            choose(std::iter::once(&b"br, zstd, gzip;q=0.1"[..]), only_gzip),
            Some(Codec::Gzip)
        );
        assert_eq!(choose(std::iter::once(&b"br"[..]), only_gzip), None);
    }

    #[test]
    fn junk_is_identity_and_costs_one_pass() {
        let junk = ",".repeat(8192) + &";;;q=".repeat(1000) + "\u{7f}=;,";
        assert_eq!(pick(&junk), None);
        assert_eq!(pick(&(junk + ", gzip")), Some("gzip"));
    }
}
