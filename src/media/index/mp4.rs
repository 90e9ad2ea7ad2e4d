//! MP4/MOV keyframe times from the `moov` sample tables. Walks the top-level box headers to
//! `moov` (at the start with faststart, after `mdat` otherwise), reads it whole, and turns the
//! first video track's `stss`/`stts`/`ctts`, shifted by its edit list, into presentation times.
//!
//! Reads: the file's first [`HEAD_BYTES`] (pinned, cheap), one 8/16-byte header per box that
//! starts past them, and the rest of `moov`: 2 reads with faststart, 3 with `moov` at the end.
//! Does not read sample data. Fragmented MP4 keeps its samples in `moof`s, so it has no table
//! here: `NoIndex`. Every count comes from untrusted bytes and is bounded by its box's size.

use bytes::{Bytes, BytesMut};

use super::{IndexError, KeyframeIndex, RangeRead, MAX_INDEX_BYTES};

/// Bytes read at the start of the file at once: every top-level header of a usual file up to
/// `mdat`, and with faststart the start of `moov`.
const HEAD_BYTES: u64 = 4096;
/// Top-level boxes looked at before giving up on finding `moov`.
const MAX_TOP_LEVEL_BOXES: usize = 64;
/// Most samples listed when a track has no `stss` (every sample is a keyframe): three hours of
/// all-intra 60 fps video is ~650 000.
const MAX_ALL_SYNC_SAMPLES: u64 = 1 << 22;

/// The keyframe presentation times of the first video track of an MP4/MOV file, and the
/// file's duration, from its `moov` box.
pub async fn keyframes(src: &impl RangeRead) -> Result<KeyframeIndex, IndexError> {
    let moov = read_moov(src).await?;
    parse_moov(&moov)
}

fn malformed(reason: &str) -> IndexError {
    IndexError::Malformed(reason.to_owned())
}

/// The payload of the top-level `moov` box, found by reading box headers only.
async fn read_moov(src: &impl RangeRead) -> Result<Bytes, IndexError> {
    let len = src.len();
    let head = src.read(0, HEAD_BYTES.min(len)).await?;
    let mut pos = 0;
    for _ in 0..MAX_TOP_LEVEL_BOXES {
        if pos >= len {
            break;
        }
        let raw = read_span(src, &head, pos, 16.min(len - pos)).await?;
        let (kind, header, size) = box_header(&raw, len - pos)?;
        if !kind
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b" -_".contains(b))
        {
            return Err(malformed("not an MP4 box"));
        }
        match &kind {
            b"moov" if size > MAX_INDEX_BYTES => return Err(malformed("moov too large")),
            b"moov" => return read_span(src, &head, pos + header, size - header).await,
            b"moof" => return Err(IndexError::NoIndex),
            _ => pos += size,
        }
    }
    Err(IndexError::NoIndex)
}

/// `len` bytes at `start`, taken from `head` where it covers them.
async fn read_span(
    src: &impl RangeRead,
    head: &Bytes,
    start: u64,
    len: u64,
) -> Result<Bytes, IndexError> {
    let head_len = head.len() as u64;
    let end = start + len;
    let out = if end <= head_len {
        head.slice(start as usize..end as usize)
    } else if start < head_len {
        let mut out = BytesMut::from(&head[start as usize..]);
        out.extend_from_slice(&src.read(head_len, end - head_len).await?);
        out.freeze()
    } else {
        src.read(start, len).await?
    };
    if out.len() as u64 != len {
        return Err(malformed("file shorter than its length"));
    }
    Ok(out)
}

/// A box's type, header length and total size, from its first 8 or 16 bytes; `room` is what
/// is left of the file or the parent box.
fn box_header(raw: &[u8], room: u64) -> Result<([u8; 4], u64, u64), IndexError> {
    let kind = raw
        .get(4..8)
        .and_then(|kind| <[u8; 4]>::try_from(kind).ok());
    let (Some(size), Some(kind)) = (u32_at(raw, 0), kind) else {
        return Err(malformed("truncated box header"));
    };
    let (header, size) = match size {
        0 => (8, room),
        1 => (
            16,
            u64_at(raw, 8).ok_or_else(|| malformed("truncated box header"))?,
        ),
        n => (8, u64::from(n)),
    };
    if size < header || size > room {
        return Err(malformed("box size out of range"));
    }
    Ok((kind, header, size))
}

