//! Content-addressed blobs stored as chunks. Writing streams chunk by chunk; reading never
//! holds more than one chunk.

use super::tables::{BLOBS, BlobMeta, CHUNK_SIZE, CHUNKS, GzipState, META};
use super::{Result, StoreError, decode_u64};
use crate::model::{Digest, Hasher};
use redb::{OwnedAccessGuard, ReadOnlyTable, ReadableTable, WriteTransaction};
use std::io::{self, Read};
use std::sync::Arc;

/// Where a new blob's bytes come from.
pub trait BlobSource: Read {}
impl<R: Read> BlobSource for R {}

/// Allocates a fresh blob id (ids are never reused).
pub(crate) fn next_blob_id(txn: &WriteTransaction) -> Result<u64> {
    let mut meta = txn.open_table(META)?;
    let id = match meta.get("next_blob_id")? {
        Some(v) => decode_u64(v.value())?,
        None => 1,
    };
    meta.insert("next_blob_id", (id + 1).to_le_bytes().as_slice())?;
    Ok(id)
}

/// Looks a blob up by digest.
pub(crate) fn blob_meta<T: ReadableTable<&'static [u8; 32], &'static [u8]>>(
    table: &T,
    digest: &Digest,
) -> Result<Option<BlobMeta>> {
    match table.get(&digest.0)? {
        Some(v) => BlobMeta::decode(v.value())
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt(format!("bad blob record for {digest}"))),
        None => Ok(None),
    }
}

/// The outcome of storing bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PutBlob {
    pub digest: Digest,
    pub size: u64,
    /// False when the bytes were already stored (nothing new was kept).
    pub new: bool,
}

/// Stores the bytes of `src` as a blob inside `txn`, hashing them on the way.
///
/// When `expected` is given and already stored, `src` is not read at all. When it is given and
/// the bytes hash differently, the result is [`StoreError::DigestMismatch`] (the caller's
/// transaction must then be dropped). Bytes already stored under their digest are kept once.
/// `max` bounds the size: past it the error is [`StoreError::Invalid`] naming `what`.
pub(crate) fn put_blob(
    txn: &WriteTransaction,
    src: &mut dyn Read,
    expected: Option<Digest>,
    max: Option<(u64, &str)>,
) -> Result<PutBlob> {
    if let Some(d) = expected
        && let Some(meta) = blob_meta(&txn.open_table(BLOBS)?, &d)?
    {
        return Ok(PutBlob {
            digest: d,
            size: meta.size,
            new: false,
        });
    }
    let id = next_blob_id(txn)?;
    let mut hasher = Hasher::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; CHUNK_SIZE];
    {
        let mut chunks = txn.open_table(CHUNKS)?;
        let mut index = 0u32;
        loop {
            let n = crate::model::read_full(src, &mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if let Some((limit, what)) = max
                && size > limit
            {
                return Err(StoreError::Invalid(format!(
                    "{what} is larger than the limit of {limit} bytes"
                )));
            }
            hasher.update(&buf[..n]);
            chunks.insert((id, index), &buf[..n])?;
            index += 1;
            if n < CHUNK_SIZE {
                break;
            }
        }
    }
    let digest = hasher.finalize();
    if let Some(e) = expected
        && e != digest
    {
        return Err(StoreError::DigestMismatch {
            expected: e.to_hex(),
            actual: digest.to_hex(),
        });
    }
    let mut blobs = txn.open_table(BLOBS)?;
    if let Some(existing) = blob_meta(&blobs, &digest)? {
        drop(blobs);
        delete_chunks(txn, id, size)?;
        return Ok(PutBlob {
            digest,
            size: existing.size,
            new: false,
        });
    }
    let meta = BlobMeta {
        id,
        size,
        gzip: GzipState::Unknown,
        created: super::now(),
    };
    blobs.insert(&digest.0, meta.encode().as_slice())?;
    Ok(PutBlob {
        digest,
        size,
        new: true,
    })
}

/// Removes the chunks of blob `id` (of `size` bytes).
pub(crate) fn delete_chunks(txn: &WriteTransaction, id: u64, size: u64) -> Result<()> {
    let mut chunks = txn.open_table(CHUNKS)?;
    for i in 0..BlobMeta::chunks(size) {
        chunks.remove((id, i))?;
    }
    Ok(())
}

/// Part of one stored chunk, borrowed from the store's page without a copy (it keeps its read
/// snapshot alive until dropped), or of a small blob kept in memory.
pub struct Piece {
    data: PieceData,
    start: usize,
    end: usize,
}

