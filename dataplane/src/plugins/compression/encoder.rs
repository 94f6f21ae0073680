//! The streaming encoders (flate2, brotli, zstd): every chunk is compressed and flushed, so
//! what the client has received always decodes to everything sent so far.

use super::accept::Codec;
use bytes::Bytes;
use std::io::{self, Write};

/// brotli's window: 2^19 bytes, as pingora uses.
const BR_LGWIN: u32 = 19;
/// brotli's internal output buffer.
const BR_BUFFER: usize = 4096;

/// One response's encoder; the output goes to a `Vec` that is taken after each chunk.
pub enum Encoder {
    /// gzip.
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    /// br (boxed: its state is large).
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    /// An encoder at `level`; `size` is the body's length when known (zstd then sizes its
    /// window and tables to it instead of allocating megabytes for a small body).
    pub fn new(codec: Codec, level: u32, size: Option<u64>) -> io::Result<Self> {
        Ok(match codec {
            Codec::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level),
            )),
            Codec::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BR_BUFFER,
                level,
                BR_LGWIN,
            ))),
            Codec::Zstd => {
                let level = i32::try_from(level).unwrap_or(3);
                let mut e = zstd::stream::write::Encoder::new(Vec::new(), level)?;
                if size.is_some() {
                    e.set_pledged_src_size(size)?;
                }
                Encoder::Zstd(e)
            }
        })
    }

    fn output(&mut self) -> &mut Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Br(e) => e.get_mut(),
            Encoder::Zstd(e) => e.get_mut(),
        }
    }

    /// Compresses `input` and flushes (gzip: sync flush; br and zstd: flush a block).
    pub fn chunk(&mut self, input: &[u8]) -> io::Result<Bytes> {
        match self {
            Encoder::Gzip(e) => e.write_all(input).and_then(|()| e.flush()),
            Encoder::Br(e) => e.write_all(input).and_then(|()| e.flush()),
            Encoder::Zstd(e) => e.write_all(input).and_then(|()| e.flush()),
        }?;
        Ok(Bytes::from(std::mem::take(self.output())))
    }

    /// Compresses the last `input` and ends the stream (trailer, checksum).
    pub fn finish(mut self, input: &[u8]) -> io::Result<Bytes> {
        let out = match &mut self {
            Encoder::Gzip(e) => e.write_all(input).and_then(|()| e.try_finish()),
            Encoder::Br(e) => e.write_all(input),
            Encoder::Zstd(e) => e.write_all(input).and_then(|()| e.do_finish()),
        };
        out?;
        Ok(Bytes::from(match self {
            // brotli writes its last block when it gives the output back.
            Encoder::Br(e) => e.into_inner(),
            mut other => std::mem::take(other.output()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn decode(codec: Codec, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match codec {
            Codec::Gzip => flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .map(|_| ()),
            Codec::Br => brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .map(|_| ()),
            Codec::Zstd => zstd::stream::read::Decoder::new(data)
                .and_then(|mut d| d.read_to_end(&mut out))
                .map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{codec:?} does not decode: {e}"));
        out
    }

    /// Decodes a stream that has not ended yet: what arrived so far.
    fn decode_partial(codec: Codec, data: &[u8]) -> Vec<u8> {
        let mut reader: Box<dyn Read> = match codec {
            Codec::Gzip => Box::new(flate2::read::GzDecoder::new(data)),
            Codec::Br => Box::new(brotli::Decompressor::new(data, 4096)),
            Codec::Zstd => Box::new(zstd::stream::read::Decoder::new(data).unwrap()),
        };
        let (mut out, mut buf) = (Vec::new(), [0u8; 256]);
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[test]
    fn every_chunk_decodes_at_once_and_the_whole_body_round_trips() {
        let first = b"data: {\"token\": \"hello\"}\n\n".repeat(3);
        let second = b"data: {\"token\": \"world\"}\n\n".repeat(3);
        for codec in Codec::PREFERENCE {
            for size in [None, Some((first.len() + second.len()) as u64)] {
                let mut e = Encoder::new(codec, 5, size).unwrap();
                let a = e.chunk(&first).unwrap();
                assert_eq!(decode_partial(codec, &a), first, "{codec:?}");
                let b = e.finish(&second).unwrap();
                let whole = [&a[..], &b[..]].concat();
                assert_eq!(decode(codec, &whole), [&first[..], &second[..]].concat());
            }
        }
    }
}
