//! A streaming `multipart/form-data` reader: part headers are buffered (bounded), part bodies
//! are handed out in pieces, so a 25 MB upload never sits in memory.

use super::error::{ApiError, ApiResult};
use std::io::Read;

/// Largest part header block accepted.
const MAX_PART_HEAD: usize = 8 * 1024;
const READ_SIZE: usize = 64 * 1024;

/// The headers of one part.
#[derive(Debug, Clone, PartialEq)]
pub struct PartHead {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
}

/// Reads parts from a multipart body with the given boundary.
pub struct Multipart<'a> {
    src: &'a mut dyn Read,
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    /// What each read lands in, allocated once (see [`Multipart::fill`]).
    scratch: Vec<u8>,
    eof: bool,
    done: bool,
    /// True while the current part's body has not been read to its delimiter.
    in_body: bool,
}

/// The boundary of a `multipart/form-data` content type, if it is one.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    if !parts
        .next()?
        .trim()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        return None;
    }
    for p in parts {
        if let Some((k, v)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("boundary")
        {
            let v = v.trim().trim_matches('"');
            if !v.is_empty() && v.len() <= 70 {
                return Some(v.to_string());
            }
        }
    }
    None
}

fn bad(msg: &str) -> ApiError {
    ApiError::invalid(format!("malformed multipart body: {msg}"))
}

