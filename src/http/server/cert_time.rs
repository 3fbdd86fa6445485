//! The validity period of an X.509 certificate, read from its DER with a few lines of
//! ASN.1 walking (the only field ACME renewal needs; no parser crate for it).

/// `(notBefore, notAfter)` of a DER certificate in seconds since the Unix epoch; `None` when
/// the bytes are not a certificate this walk understands.
pub fn validity(der: &[u8]) -> Option<(u64, u64)> {
    let (cert, _) = tlv(der, 0x30)?;
    let (tbs, _) = tlv(cert, 0x30)?;
    let mut rest = tbs;
    // [0] EXPLICIT version, when present.
    if rest.first() == Some(&0xa0) {
        rest = skip(rest)?;
    }
    // serialNumber, signature, issuer.
    for _ in 0..3 {
        rest = skip(rest)?;
    }
    let (validity, _) = tlv(rest, 0x30)?;
    let (from, after) = time(validity)?;
    let (until, _) = time(after)?;
    Some((from, until))
}

/// The contents of the element at the start of `b` if its tag is `tag`, and what follows it.
fn tlv(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *b.first()? != tag {
        return None;
    }
    let first = *b.get(1)? as usize;
    let (len, head) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first - 0x80;
        if n == 0 || n > 4 {
            return None;
        }
        let len = b
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |a, &x| (a << 8) | x as usize);
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    Some((b.get(head..end)?, &b[end..]))
}

/// What follows the element at the start of `b`.
fn skip(b: &[u8]) -> Option<&[u8]> {
    tlv(b, *b.first()?).map(|(_, rest)| rest)
}

/// A UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) at the start of `b`.
fn time(b: &[u8]) -> Option<(u64, &[u8])> {
    let tag = *b.first()?;
    let (text, rest) = tlv(b, tag)?;
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest_digits) = match (tag, text.len()) {
        (0x17, 12) => {
            let yy: i64 = text[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (0x18, 14) => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    if !rest_digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n = |i: usize| rest_digits[i..i + 2].parse::<u32>().ok();
    let secs = crate::model::time::unix_from_civil(year, n(0)?, n(2)?, n(4)?, n(6)?, n(8)?)?;
    Some((secs, rest))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_validity_of_a_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.example.org".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2026, 12, 2);
        // After 2049: a GeneralizedTime.
        params.not_after = rcgen::date_time_ymd(2051, 3, 1);
        let cert = params.self_signed(&key).unwrap();
        let (from, until) = super::validity(cert.der()).unwrap();
        assert_eq!(crate::model::time::iso8601(from), "2026-12-02T00:00:00Z");
        assert_eq!(crate::model::time::iso8601(until), "2051-03-01T00:00:00Z");
        assert!(super::validity(b"\x30\x03\x30\x01").is_none());
        assert!(super::validity(&cert.der()[..40]).is_none());
    }
}
