//! Owner-only reads of stored bytes: any version's content (private ones included), and a
//! build's private assets as a `.tar.gz` bundle (what Twilio's Functions receive at build
//! time). Both require the owning account's credentials; nothing here is reachable through
//! an asset URL.

use super::error::{ApiError, ApiResult};
use super::{Ctx, Route};
use crate::http::server::{Body, Reply};
use crate::model::Digest;
use crate::store::{AssetVersion, Lookup};
use std::io::{Read, Seek, SeekFrom, Write};

pub static ROUTES: &[Route] = &[
    Route {
        method: "GET",
        pattern: "/v1/Services/{}/Assets/{}/Versions/{}/Content",
        handler: version_content,
    },
    Route {
        method: "GET",
        pattern: "/v1/Services/{}/Builds/{}/PrivateAssets",
        handler: private_bundle,
    },
];

fn version_content(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let lookup = ctx.store.read()?;
    let not_found = || {
        ApiError::not_found(&format!(
            "/Services/{}/Assets/{}/Versions/{}/Content",
            args[0], args[1], args[2]
        ))
    };
    let svc = lookup
        .find_service(ctx.account_sid(), &args[0])?
        .ok_or_else(not_found)?;
    let v = lookup
        .version(&args[2])?
        .filter(|v| v.service_sid == svc.sid && v.asset_sid == args[1])
        .ok_or_else(not_found)?;
    let digest = Digest::from_hex(&v.digest).ok_or_else(|| ApiError::internal(&"bad digest"))?;
    let (reader, len) = lookup
        .open_blob(&digest, false, None)?
        .ok_or_else(|| ApiError::internal(&format!("content of {} is missing", v.sid)))?;
    Ok(Reply {
        status: 200,
        headers: vec![
            ("content-type".into(), v.content_type.clone().into()),
            ("x-content-type-options".into(), "nosniff".into()),
            ("etag".into(), format!("\"{}\"", v.digest).into()),
            ("cache-control".into(), "private, no-store".into()),
        ],
        body: Body::Stream {
            reader: Box::new(reader),
            len,
        },
    })
}

fn private_bundle(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let lookup = ctx.store.read()?;
    let not_found = || {
        ApiError::not_found(&format!(
            "/Services/{}/Builds/{}/PrivateAssets",
            args[0], args[1]
        ))
    };
    let svc = lookup
        .find_service(ctx.account_sid(), &args[0])?
        .ok_or_else(not_found)?;
    let build = lookup
        .build(&args[1])?
        .filter(|b| b.service_sid == svc.sid)
        .ok_or_else(not_found)?;
    let mut versions: Vec<AssetVersion> = Vec::new();
    for sid in &build.asset_versions {
        if let Some(v) = lookup.version(sid)?
            && v.visibility == "private"
        {
            versions.push(v);
        }
    }
    versions.sort_by(|a, b| a.path.cmp(&b.path));
    let file = bundle(ctx, &lookup, &versions, build.date_created)?;
    let len = file.metadata().map_err(|e| ApiError::internal(&e))?.len();
    Ok(Reply {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/gzip".into()),
            (
                "content-disposition".into(),
                format!(
                    "attachment; filename=\"{}-private-assets.tar.gz\"",
                    build.sid
                )
                .into(),
            ),
            ("cache-control".into(), "private, no-store".into()),
        ],
        body: Body::Stream {
            reader: Box::new(file),
            len,
        },
    })
}

