//! Parallel gzip: the archive stream is cut into blocks that worker threads
//! compress on all cores, each into a complete gzip member; a writer thread
//! puts the members in order into the file and hands each to the file's
//! [`ReadBack`], which hashes it and reads it back from the disk. The result
//! is standard multi-member gzip that GNU tar, gzip and flate2's
//! `MultiGzDecoder` read.
//!
//! Invariants:
//! - Members are written in block order, each exactly once.
//! - Every member is decompressed again in memory by the worker that made
//!   it and compared with its input before it is handed to the writer, so
//!   a compressor fault cannot produce an archive that does not restore.
//! - Memory is bounded: at most `workers` blocks wait for a worker and
//!   `workers` members wait for the writer.
//! - All-zero blocks (the unused tail of a database file) are not
//!   compressed again: each worker keeps the member for a zero block.
//! - Blocks that look encrypted or compressed are stored (deflate level 0),
//!   still in a standard member, and checked like every other.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::fsx;
use crate::readback::{Outcome, ReadBack};
use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress, Status};

/// Uncompressed bytes per gzip member.
pub const BLOCK: usize = 1 << 20;

type Job = (u64, Vec<u8>);
type Done = (u64, Arc<Vec<u8>>);

/// A `Write` that compresses on `workers` threads into `file`.
pub struct ParallelGz {
    block: Vec<u8>,
    seq: u64,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<io::Result<()>>>,
    writer: Option<JoinHandle<io::Result<(File, Outcome)>>>,
}

/// The number of worker threads to use: one per available core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

impl ParallelGz {
    /// Starts the workers and the writer for `file` at deflate `level`;
    /// `read_back` hashes and reads back what is written.
    pub fn new(file: File, level: u32, workers: usize, read_back: ReadBack) -> Self {
        let workers = workers.max(1);
        let (job_tx, job_rx) = sync_channel::<Job>(workers);
        let (done_tx, done_rx) = sync_channel::<Done>(workers);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let handles = (0..workers)
            .map(|_| {
                let rx = Arc::clone(&job_rx);
                let tx = done_tx.clone();
                std::thread::spawn(move || compress_loop(&rx, &tx, level))
            })
            .collect();
        drop(done_tx);
        let writer = std::thread::spawn(move || write_loop(file, &done_rx, read_back));
        ParallelGz {
            block: Vec::with_capacity(BLOCK),
            seq: 0,
            jobs: Some(job_tx),
            workers: handles,
            writer: Some(writer),
        }
    }

    fn send_block(&mut self) -> io::Result<()> {
        let block = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let sent = self.jobs.as_ref().map(|tx| tx.send((self.seq, block)));
        self.seq += 1;
        match sent {
            Some(Ok(())) => Ok(()),
            // A worker or the writer stopped: its error is reported by finish.
            _ => Err(self.stop()),
        }
    }

    /// Stops everything and returns the first error a thread met.
    fn stop(&mut self) -> io::Error {
        self.jobs = None;
        let mut first = None;
        for w in self.workers.drain(..) {
            if let Ok(Err(e)) = w.join() {
                first.get_or_insert(e);
            }
        }
        if let Some(w) = self.writer.take()
            && let Ok(Err(e)) = w.join()
        {
            first.get_or_insert(e);
        }
        first.unwrap_or_else(|| io::Error::other("the compression threads stopped"))
    }

    /// Compresses what is left, waits for every member to be written and
    /// read back, and returns the file and what the read-back found.
    pub fn finish(mut self) -> io::Result<(File, Outcome)> {
        // Even an empty stream becomes one (empty) gzip member: valid gzip.
        if !self.block.is_empty() || self.seq == 0 {
            self.send_block()?;
        }
        self.jobs = None;
        let mut first = None;
        for w in self.workers.drain(..) {
            match w.join() {
                Ok(Err(e)) => {
                    first.get_or_insert(e);
                }
                Err(_) => {
                    first.get_or_insert(io::Error::other("a compression thread panicked"));
                }
                Ok(Ok(())) => {}
            }
        }
        let written = match self.writer.take().map(|w| w.join()) {
            Some(Ok(r)) => r,
            _ => Err(io::Error::other("the archive writer thread panicked")),
        };
        match first {
            Some(e) => Err(e),
            None => written,
        }
    }
}