/// A box as (type, payload).
type Mp4Box<'a> = ([u8; 4], &'a [u8]);

/// The child boxes of a container's payload.
fn children(mut data: &[u8]) -> Result<Vec<Mp4Box<'_>>, IndexError> {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let (kind, header, size) = box_header(data, data.len() as u64)?;
        out.push((kind, &data[header as usize..size as usize]));
        data = &data[size as usize..];
    }
    Ok(out)
}

/// The payload of the first child of type `kind`, if any.
fn find<'a>(data: &'a [u8], kind: &[u8; 4]) -> Result<Option<&'a [u8]>, IndexError> {
    let found = children(data)?.into_iter().find(|(k, _)| k == kind);
    Ok(found.map(|(_, payload)| payload))
}

/// The payload of the first child of type `kind`, which must be there.
fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Result<&'a [u8], IndexError> {
    find(data, kind)?
        .ok_or_else(|| IndexError::Malformed(format!("no {}", String::from_utf8_lossy(kind))))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

/// The version and the entries (`entry_count` × `width(version)` bytes) of a full box laid out
/// as `version/flags, entry_count, entries`.
fn table(payload: &[u8], width: impl Fn(u8) -> usize) -> Result<(u8, &[u8]), IndexError> {
    let count = u32_at(payload, 4).ok_or_else(|| malformed("truncated table"))?;
    let (version, width) = (payload[0], width(payload[0]));
    let entries = &payload[8..];
    if count as usize > entries.len() / width {
        return Err(malformed("table count exceeds its box"));
    }
    Ok((version, &entries[..count as usize * width]))
}

/// (timescale, duration) of an `mvhd` or `mdhd`; the duration is `None` when unknown.
fn scale_and_duration(payload: &[u8]) -> Result<(u64, Option<u64>), IndexError> {
    let fields = match payload.first() {
        Some(1) => u32_at(payload, 20).zip(u64_at(payload, 24)),
        Some(_) => u32_at(payload, 12).zip(u32_at(payload, 16).map(|d| match d {
            u32::MAX => u64::MAX,
            d => u64::from(d),
        })),
        None => None,
    };
    let (scale, duration) = fields.ok_or_else(|| malformed("truncated mvhd/mdhd"))?;
    if scale == 0 {
        return Err(malformed("zero timescale"));
    }
    let known = duration != 0 && duration != u64::MAX;
    Ok((u64::from(scale), known.then_some(duration)))
}

fn parse_moov(moov: &[u8]) -> Result<KeyframeIndex, IndexError> {
    let boxes = children(moov)?;
    if boxes.iter().any(|(kind, _)| kind == b"mvex") {
        return Err(IndexError::NoIndex);
    }
    let (movie_scale, movie_duration) = scale_and_duration(child(moov, b"mvhd")?)?;
    let mut video = None;
    for (kind, trak) in &boxes {
        if kind == b"trak" && handler(trak)? == *b"vide" {
            video = Some(*trak);
            break;
        }
    }
    let trak = video.ok_or(IndexError::NoIndex)?;
    let mdia = child(trak, b"mdia")?;
    let (scale, media_duration) = scale_and_duration(child(mdia, b"mdhd")?)?;
    let stbl = child(child(mdia, b"minf")?, b"stbl")?;
    let mut times = keyframe_times(stbl, scale, edit_shift(trak, movie_scale)?)?;
    times.sort_by(f64::total_cmp);
    times.dedup();
    let duration = match (movie_duration, media_duration) {
        (Some(d), _) => d as f64 / movie_scale as f64,
        (None, Some(d)) => d as f64 / scale as f64,
        (None, None) => 0.0,
    };
    Ok(KeyframeIndex { times, duration })
}