enum PieceData {
    Page(OwnedAccessGuard<&'static [u8]>),
    Memory(Arc<[u8]>),
}

impl AsRef<[u8]> for Piece {
    fn as_ref(&self) -> &[u8] {
        match &self.data {
            PieceData::Page(guard) => &guard.value()[self.start..self.end],
            PieceData::Memory(m) => &m[self.start..self.end],
        }
    }
}

/// Streams a byte range of one chunk set out of a read snapshot, either through [`Read`]
/// (one chunk copied at a time) or as [`Piece`]s (no copy). The snapshot stays valid (and its
/// pages unreclaimed) until the reader and its pieces are dropped. A small blob may instead
/// come whole from memory (see `hot.rs`).
pub struct BlobReader {
    source: Source,
    pos: u64,
    end: u64,
    current: Option<(u32, Vec<u8>)>,
}

enum Source {
    Chunks {
        chunks: ReadOnlyTable<(u64, u32), &'static [u8]>,
        id: u64,
    },
    Memory(Arc<[u8]>),
}

impl BlobReader {
    pub(crate) fn new(
        chunks: ReadOnlyTable<(u64, u32), &'static [u8]>,
        id: u64,
        start: u64,
        end: u64,
    ) -> BlobReader {
        BlobReader {
            source: Source::Chunks { chunks, id },
            pos: start,
            end,
            current: None,
        }
    }

    /// Bytes `start..end` of a whole blob held in memory.
    pub(crate) fn memory(body: Arc<[u8]>, start: u64, end: u64) -> BlobReader {
        let end = end.min(body.len() as u64);
        BlobReader {
            source: Source::Memory(body),
            pos: start.min(end),
            end,
            current: None,
        }
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> u64 {
        self.end - self.pos
    }

    /// The rest of the current chunk within the range, without a copy; `None` at the end.
    /// A missing or short chunk is an `UnexpectedEof` error.
    pub fn next_piece(&mut self) -> io::Result<Option<Piece>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let (chunks, id) = match &self.source {
            Source::Memory(m) => {
                let (start, end) = (self.pos as usize, self.end as usize);
                self.pos = self.end;
                return Ok(Some(Piece {
                    data: PieceData::Memory(m.clone()),
                    start,
                    end,
                }));
            }
            Source::Chunks { chunks, id } => (chunks, *id),
        };
        let index = (self.pos / CHUNK_SIZE as u64) as u32;
        let start = (self.pos % CHUNK_SIZE as u64) as usize;
        let guard = chunks
            .get_owned((id, index))
            .map_err(io::Error::other)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "blob chunk is missing"))?;
        let len = guard.value().len();
        if start >= len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "blob chunk is short",
            ));
        }
        let end = len.min(start + (self.end - self.pos) as usize);
        self.pos += (end - start) as u64;
        self.current = None;
        Ok(Some(Piece {
            data: PieceData::Page(guard),
            start,
            end,
        }))
    }
}

impl Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.end || out.is_empty() {
            return Ok(0);
        }
        let (chunks, id) = match &self.source {
            Source::Memory(m) => {
                let from = &m[self.pos as usize..self.end as usize];
                let n = out.len().min(from.len());
                out[..n].copy_from_slice(&from[..n]);
                self.pos += n as u64;
                return Ok(n);
            }
            Source::Chunks { chunks, id } => (chunks, *id),
        };
        let index = (self.pos / CHUNK_SIZE as u64) as u32;
        let offset = (self.pos % CHUNK_SIZE as u64) as usize;
        if self.current.as_ref().map(|(i, _)| *i) != Some(index) {
            let guard = chunks
                .get((id, index))
                .map_err(io::Error::other)?
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "blob chunk is missing")
                })?;
            // One chunk copy: the guard borrows redb's page cache, which we must not pin
            // while the socket is slow.
            let mut data = self.current.take().map(|(_, v)| v).unwrap_or_default();
            data.clear();
            data.extend_from_slice(guard.value());
            self.current = Some((index, data));
        }
        let data = &self.current.as_ref().expect("loaded above").1;
        if offset >= data.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "blob chunk is short",
            ));
        }
        let n = out
            .len()
            .min(data.len() - offset)
            .min((self.end - self.pos) as usize);
        out[..n].copy_from_slice(&data[offset..offset + n]);
        self.pos += n as u64;
        Ok(n)
    }
}