/// Writes the tar.gz into an unlinked temporary file (so a dropped download leaves nothing)
/// and rewinds it.
fn bundle(
    ctx: &Ctx<'_, '_, '_>,
    lookup: &Lookup,
    versions: &[AssetVersion],
    mtime: u64,
) -> ApiResult<std::fs::File> {
    let mut file = super::staging::unlinked_temp(ctx.store, "bundle")?;
    {
        let mut gz = crate::compress::encoder(std::io::BufWriter::new(&mut file));
        let mut manifest = serde_json::Map::new();
        for v in versions {
            let digest =
                Digest::from_hex(&v.digest).ok_or_else(|| ApiError::internal(&"bad digest"))?;
            let (mut reader, len) = lookup
                .open_blob(&digest, false, None)?
                .ok_or_else(|| ApiError::internal(&format!("content of {} is missing", v.sid)))?;
            let name = v.path.trim_start_matches('/');
            tar_entry(&mut gz, name, len, mtime, &mut reader)
                .map_err(|e| ApiError::internal(&e))?;
            manifest.insert(
                v.path.clone(),
                serde_json::json!({"sid": v.sid, "digest": v.digest, "size": v.size, "content_type": v.content_type}),
            );
        }
        let m = serde_json::Value::Object(manifest).to_string();
        tar_entry(
            &mut gz,
            ".assetd-manifest.json",
            m.len() as u64,
            mtime,
            &mut m.as_bytes(),
        )
        .map_err(|e| ApiError::internal(&e))?;
        gz.write_all(&[0u8; 1024])
            .map_err(|e| ApiError::internal(&e))?;
        let mut inner = gz.finish().map_err(|e| ApiError::internal(&e))?;
        inner.flush().map_err(|e| ApiError::internal(&e))?;
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| ApiError::internal(&e))?;
    Ok(file)
}

/// One ustar entry (with a PAX `path` record when the name does not fit ustar's fields).
fn tar_entry(
    w: &mut dyn Write,
    name: &str,
    len: u64,
    mtime: u64,
    src: &mut dyn Read,
) -> std::io::Result<()> {
    if name.len() > 100 {
        let record = pax_record("path", name);
        w.write_all(&header("././@PaxHeader", record.len() as u64, mtime, b'x'))?;
        w.write_all(record.as_bytes())?;
        pad(w, record.len() as u64)?;
    }
    let short: String = name
        .chars()
        .rev()
        .take(100)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let short = if name.len() > 100 {
        short.trim_start_matches('/').to_string()
    } else {
        name.to_string()
    };
    w.write_all(&header(&short, len, mtime, b'0'))?;
    let copied = std::io::copy(&mut src.take(len), w)?;
    if copied != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "content is short",
        ));
    }
    pad(w, len)
}

fn pax_record(key: &str, value: &str) -> String {
    // "LEN key=value\n" where LEN counts itself.
    let body = format!(" {key}={value}\n");
    let mut n = body.len() + 1;
    while format!("{n}").len() + body.len() != n {
        n = format!("{n}").len() + body.len();
    }
    format!("{n}{body}")
}

fn pad(w: &mut dyn Write, len: u64) -> std::io::Result<()> {
    let rem = (512 - (len % 512)) % 512;
    w.write_all(&vec![0u8; rem as usize])
}

fn header(name: &str, size: u64, mtime: u64, kind: u8) -> [u8; 512] {
    let mut h = [0u8; 512];
    let nb = name.as_bytes();
    h[..nb.len().min(100)].copy_from_slice(&nb[..nb.len().min(100)]);
    let octal = |h: &mut [u8; 512], at: usize, width: usize, v: u64| {
        let s = format!("{v:0w$o}", w = width - 1);
        h[at..at + width - 1].copy_from_slice(s.as_bytes());
    };
    octal(&mut h, 100, 8, 0o644);
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, size);
    octal(&mut h, 136, 12, mtime);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let r = pax_record("path", "a");
        assert_eq!(r, "9 path=a\n");
        assert_eq!(r.len(), 9);
        let long = "x".repeat(200);
        let r = pax_record("path", &long);
        let n: usize = r.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(n, r.len());
    }

    #[test]
    fn header_checksum_is_valid() {
        let h = header("a.txt", 5, 0, b'0');
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        let mut copy = h;
        copy[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, copy.iter().map(|&b| b as u32).sum::<u32>());
    }
}
