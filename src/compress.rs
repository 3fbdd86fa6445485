//! Gzip: the only module that names flate2 (zlib-rs backend, pure Rust).

use std::io::{Read, Write};

/// The compression level used for stored gzip variants and bundles.
const LEVEL: u32 = 6;

/// A gzip encoder writing into `w`; call `finish()` to get `w` back.
pub fn encoder<W: Write>(w: W) -> flate2::write::GzEncoder<W> {
    flate2::write::GzEncoder::new(w, flate2::Compression::new(LEVEL))
}

/// A reader that decompresses gzip from `r`.
pub fn decoder<R: Read>(r: R) -> flate2::read::GzDecoder<R> {
    flate2::read::GzDecoder::new(r)
}