impl Write for ParallelGz {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK {
            self.send_block()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ParallelGz {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = self.stop();
        }
    }
}

fn compress_loop(rx: &Mutex<Receiver<Job>>, tx: &SyncSender<Done>, level: u32) -> io::Result<()> {
    let mut zero_members: HashMap<usize, Arc<Vec<u8>>> = HashMap::new();
    let mut member = Member::new(level);
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return Ok(()),
        };
        let Ok((seq, block)) = job else { return Ok(()) };
        let done = if is_zero(&block) {
            match zero_members.get(&block.len()) {
                Some(m) => Arc::clone(m),
                None => {
                    let m = Arc::new(member.make(&block)?);
                    zero_members.insert(block.len(), Arc::clone(&m));
                    m
                }
            }
        } else {
            Arc::new(member.make(&block)?)
        };
        if tx.send((seq, done)).is_err() {
            // The writer stopped; it reports why.
            return Ok(());
        }
    }
}

/// Makes gzip members, each decompressed again and compared with its input.
/// The deflate state is reused from member to member.
struct Member {
    level: u32,
    deflate: Compress,
    /// Level 0, for blocks that deflate cannot shrink.
    store: Compress,
    inflate: Decompress,
    check: Vec<u8>,
}

/// The gzip header of every member: no name, no time, "unknown" system.
fn header(level: u32) -> [u8; 10] {
    // XFL: 2 for the slowest level, 4 for the fastest (and none), as
    // flate2's GzEncoder writes it.
    let xfl = match level {
        9.. => 2,
        0 | 1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
}

impl Member {
    fn new(level: u32) -> Self {
        Member {
            level,
            deflate: Compress::new(Compression::new(level), false),
            store: Compress::new(Compression::none(), false),
            inflate: Decompress::new(false),
            check: vec![0u8; 64 << 10],
        }
    }

    /// One gzip member of `block`: header, raw deflate, CRC-32 and length.
    fn make(&mut self, block: &[u8]) -> io::Result<Vec<u8>> {
        let fault = |what: &str| io::Error::other(format!("the compressor failed: {what}"));
        let mut out = Vec::with_capacity(block.len() + block.len() / 16 + 1024);
        out.extend_from_slice(&header(self.level));
        let store = self.level > 0 && looks_incompressible(block);
        let deflate = if store { &mut self.store } else { &mut self.deflate };
        deflate.reset();
        loop {
            let consumed = deflate.total_in() as usize;
            let status = deflate
                .compress_vec(&block[consumed..], &mut out, FlushCompress::Finish)
                .map_err(|e| fault(&e.to_string()))?;
            if status == Status::StreamEnd {
                break;
            }
            out.reserve(out.capacity() / 2);
        }
        self.check_inflates_to(&out[10..], block)?;
        let mut crc = Crc::new();
        crc.update(block);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        Ok(out)
    }

    /// Decompresses `deflated` and compares it with `block`: it must give
    /// exactly those bytes and end exactly at its end.
    fn check_inflates_to(&mut self, deflated: &[u8], block: &[u8]) -> io::Result<()> {
        let wrong = || io::Error::other("the compressor produced data that does not decompress to its input");
        self.inflate.reset(false);
        loop {
            let (read, wrote) = (self.inflate.total_in() as usize, self.inflate.total_out() as usize);
            let status = self
                .inflate
                .decompress(&deflated[read..], &mut self.check, FlushDecompress::None)
                .map_err(|_| wrong())?;
            let now = self.inflate.total_out() as usize;
            if block.get(wrote..now) != Some(&self.check[..now - wrote]) {
                return Err(wrong());
            }
            match status {
                Status::StreamEnd => break,
                _ if now == wrote && self.inflate.total_in() as usize == read => return Err(wrong()),
                _ => {}
            }
        }
        if self.inflate.total_out() as usize != block.len()
            || self.inflate.total_in() as usize != deflated.len()
        {
            return Err(wrong());
        }
        Ok(())
    }
}

/// Whether `block` looks like encrypted or already compressed data (an
/// attachment, a compressed backup), which deflate cannot shrink and would
/// only spend time on: each of 16 slices of 1 KiB spread over the block has
/// byte counts as even as random bytes have. Zero-heavy pages, text, rows
/// and indexes are far from even, and the first such slice settles it: the
/// block is compressed as usual. Otherwise it is stored (deflate level 0).
fn looks_incompressible(block: &[u8]) -> bool {
    const SLICES: usize = 16;
    const SLICE: usize = 1024;
    // Pearson's chi-squared of a slice's byte counts against even counts
    // (255 degrees of freedom: mean 255, spread 22.6). Random slices reach
    // 330 about once in 800, so about 2% of random blocks are compressed
    // anyway; a slice with 100 bytes of text reaches it 96% of the time.
    const LIMIT: u32 = 330;
    if block.len() < SLICES * SLICE {
        return false;
    }
    (0..SLICES).all(|k| {
        let at = k * (block.len() - SLICE) / (SLICES - 1);
        let mut counts = [0u32; 256];
        for &b in &block[at..at + SLICE] {
            counts[usize::from(b)] += 1;
        }
        // With 4 expected per value: sum((c - 4)^2 / 4) = (sum(c^2) - 4096) / 4.
        let sum_sq: u32 = counts.iter().map(|&c| c * c).sum();
        (sum_sq - 4096) / 4 < LIMIT
    })
}

fn is_zero(block: &[u8]) -> bool {
    let (chunks, rest) = block.as_chunks::<16>();
    chunks.iter().all(|c| u128::from_ne_bytes(*c) == 0) && rest.iter().all(|&b| b == 0)
}

fn write_loop(mut file: File, rx: &Receiver<Done>, read_back: ReadBack) -> io::Result<(File, Outcome)> {
    let mut size = 0u64;
    let mut next = 0u64;
    let mut waiting: BTreeMap<u64, Arc<Vec<u8>>> = BTreeMap::new();
    let mut behind = fsx::WriteBehind::default();
    for (seq, member) in rx {
        waiting.insert(seq, member);
        while let Some(member) = waiting.remove(&next) {
            file.write_all(&member)?;
            size += member.len() as u64;
            next += 1;
            if !read_back.wrote(member) {
                return Err(read_back
                    .finish()
                    .err()
                    .unwrap_or_else(|| io::Error::other("the read-back stopped")));
            }
        }
        behind.wrote(&file, size);
    }
    if !waiting.is_empty() {
        return Err(io::Error::other("a compressed block went missing"));
    }
    Ok((file, read_back.finish()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::hex;
    use sha2::{Digest, Sha256};
    use std::io::Read;

    fn roundtrip(data: &[u8], workers: usize) -> Vec<u8> {
        // Not /tmp: the read-back needs a filesystem with direct reads.
        let dir = tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/target")).unwrap();
        let path = dir.path().join("archive");
        let mut gz = ParallelGz::new(File::create(&path).unwrap(), 6, workers, ReadBack::start(&path));
        for chunk in data.chunks(7919) {
            gz.write_all(chunk).unwrap();
        }
        let (_, read_back) = gz.finish().unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert!(read_back.from_device);
        assert_eq!(read_back.digest.size, raw.len() as u64);
        assert_eq!(read_back.digest.sha256, hex(&Sha256::digest(&raw)));
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(raw.as_slice()).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn members_come_back_in_order_as_one_stream() {
        let mut data = Vec::new();
        for i in 0..(3 * BLOCK + 12345) {
            data.push((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) as u8 & 0x3f);
        }
        data.extend(std::iter::repeat_n(0u8, 2 * BLOCK + 17));
        for workers in [1, 2, 4] {
            assert_eq!(roundtrip(&data, workers), data);
        }
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as u8).collect()
    }

    #[test]
    fn members_are_what_flate2s_gzip_encoder_writes() {
        for level in [0, 1, 2, 6, 9] {
            let mut member = Member::new(level);
            // The same state serves member after member.
            for len in [0, 1, 5000, BLOCK] {
                let block = sample(len);
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), Compression::new(level));
                enc.write_all(&block).unwrap();
                let (made, expected) = (member.make(&block).unwrap(), enc.finish().unwrap());
                let mut back = Vec::new();
                flate2::read::GzDecoder::new(made.as_slice()).read_to_end(&mut back).unwrap();
                assert!(back == block, "level {level}, {len} bytes");
                // Levels 0 and 1 end blocks where the output buffer fills,
                // so only the header is the same; from level 2 every byte is.
                if level >= 2 {
                    assert!(made == expected, "level {level}, {len} bytes");
                } else {
                    assert_eq!(made[..10], expected[..10]);
                }
            }
        }
    }

    #[test]
    fn a_deflate_stream_that_does_not_give_its_input_is_refused() {
        let mut member = Member::new(2);
        let block = sample(200_000);
        let made = member.make(&block).unwrap();
        let deflated = &made[10..made.len() - 8];
        assert!(member.check_inflates_to(deflated, &block).is_ok());
        let mut other = block.clone();
        other[123_456] ^= 1;
        assert!(member.check_inflates_to(deflated, &other).is_err(), "a changed byte");
        assert!(member.check_inflates_to(deflated, &block[..block.len() - 1]).is_err(), "a longer output");
        let mut longer = block.clone();
        longer.push(0);
        assert!(member.check_inflates_to(deflated, &longer).is_err(), "a shorter output");
        assert!(member.check_inflates_to(&deflated[..deflated.len() - 1], &block).is_err(), "cut short");
        let mut trailing = deflated.to_vec();
        trailing.push(0);
        assert!(member.check_inflates_to(&trailing, &block).is_err(), "bytes after the end");
        let mut flipped = deflated.to_vec();
        flipped[deflated.len() / 2] ^= 0x10;
        assert!(member.check_inflates_to(&flipped, &block).is_err(), "a flipped bit");
    }

    /// Bytes with no pattern deflate can use (a SHA-256 counter stream).
    fn random(len: usize) -> Vec<u8> {
        (0u64..).flat_map(|i| Sha256::digest(i.to_le_bytes())).take(len).collect()
    }

    #[test]
    fn incompressible_blocks_are_stored_and_others_compressed() {
        let mut member = Member::new(2);
        let noise = random(BLOCK);
        assert!(looks_incompressible(&noise));
        let stored = member.make(&noise).unwrap();
        // Stored blocks cost 5 bytes per 64 KiB, plus header and trailer.
        assert!(stored.len() <= BLOCK + 5 * 17 + 18, "{} bytes", stored.len());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(stored.as_slice()).read_to_end(&mut back).unwrap();
        assert!(back == noise);

        // One compressible slice among the random ones is enough to compress.
        for at in [0, BLOCK / 3, BLOCK - 1024] {
            let mut mixed = noise.clone();
            let text = b"2.AAECAwQFBgcICQoLDA0ODw==|".repeat(40);
            mixed[at..at + 1024].copy_from_slice(&text[..1024]);
            assert!(!looks_incompressible(&mixed), "text at {at}");
        }
        for block in [vec![0u8; BLOCK], sample(BLOCK), [random(BLOCK / 2), vec![0u8; BLOCK / 2]].concat()] {
            assert!(!looks_incompressible(&block));
            assert!(member.make(&block).unwrap().len() < BLOCK * 9 / 10);
        }
        // Too short to judge: compressed as usual.
        assert!(!looks_incompressible(&noise[..8 << 10]));
    }

    #[test]
    fn an_empty_stream_is_one_empty_member() {
        assert!(roundtrip(&[], 2).is_empty());
    }

    #[test]
    fn zero_blocks_are_recognised() {
        assert!(is_zero(&[0u8; 100]));
        let mut b = vec![0u8; 100];
        b[99] = 1;
        assert!(!is_zero(&b));
        b[99] = 0;
        b[3] = 1;
        assert!(!is_zero(&b));
    }
}
