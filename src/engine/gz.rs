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
//! - Stretches that look random (encrypted or compressed data, at page
//!   granularity) are stored, the rest deflated, all in one standard
//!   member per block, checked like every other.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress, Status};

use crate::engine::readback::{Outcome, ReadBack};
use crate::files;

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
            inflate: Decompress::new(false),
            check: vec![0u8; 64 << 10],
        }
    }

    /// One gzip member of `block`: header, raw deflate, CRC-32 and length.
    /// Stretches that look random are stored; each stretch between them is
    /// deflated on its own, ending on a byte boundary (a sync flush), so
    /// that the pieces make one deflate stream.
    fn make(&mut self, block: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(block.len() + block.len() / 16 + 1024);
        out.extend_from_slice(&header(self.level));
        let parts = match self.level {
            0 => vec![(0..block.len(), true)],
            _ => stretches(block),
        };
        for (i, (range, random)) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if *random {
                stored(&block[range.clone()], last, &mut out);
            } else {
                self.deflate.reset();
                deflate(&mut self.deflate, &block[range.clone()], last, &mut out)?;
            }
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

/// Deflates `input` onto `out` as one or more blocks: the last of the
/// stream if `last`, else ending on a byte boundary (a sync flush).
fn deflate(deflate: &mut Compress, input: &[u8], last: bool, out: &mut Vec<u8>) -> io::Result<()> {
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    loop {
        let consumed = deflate.total_in() as usize;
        let status = deflate
            .compress_vec(&input[consumed..], out, flush)
            .map_err(|e| io::Error::other(format!("the compressor failed: {e}")))?;
        let done = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            // All taken, and room left over: the flush is complete.
            _ => deflate.total_in() as usize == input.len() && out.len() < out.capacity(),
        };
        if done {
            return Ok(());
        }
        out.reserve(out.capacity() / 2 + 1024);
    }
}

/// Appends `bytes` as stored deflate blocks (at most 65535 bytes each),
/// the last of the stream if `last`. The output so far ends on a byte
/// boundary, so each block header takes one byte: BFINAL, and BTYPE 00.
fn stored(bytes: &[u8], last: bool, out: &mut Vec<u8>) {
    let mut pieces = bytes.chunks(0xFFFF).peekable();
    if bytes.is_empty() {
        out.extend_from_slice(&[u8::from(last), 0, 0, 0xFF, 0xFF]);
    }
    while let Some(piece) = pieces.next() {
        let len = piece.len() as u16;
        out.push(u8::from(last && pieces.peek().is_none()));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(piece);
    }
}

/// Splits `block` into stretches that look random (encrypted or already
/// compressed: an attachment, a compressed backup, an encrypted page) and
/// the rest, in order, with whether each looks random. Deflate cannot
/// shrink random bytes and spends its slowest path on them, so those are
/// stored.
///
/// Every 4 KiB step is judged by its first and last 256 bytes; a run of
/// random steps then grows by 512 bytes at a time (the tar grain) while
/// both halves of the next 512 look random too. Pages of database files
/// start on a 512-byte boundary of the tar stream, so stretches follow page
/// edges. Zero-heavy pages, text, rows and indexes are far from random in
/// any 256 bytes, so they are never stored. Always returns at least one
/// stretch.
fn stretches(block: &[u8]) -> Vec<(std::ops::Range<usize>, bool)> {
    const STEP: usize = 4096;
    const GRAIN: usize = 512;
    const HALF: usize = GRAIN / 2;
    let steps = block.len() / STEP;
    let random_at = |at: usize| looks_random(&block[at..at + HALF]);
    let random_step = |k: usize| random_at(k * STEP) && random_at((k + 1) * STEP - HALF);
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    let mut k = 0;
    while k < steps {
        if !random_step(k) {
            k += 1;
            continue;
        }
        let first = k;
        k += 1;
        while k < steps && random_step(k) {
            k += 1;
        }
        let (mut start, mut end) = (first * STEP, k * STEP);
        let floor = runs.last().map_or(0, |r| r.end);
        while start >= floor + GRAIN && random_at(start - GRAIN) && random_at(start - HALF) {
            start -= GRAIN;
        }
        while end + GRAIN <= block.len() && random_at(end) && random_at(end + HALF) {
            end += GRAIN;
        }
        match runs.last_mut() {
            Some(prev) if prev.end == start => prev.end = end,
            _ => runs.push(start..end),
        }
        k = k.max(end.div_ceil(STEP));
    }
    let mut parts = Vec::with_capacity(2 * runs.len() + 1);
    let mut at = 0;
    for run in runs {
        if run.start > at {
            parts.push((at..run.start, false));
        }
        at = run.end;
        parts.push((run, true));
    }
    if at < block.len() || parts.is_empty() {
        parts.push((at..block.len(), false));
    }
    parts
}