/// A track's `mdia/hdlr` handler type (`vide`, `soun`, …).
fn handler(trak: &[u8]) -> Result<[u8; 4], IndexError> {
    let hdlr = child(child(trak, b"mdia")?, b"hdlr")?;
    let kind = hdlr.get(8..12).and_then(|kind| kind.try_into().ok());
    kind.ok_or_else(|| malformed("truncated hdlr"))
}

/// Keyframe presentation times in seconds, in sample order: each sync sample's decode time
/// (`stts`) plus its composition offset (`ctts`), shifted by the edit list.
fn keyframe_times(
    stbl: &[u8],
    scale: u64,
    (media_time, delay): (i128, f64),
) -> Result<Vec<f64>, IndexError> {
    let stts = table(child(stbl, b"stts")?, |_| 8)?.1;
    let mut dts = Runs::new(stts, false);
    // Version 0 offsets are unsigned by the spec, but muxers write negative ones there too;
    // like ffmpeg, read both versions as signed.
    let mut cts = match find(stbl, b"ctts")? {
        Some(ctts) => Some(Runs::new(table(ctts, |_| 8)?.1, true)),
        None => None,
    };
    let mut times = Vec::new();
    for n in sync_samples(stbl, stts)? {
        let (start, base, delta) = dts.seek(n).ok_or_else(|| malformed("stts too short"))?;
        let offset = match &mut cts {
            Some(cts) => cts.seek(n).ok_or_else(|| malformed("ctts too short"))?.2,
            None => 0,
        };
        let pts = base + i128::from(n - start) * delta + offset - media_time;
        times.push(pts as f64 / scale as f64 + delay);
    }
    if times.is_empty() {
        return Err(IndexError::NoIndex);
    }
    Ok(times)
}

/// The 1-based numbers of the sync samples, ascending: from `stss`, or every sample (as many
/// as `stts` counts) without one.
fn sync_samples(stbl: &[u8], stts: &[u8]) -> Result<Box<dyn Iterator<Item = u64>>, IndexError> {
    let Some(stss) = find(stbl, b"stss")? else {
        let counts = stts.chunks_exact(8).filter_map(|run| u32_at(run, 0));
        let total: u64 = counts.map(u64::from).sum();
        if total > MAX_ALL_SYNC_SAMPLES {
            return Err(malformed("too many samples"));
        }
        return Ok(Box::new(1..=total));
    };
    let entries = table(stss, |_| 4)?.1;
    let mut numbers: Vec<u32> = entries
        .chunks_exact(4)
        .filter_map(|e| u32_at(e, 0))
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    if numbers.first() == Some(&0) {
        return Err(malformed("sample number 0"));
    }
    Ok(Box::new(numbers.into_iter().map(u64::from)))
}

/// A run-length sample table (`stts`, `ctts`: 8-byte entries of a sample count and a value
/// they share) walked forward by sample number.
struct Runs<'a> {
    /// The entries from the current run on.
    entries: &'a [u8],
    /// Whether values are signed 32-bit.
    signed: bool,
    /// The 1-based number of the current run's first sample.
    start: u64,
    /// Σ count × value over the runs before the current one (the decode time, for `stts`).
    base: i128,
}

impl<'a> Runs<'a> {
    fn new(entries: &'a [u8], signed: bool) -> Self {
        let (start, base) = (1, 0);
        Self {
            entries,
            signed,
            start,
            base,
        }
    }

    /// (first sample number, base, value) of the run holding sample `n`, which may not be
    /// before the previous one asked for.
    fn seek(&mut self, n: u64) -> Option<(u64, i128, i128)> {
        loop {
            let count = u64::from(u32_at(self.entries, 0)?);
            let raw = u32_at(self.entries, 4)?;
            let value = match self.signed {
                true => i128::from(raw as i32),
                false => i128::from(raw),
            };
            if n < self.start + count {
                return Some((self.start, self.base, value));
            }
            self.start += count;
            self.base += i128::from(count) * value;
            self.entries = &self.entries[8..];
        }
    }
}