impl<'a> Multipart<'a> {
    pub fn new(src: &'a mut dyn Read, boundary: &str) -> Multipart<'a> {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        // A virtual CRLF lets the first boundary match the same delimiter as the others.
        Multipart {
            src,
            delimiter,
            buf: b"\r\n".to_vec(),
            scratch: vec![0; READ_SIZE],
            eof: false,
            done: false,
            in_body: true,
        }
    }

    fn fill(&mut self) -> ApiResult<bool> {
        if self.eof {
            return Ok(false);
        }
        // SECURITY: each read lands in a buffer zeroed once: growing `buf` by 64 KiB of zeros
        // per read made a client trickling one byte per packet cost 64 KiB of memset a byte.
        let n = loop {
            match self.src.read(&mut self.scratch) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(ApiError::body("the upload", &e));
                }
            }
        };
        self.buf.extend_from_slice(&self.scratch[..n]);
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }

    /// Streams the rest of the current part's body to `sink`, up to its delimiter.
    pub fn read_body(&mut self, sink: &mut dyn FnMut(&[u8]) -> ApiResult<()>) -> ApiResult<()> {
        if !self.in_body {
            return Ok(());
        }
        loop {
            if let Some(i) = find(&self.buf, &self.delimiter) {
                sink(&self.buf[..i])?;
                self.buf.drain(..i + self.delimiter.len());
                self.in_body = false;
                return Ok(());
            }
            let keep = self.delimiter.len() - 1;
            if self.buf.len() > keep {
                let n = self.buf.len() - keep;
                sink(&self.buf[..n])?;
                self.buf.drain(..n);
            }
            if !self.fill()? {
                return Err(bad("the body ended inside a part"));
            }
        }
    }

    /// Skips to the next part and returns its headers; `None` after the closing delimiter.
    pub fn next_part(&mut self) -> ApiResult<Option<PartHead>> {
        if self.done {
            return Ok(None);
        }
        self.read_body(&mut |_| Ok(()))?;
        // After a delimiter: `--` ends the body, CRLF starts a part (transport padding allowed).
        while self.buf.len() < 2 {
            if !self.fill()? {
                return Err(bad("the body ended after a boundary"));
            }
        }
        if self.buf.starts_with(b"--") {
            self.done = true;
            return Ok(None);
        }
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.buf.len() > MAX_PART_HEAD {
                return Err(bad("part headers are too long"));
            }
            if !self.fill()? {
                return Err(bad("the body ended inside part headers"));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        self.in_body = true;
        let mut part = PartHead {
            name: String::new(),
            filename: None,
            content_type: None,
        };
        for line in head.split("\r\n").map(str::trim).filter(|l| !l.is_empty()) {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                for attr in v.split(';').skip(1) {
                    if let Some((ak, av)) = attr.split_once('=') {
                        let av = av.trim().trim_matches('"').to_string();
                        match ak.trim().to_ascii_lowercase().as_str() {
                            "name" => part.name = av,
                            "filename" => part.filename = Some(av),
                            _ => {}
                        }
                    }
                }
            } else if k.trim().eq_ignore_ascii_case("content-type") {
                part.content_type = Some(v.trim().to_string());
            }
        }
        if part.name.is_empty() {
            return Err(bad("a part has no name"));
        }
        Ok(Some(part))
    }

    /// Reads the current part's body as text of at most `max` bytes.
    pub fn read_text(&mut self, max: usize) -> ApiResult<String> {
        let mut out = Vec::new();
        self.read_body(&mut |b| {
            if out.len() + b.len() > max {
                return Err(ApiError::invalid(format!(
                    "a text part is longer than {max} bytes"
                )));
            }
            out.extend_from_slice(b);
            Ok(())
        })?;
        String::from_utf8(out).map_err(|_| bad("a text part is not UTF-8"))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(&str, Option<&str>, &[u8])], boundary: &str) -> Vec<u8> {
        let mut b = b"preamble\r\n".to_vec();
        for (name, filename, data) in parts {
            b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match filename {
                Some(f) => b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: audio/mpeg\r\n\r\n").as_bytes(),
                ),
                None => b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            b.extend_from_slice(data);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        b
    }

    #[test]
    fn parts_in_any_order_with_binary_content() {
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut with_crlf = content.clone();
        with_crlf.extend_from_slice(b"\r\n--almost");
        for order in [[0, 1, 2], [2, 1, 0]] {
            let all: [(&str, Option<&str>, &[u8]); 3] = [
                ("Path", None, b"/a.mp3"),
                ("Visibility", None, b"public"),
                ("Content", Some("/a.mp3"), &with_crlf),
            ];
            let parts: Vec<_> = order.iter().map(|&i| all[i]).collect();
            let raw = body(&parts, "XyZ");
            let mut src = &raw[..];
            let mut m = Multipart::new(&mut src, "XyZ");
            let mut seen = Vec::new();
            while let Some(p) = m.next_part().unwrap() {
                if p.name == "Content" {
                    assert_eq!(p.filename.as_deref(), Some("/a.mp3"));
                    assert_eq!(p.content_type.as_deref(), Some("audio/mpeg"));
                    let mut got = Vec::new();
                    m.read_body(&mut |b| {
                        got.extend_from_slice(b);
                        Ok(())
                    })
                    .unwrap();
                    assert!(got == with_crlf);
                } else {
                    seen.push((p.name.clone(), m.read_text(100).unwrap()));
                }
            }
            seen.sort();
            assert_eq!(
                seen,
                vec![
                    ("Path".into(), "/a.mp3".into()),
                    ("Visibility".into(), "public".into())
                ]
            );
        }
    }

    #[test]
    fn truncated_body_is_an_error() {
        let raw = b"--B\r\nContent-Disposition: form-data; name=\"Content\"\r\n\r\nabc".to_vec();
        let mut src = &raw[..];
        let mut m = Multipart::new(&mut src, "B");
        assert!(m.next_part().unwrap().is_some());
        assert!(m.read_body(&mut |_| Ok(())).is_err());
        assert_eq!(
            boundary("multipart/form-data; boundary=\"abc\""),
            Some("abc".into())
        );
        assert_eq!(boundary("text/plain"), None);
    }

    /// Regression (property test `multipart_parts_read_back_exactly`): every read grew the
    /// buffer by 64 KiB of zeros, so a body arriving a byte at a time cost 64 KiB of memset per
    /// byte; the buffer now grows with the data only.
    #[test]
    fn byte_at_a_time_reads_do_not_grow_the_buffer_by_64k_each() {
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let Some((first, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = *first;
                self.0 = rest;
                Ok(1)
            }
        }
        let body =
            b"--b\r\nContent-Disposition: form-data; name=\"Path\"\r\n\r\n/a.txt\r\n--b--\r\n";
        let mut src = OneByte(body);
        let mut m = Multipart::new(&mut src, "b");
        assert_eq!(m.next_part().unwrap().unwrap().name, "Path");
        assert_eq!(m.read_text(100).unwrap(), "/a.txt");
        assert!(
            m.buf.capacity() < 1024,
            "buffer capacity {}",
            m.buf.capacity()
        );
    }
}