/// Whether `bytes` have byte counts as even as random bytes have:
/// Pearson's chi-squared against even counts, 255 degrees of freedom (mean
/// 255, spread about 22.6). Random 256-byte slices stay under the limit
/// more than 99.5% of the time; 256 bytes of text, rows or zero-heavy data
/// are far above it.
fn looks_random(bytes: &[u8]) -> bool {
    const LIMIT: u64 = 330;
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as u64;
    // sum((c - n/256)^2 / (n/256)) = 256 * sum(c^2) / n - n
    let sum_sq: u64 = counts.iter().map(|&c| u64::from(c) * u64::from(c)).sum();
    n > 0 && (256 * sum_sq / n).saturating_sub(n) < LIMIT
}

fn is_zero(block: &[u8]) -> bool {
    let (chunks, rest) = block.as_chunks::<16>();
    chunks.iter().all(|c| u128::from_ne_bytes(*c) == 0) && rest.iter().all(|&b| b == 0)
}

fn write_loop(mut file: File, rx: &Receiver<Done>, read_back: ReadBack) -> io::Result<(File, Outcome)> {
    let mut size = 0u64;
    let mut next = 0u64;
    let mut waiting: BTreeMap<u64, Arc<Vec<u8>>> = BTreeMap::new();
    let mut behind = files::WriteBehind::default();
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
    use crate::engine::manifest::hex;
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
        let (file, read_back) = gz.finish().unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(read_back.from_device, crate::engine::readback::direct_reads_reach_the_disk(&file));
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

    fn inflate(member: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(member).read_to_end(&mut back).unwrap();
        back
    }

    #[test]
    fn random_blocks_are_stored_and_others_compressed() {
        let mut member = Member::new(2);
        let noise = random(BLOCK);
        assert_eq!(stretches(&noise), vec![(0..BLOCK, true)]);
        let stored = member.make(&noise).unwrap();
        // Stored blocks cost 5 bytes per 64 KiB, plus header and trailer.
        assert!(stored.len() <= BLOCK + 5 * 17 + 18, "{} bytes", stored.len());
        assert!(inflate(&stored) == noise);
        let text = b"2.AAECAwQFBgcICQoLDA0ODw==|".repeat(BLOCK / 26 + 1)[..BLOCK].to_vec();
        for block in [vec![0u8; BLOCK], sample(BLOCK), text] {
            assert_eq!(stretches(&block), vec![(0..BLOCK, false)]);
            assert!(member.make(&block).unwrap().len() < BLOCK * 9 / 10);
        }
        assert_eq!(stretches(&[]), vec![(0..0, false)]);
    }

    /// A database-like block: 8 KiB pages from byte 512 on (after a tar
    /// header), rows of UTF-16 text except the pages in `noisy`.
    fn pages(noisy: &[usize]) -> (Vec<u8>, Vec<std::ops::Range<usize>>) {
        const PAGE: usize = 8192;
        let noise = random(BLOCK);
        let row: Vec<u8> = "2.c2VjcmV0|Y2lwaGVy|bWFj".encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut block: Vec<u8> = row.iter().copied().cycle().take(BLOCK).collect();
        let mut expected = Vec::new();
        for &p in noisy {
            let at = 512 + p * PAGE;
            let end = (at + PAGE).min(BLOCK);
            block[at..end].copy_from_slice(&noise[at..end]);
            expected.push(at..end);
        }
        (block, expected)
    }

    #[test]
    fn random_pages_among_rows_are_stored_page_by_page() {
        // Single pages, two adjacent ones, and one cut by the block's end.
        let (block, expected) = pages(&[0, 5, 9, 10, 60, 127]);
        let found: Vec<_> =
            stretches(&block).into_iter().filter(|(_, r)| *r).map(|(range, _)| range).collect();
        let merged = vec![
            expected[0].clone(),
            expected[1].clone(),
            expected[2].start..expected[3].end,
            expected[4].clone(),
            expected[5].clone(),
        ];
        assert_eq!(found, merged);
        let mut member = Member::new(2);
        let made = member.make(&block).unwrap();
        assert!(inflate(&made) == block);
        // Smaller than deflating everything: random bytes cost deflate more
        // than the 5 bytes per 64 KiB of a stored block.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), Compression::new(2));
        enc.write_all(&block).unwrap();
        assert!(made.len() < enc.finish().unwrap().len());
        // GNU gzip reads the pieces as one stream.
        let mut gzip = std::process::Command::new("gzip")
            .args(["-dc"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        gzip.stdin.take().unwrap().write_all(&made).unwrap();
        let out = gzip.wait_with_output().unwrap();
        assert!(out.status.success());
        assert!(out.stdout == block);
    }

    #[test]
    fn random_slices_look_random_and_others_do_not() {
        let noise = random(2560 * 256);
        let passed = noise.chunks(256).filter(|s| looks_random(s)).count();
        assert!(passed * 1000 >= 2560 * 995, "{passed} of 2560 random slices");
        let (rows, _) = pages(&[]);
        assert!(!rows.chunks(256).any(looks_random));
        let index: Vec<u8> = noise
            .chunks(16)
            .take(4096)
            .flat_map(|guid| [&[6u8][..], guid, &[7, 3, 1, 0, 1, 0]].concat())
            .collect();
        assert!(!index.chunks(256).any(looks_random), "GUIDs with small integers");
        assert!(!looks_random(&[0u8; 256]));
        assert!(!looks_random(&[]));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

        /// Blocks of random, text and zero stretches at any offsets and
        /// lengths make members that GNU-compatible decoders read back.
        #[test]
        fn mixed_blocks_round_trip(parts in proptest::collection::vec((0u8..3, 1usize..40_000, proptest::prelude::any::<u64>()), 0..60)) {
            let mut block = Vec::new();
            for (kind, len, seed) in parts {
                let len = len.min(BLOCK - block.len());
                match kind {
                    0 => block.extend((seed..).flat_map(|i| Sha256::digest(i.to_le_bytes())).take(len)),
                    1 => block.extend(b"2.c2VjcmV0|Y2lwaGVy|bWFj".iter().cycle().skip(seed as usize % 7).take(len)),
                    _ => block.resize(block.len() + len, 0),
                }
            }
            // The stretches cover the block in order, without gaps.
            let mut end = 0;
            for (range, _) in stretches(&block) {
                proptest::prop_assert_eq!(range.start, end);
                end = range.end;
            }
            proptest::prop_assert_eq!(end, block.len());
            let made = Member::new(2).make(&block).unwrap();
            proptest::prop_assert!(inflate(&made) == block);
        }
    }

    #[test]
    fn a_read_back_that_finds_other_bytes_stops_the_writing_with_its_reason() {
        // The read-back reads a file of other bytes than the writer writes,
        // as if the disk had changed them: the archiver learns it mid-stream.
        let dir = tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/target")).unwrap();
        let other = dir.path().join("other");
        std::fs::write(&other, random(16 << 20)).unwrap();
        let out = File::create(dir.path().join("archive")).unwrap();
        let mut gz = ParallelGz::new(out, 2, 2, ReadBack::start_direct(&other));
        let data = sample(12 << 20);
        let written = data.chunks(BLOCK).try_for_each(|c| gz.write_all(c));
        let err = match written {
            Err(e) => e,
            Ok(()) => gz.finish().map(|_| ()).unwrap_err(),
        };
        assert!(crate::engine::readback::is_mismatch(&err), "{err}");
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
