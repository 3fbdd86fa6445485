//! Gzip variants of compressible blobs, computed once per blob when a version that needs
//! one is created.

use super::blob::{blob_meta, delete_chunks, next_blob_id};
use super::tables::{BLOBS, BlobMeta, CHUNK_SIZE, CHUNKS, GzipState};
use super::{Result, StoreError};
use crate::model::Digest;
use redb::{ReadableTable, WriteTransaction};
use std::io::Write;

/// Blobs smaller than this are never compressed: the headers would eat the gain.
const MIN_GZIP_INPUT: u64 = 256;

/// Makes sure the blob `digest` has its gzip state computed: a gzip chunk set when it saves at
/// least 10%, else a "not worth it" mark. Idempotent.
pub(crate) fn ensure_gzip(txn: &WriteTransaction, digest: &Digest) -> Result<()> {
    let meta = blob_meta(&txn.open_table(BLOBS)?, digest)?
        .ok_or_else(|| StoreError::NotFound(format!("blob {digest} is not stored")))?;
    if meta.gzip != GzipState::Unknown {
        return Ok(());
    }
    let state = if meta.size < MIN_GZIP_INPUT {
        GzipState::None
    } else {
        let gz_id = next_blob_id(txn)?;
        let mut chunks = txn.open_table(CHUNKS)?;
        let mut enc = crate::compress::encoder(Vec::with_capacity(CHUNK_SIZE));
        let mut out_index = 0u32;
        let mut out_size = 0u64;
        let mut flush = |buf: &mut Vec<u8>,
                         chunks: &mut redb::Table<(u64, u32), &[u8]>,
                         last: bool|
         -> Result<()> {
            while buf.len() >= CHUNK_SIZE || (last && !buf.is_empty()) {
                let n = buf.len().min(CHUNK_SIZE);
                chunks.insert((gz_id, out_index), &buf[..n])?;
                out_index += 1;
                out_size += n as u64;
                buf.drain(..n);
            }
            Ok(())
        };
        for i in 0..BlobMeta::chunks(meta.size) {
            let data = chunks
                .get((meta.id, i))?
                .ok_or_else(|| StoreError::Corrupt(format!("blob {digest} lacks chunk {i}")))?
                .value()
                .to_vec();
            enc.write_all(&data)?;
            flush(enc.get_mut(), &mut chunks, false)?;
        }
        let mut rest = enc.finish()?;
        flush(&mut rest, &mut chunks, true)?;
        drop(chunks);
        if out_size * 10 > meta.size * 9 {
            delete_chunks(txn, gz_id, out_size)?;
            GzipState::None
        } else {
            GzipState::Some {
                id: gz_id,
                size: out_size,
            }
        }
    };
    let updated = BlobMeta {
        gzip: state,
        ..meta
    };
    txn.open_table(BLOBS)?
        .insert(&digest.0, updated.encode().as_slice())?;
    Ok(())
}