/// (media time where presentation starts, seconds of leading empty edits) from `edts/elst`;
/// (0, 0) without an edit list.
fn edit_shift(trak: &[u8], movie_scale: u64) -> Result<(i128, f64), IndexError> {
    let elst = match find(trak, b"edts")? {
        Some(edts) => find(edts, b"elst")?,
        None => None,
    };
    let Some(elst) = elst else {
        return Ok((0, 0.0));
    };
    let width = |version| if version == 1 { 20 } else { 12 };
    let (version, entries) = table(elst, width)?;
    let mut delay = 0.0;
    for entry in entries.chunks_exact(width(version)) {
        let fields = match version {
            1 => u64_at(entry, 0).zip(u64_at(entry, 8).map(|t| t as i64)),
            _ => u32_at(entry, 0)
                .map(u64::from)
                .zip(u32_at(entry, 4).map(|t| i64::from(t as i32))),
        };
        let Some((duration, media_time)) = fields else {
            break;
        };
        if media_time != -1 {
            return Ok((i128::from(media_time), delay));
        }
        delay += duration as f64 / movie_scale as f64;
    }
    Ok((0, delay))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use proptest::prelude::*;
    use rand::{rngs::StdRng, RngCore, SeedableRng};

    use super::*;
    use crate::media::index::FileRange;

    /// A file as a [`RangeRead`] that counts the reads and bytes asked of it.
    struct Counting {
        file: FileRange,
        reads: AtomicUsize,
        bytes: AtomicU64,
    }

    impl RangeRead for Counting {
        fn len(&self) -> u64 {
            self.file.len()
        }

        async fn read(&self, start: u64, len: u64) -> std::io::Result<Bytes> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(len, Ordering::Relaxed);
            self.file.read(start, len).await
        }
    }

    /// Bytes in memory as a [`RangeRead`].
    struct Mem(Bytes);

    impl RangeRead for Mem {
        fn len(&self) -> u64 {
            self.0.len() as u64
        }

        async fn read(&self, start: u64, len: u64) -> std::io::Result<Bytes> {
            let start = usize::try_from(start)
                .unwrap_or(usize::MAX)
                .min(self.0.len());
            let end = start.saturating_add(len as usize).min(self.0.len());
            Ok(self.0.slice(start..end))
        }
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name)
    }

    fn run(tool: &str, args: &[&str]) -> String {
        let out = Command::new(tool).args(args).output().unwrap_or_else(|err| {
            panic!("`{tool}` is required for this test: install it with `apt-get install -y ffmpeg` ({err})")
        });
        assert!(
            out.status.success(),
            "{tool} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// ffprobe's keyframe presentation times for the first video stream.
    fn ffprobe_keyframes(path: &Path) -> Vec<f64> {
        let args = [
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-skip_frame",
            "nokey",
        ];
        let args = [
            &args[..],
            &["-show_entries", "frame=pts_time", "-of", "csv=p=0"],
        ]
        .concat();
        let out = run("ffprobe", &[&args[..], &[path.to_str().unwrap()]].concat());
        let fields = out.lines().filter_map(|line| line.split(',').next());
        fields
            .filter(|f| !f.trim().is_empty())
            .map(|f| f.trim().parse().unwrap())
            .collect()
    }

    fn ffprobe_duration(path: &Path) -> f64 {
        let args = [
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ];
        run("ffprobe", &[&args[..], &[path.to_str().unwrap()]].concat())
            .trim()
            .parse()
            .unwrap()
    }

    fn assert_times(actual: &[f64], expected: &[f64], tolerance: f64) {
        assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() <= tolerance, "{actual:?} vs {expected:?}");
        }
    }

    async fn index_of(path: &Path) -> Result<KeyframeIndex, IndexError> {
        keyframes(&FileRange::open(path).unwrap()).await
    }

    async fn matches_ffprobe(path: &Path) -> KeyframeIndex {
        let index = index_of(path).await.unwrap();
        assert_times(&index.times, &ffprobe_keyframes(path), 0.001);
        assert!(
            (index.duration - ffprobe_duration(path)).abs() < 0.001,
            "{index:?}"
        );
        index
    }

    #[tokio::test]
    async fn faststart_fixture_matches_ffprobe() {
        let index = matches_ffprobe(&fixture("faststart.mp4")).await;
        assert_eq!(index.times, [0.0, 2.0, 4.0, 6.0, 8.0]);
    }

    #[tokio::test]
    async fn moov_at_end_fixture_matches_ffprobe() {
        let index = matches_ffprobe(&fixture("moov-at-end.mp4")).await;
        assert_eq!(index.times.len(), 30);
    }

    /// (reads, bytes read, where `moov` starts, its size) for a fixture.
    async fn count_reads(name: &str) -> (usize, u64, u64, u64) {
        let file = FileRange::open(fixture(name)).unwrap();
        let src = Counting {
            file,
            reads: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
        };
        keyframes(&src).await.unwrap();
        let bytes = std::fs::read(fixture(name)).unwrap();
        let moov = box_at(&bytes, b"moov");
        let size = u32_at(&bytes, moov).unwrap();
        let (reads, read) = (src.reads.into_inner(), src.bytes.into_inner());
        (reads, read, moov as u64, size.into())
    }

    #[tokio::test]
    async fn moov_at_end_takes_the_head_a_header_and_moov() {
        let (reads, bytes, _, moov_size) = count_reads("moov-at-end.mp4").await;
        assert_eq!(reads, 3);
        assert_eq!(bytes, HEAD_BYTES + 16 + moov_size - 8);
    }

    #[tokio::test]
    async fn faststart_reads_the_head_and_the_rest_of_moov() {
        let (reads, bytes, moov_start, moov_size) = count_reads("faststart.mp4").await;
        assert_eq!(reads, 2);
        assert_eq!(bytes, moov_start + moov_size);
    }

    /// Keyframes forced by the encoder, and the frame duration (25 fps).
    const FORCED: [f64; 5] = [0.0, 1.5, 4.0, 9.2, 13.36];
    const FRAME: f64 = 0.04;

    /// A 15 s clip, audio track first, H.264 with B-frames keyframed only at [`FORCED`].
    fn encode(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
        let path = dir.join(name);
        let forced = FORCED.map(|t| t.to_string()).join(",");
        #[rustfmt::skip]
        let args = [
            "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=15",
            "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=15",
            "-map", "0:a", "-map", "1:v", "-c:a", "aac", "-b:a", "32k",
            "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-threads", "1",
            "-force_key_frames", &forced, "-x264-params", "keyint=250:scenecut=0",
        ];
        run(
            "ffmpeg",
            &[&args[..], extra, &[path.to_str().unwrap()]].concat(),
        );
        path
    }

    async fn finds_forced_keyframes(name: &str, extra: &[&str]) {
        let dir = tempfile::tempdir().unwrap();
        let path = encode(dir.path(), name, extra);
        let index = matches_ffprobe(&path).await;
        assert_times(&index.times, &FORCED, FRAME);
        assert!((index.duration - 15.0).abs() < 0.1, "{index:?}");
    }

    #[tokio::test]
    async fn forced_keyframes_with_faststart() {
        finds_forced_keyframes("clip.mp4", &["-movflags", "+faststart"]).await;
    }

    #[tokio::test]
    async fn forced_keyframes_with_moov_at_end() {
        finds_forced_keyframes("clip.mp4", &[]).await;
    }

    #[tokio::test]
    async fn forced_keyframes_in_mov() {
        finds_forced_keyframes("clip.mov", &["-movflags", "+faststart"]).await;
    }

    #[tokio::test]
    async fn fragmented_mp4_has_no_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = encode(
            dir.path(),
            "frag.mp4",
            &["-movflags", "frag_keyframe+empty_moov"],
        );
        assert!(matches!(index_of(&path).await, Err(IndexError::NoIndex)));
    }

    async fn index_bytes(bytes: Vec<u8>) -> Result<KeyframeIndex, IndexError> {
        keyframes(&Mem(bytes.into())).await
    }

    fn faststart_bytes() -> Vec<u8> {
        std::fs::read(fixture("faststart.mp4")).unwrap()
    }

    /// Where the first `kind` box starts (its size field).
    fn box_at(bytes: &[u8], kind: &[u8; 4]) -> usize {
        bytes.windows(4).position(|w| w == kind).unwrap() - 4
    }

    /// `bytes` with the 4 bytes at `offset` in the first `kind` box replaced.
    fn patched(mut bytes: Vec<u8>, kind: &[u8; 4], offset: usize, with: [u8; 4]) -> Vec<u8> {
        let at = box_at(&bytes, kind) + offset;
        bytes[at..at + 4].copy_from_slice(&with);
        bytes
    }

    #[tokio::test]
    async fn an_empty_file_has_no_index() {
        assert!(matches!(
            index_bytes(Vec::new()).await,
            Err(IndexError::NoIndex)
        ));
    }

    #[tokio::test]
    async fn random_bytes_are_malformed() {
        let mut rng = StdRng::seed_from_u64(7);
        for len in [3, 8, 100, 5000] {
            let mut bytes = vec![0; len];
            rng.fill_bytes(&mut bytes);
            assert!(matches!(
                index_bytes(bytes).await,
                Err(IndexError::Malformed(_))
            ));
        }
    }

    #[tokio::test]
    async fn a_truncated_moov_is_malformed() {
        let mut bytes = faststart_bytes();
        bytes.truncate(box_at(&bytes, b"moov") + 1000);
        assert!(matches!(
            index_bytes(bytes).await,
            Err(IndexError::Malformed(_))
        ));
        let mut bytes = std::fs::read(fixture("moov-at-end.mp4")).unwrap();
        bytes.truncate(bytes.len() - 100);
        assert!(matches!(
            index_bytes(bytes).await,
            Err(IndexError::Malformed(_))
        ));
    }

    async fn assert_malformed(bytes: Vec<u8>, reason: &str) {
        match index_bytes(bytes).await {
            Err(IndexError::Malformed(why)) => assert_eq!(why, reason),
            other => panic!("expected Malformed({reason}), got {other:?}"),
        }
    }

    #[tokio::test]
    async fn absurd_sizes_and_counts_are_malformed() {
        let huge_box = [&[0, 0, 0, 1][..], b"mdat", &u64::MAX.to_be_bytes()].concat();
        assert_malformed(huge_box, "box size out of range").await;
        let tiny_moov = patched(faststart_bytes(), b"moov", 0, [0, 0, 0, 3]);
        assert_malformed(tiny_moov, "box size out of range").await;
        for kind in [b"stss", b"stts", b"ctts"] {
            let huge_count = patched(faststart_bytes(), kind, 12, [0xff; 4]);
            assert_malformed(huge_count, "table count exceeds its box").await;
        }
        let all_sync = patched(faststart_bytes(), b"stss", 4, *b"free");
        let huge_run = patched(all_sync, b"stts", 16, [0xff; 4]);
        assert_malformed(huge_run, "too many samples").await;
    }

    #[tokio::test]
    async fn without_stss_every_frame_is_a_keyframe() {
        let bytes = patched(faststart_bytes(), b"stss", 4, *b"free");
        let index = index_bytes(bytes).await.unwrap();
        assert_eq!(index.times.len(), 250);
        assert_eq!(index.times[..2], [0.0, FRAME]);
    }

    proptest! {
        #[test]
        fn corrupted_moov_never_panics(edits in prop::collection::vec((0..6000usize, any::<u8>()), 1..8)) {
            let mut bytes = faststart_bytes();
            let moov = box_at(&bytes, b"moov");
            for (at, byte) in edits {
                let at = (moov + at).min(bytes.len() - 1);
                bytes[at] = byte;
            }
            let _ = futures::executor::block_on(index_bytes(bytes));
        }
    }
}
