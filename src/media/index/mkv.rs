//! Matroska/WebM keyframe index: the video track's `CuePoint` times from the `Cues` element.
//!
//! Reads, in order:
//! 1. the file's head ([`HEAD_BYTES`]): the EBML header, then the Segment's top-level
//!    elements that fit in it: `SeekHead`, `Info` (timestamp scale, duration), `Tracks` (which
//!    track is video);
//! 2. whatever the `SeekHead` points at that the head did not hold, usually only the `Cues`
//!    (ffmpeg and mkvmerge put them at the end, in a torrent's pinned tail): one read of up to
//!    [`CHUNK_BYTES`], a second only for a bigger element;
//! 3. only if no `SeekHead` lists the `Cues`: a walk over top-level element headers, skipping
//!    each Cluster by its size without reading its body, capped at [`MAX_HEADER_READS`] reads.
//!
//! No `Cues` (ffmpeg writes none to a pipe or with `-live 1`) or no `Duration` →
//! [`IndexError::NoIndex`]. Sizes are never trusted: every child must fit its parent, all reads
//! together stay under [`MAX_INDEX_BYTES`], and every loop consumes bytes or a counted read.
//!
//! Not here: cutting the playlist (the HLS session), MP4 (`mp4.rs`), codec probing (ffprobe).

use bytes::{Bytes, BytesMut};

use super::{IndexError, KeyframeIndex, RangeRead, MAX_INDEX_BYTES};

type Result<T> = std::result::Result<T, IndexError>;

/// The first read: EBML header, `SeekHead`, `Info` and `Tracks` fit in this in practice.
const HEAD_BYTES: u64 = 64 << 10;
/// The first read of an element found through the `SeekHead` (a 2-hour film's Cues are ~50 KB).
const CHUNK_BYTES: u64 = 64 << 10;
/// Most element headers read one by one when no `SeekHead` lists the `Cues`.
const MAX_HEADER_READS: usize = 64;
/// An element header: a 4-byte ID and an 8-byte size at most.
const MAX_HEADER_LEN: u64 = 12;
/// Most `Seek` entries kept.
const MAX_SEEKS: usize = 1024;
/// Most elements read through `Seek` entries (they may point at further `SeekHead`s).
const MAX_SEEKS_FOLLOWED: usize = 8;
/// Most `(CueTime, CueTrack)` pairs kept (a 3-hour film with 1 s GOPs has ~11,000).
const MAX_CUE_PAIRS: usize = 1 << 20;

const EBML: u32 = 0x1A45_DFA3;
const DOC_TYPE: u32 = 0x4282;
const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const SEEK: u32 = 0x4DBB;
const SEEK_ID: u32 = 0x53AB;
const SEEK_POSITION: u32 = 0x53AC;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_TYPE: u32 = 0x83;
const TRACK_TYPE_VIDEO: u64 = 1;
const CUES: u32 = 0x1C53_BB6B;
const CUE_POINT: u32 = 0xBB;
const CUE_TIME: u32 = 0xB3;
const CUE_TRACK_POSITIONS: u32 = 0xB7;
const CUE_TRACK: u32 = 0xF7;

/// The video track's keyframe times from a Matroska or WebM file's `Cues`, with a few range
/// reads (two for a file written by ffmpeg or mkvmerge: head and `Cues`).
///
/// Cue points of the video track are kept; if none name it but all name one track, that one.
pub async fn keyframes(src: &impl RangeRead) -> Result<KeyframeIndex> {
    let file_len = src.len();
    if file_len == 0 {
        return Err(malformed("empty file"));
    }
    let head = src.read(0, HEAD_BYTES.min(file_len)).await?;
    let (seg_start, seg_end) = segment(&head, file_len)?;
    let mut reader = Reader {
        src,
        spent: head.len() as u64,
        head,
        file_len,
        seg_start,
        seg_end,
    };
    let mut found = Found::default();
    let stop = reader.walk(&mut found, seg_start, false).await?;
    reader.follow_seeks(&mut found).await?;
    if found.cues.is_none() {
        reader.walk(&mut found, stop, true).await?;
        reader.follow_seeks(&mut found).await?;
    }
    index(found)
}

fn malformed(reason: &str) -> IndexError {
    IndexError::Malformed(reason.to_owned())
}

/// An element header: its ID (marker bit kept), its size (`None` = unknown), its length.
struct Header {
    id: u32,
    size: Option<u64>,
    len: usize,
}

/// The EBML variable-length integer at the start of `buf` and its length. IDs keep their
/// length-marker bit, sizes drop it.
fn vint(buf: &[u8], max_len: usize, keep_marker: bool) -> Result<(u64, usize)> {
    let truncated = || malformed("truncated element header");
    let first = *buf.first().ok_or_else(truncated)?;
    let len = first.leading_zeros() as usize + 1;
    if len > max_len {
        return Err(malformed("invalid variable-length integer"));
    }
    let rest = buf.get(1..len).ok_or_else(truncated)?;
    let marker = if keep_marker { 0 } else { 0x80 >> (len - 1) };
    let value = rest
        .iter()
        .fold(u64::from(first ^ marker), |v, &b| v << 8 | u64::from(b));
    Ok((value, len))
}

/// The element header at the start of `buf`.
fn header(buf: &[u8]) -> Result<Header> {
    let (id, id_len) = vint(buf, 4, true)?;
    let (size, size_len) = vint(&buf[id_len..], 8, false)?;
    let unknown = size == (1 << (7 * size_len)) - 1;
    let size = (!unknown).then_some(size);
    Ok(Header {
        id: id as u32,
        size,
        len: id_len + size_len,
    })
}

/// The element at the start of `buf`, which must hold all of it: `(id, body, total length)`.
fn child(buf: &[u8]) -> Result<(u32, &[u8], usize)> {
    let h = header(buf)?;
    let size = h
        .size
        .ok_or_else(|| malformed("unknown size inside an element"))?;
    let end = usize::try_from(size)
        .ok()
        .and_then(|size| h.len.checked_add(size))
        .filter(|&end| end <= buf.len())
        .ok_or_else(|| malformed("element overruns its parent"))?;
    Ok((h.id, &buf[h.len..end], end))
}

/// The child elements of a body, `(id, body)`, parsed lazily (nothing allocated); stops after
/// the first error.
fn children(body: &[u8]) -> impl Iterator<Item = Result<(u32, &[u8])>> {
    let mut rest = body;
    std::iter::from_fn(move || {
        (!rest.is_empty()).then(|| {
            let parsed = child(rest);
            rest = parsed
                .as_ref()
                .map_or(&[][..], |&(_, _, used)| &rest[used..]);
            parsed.map(|(id, data, _)| (id, data))
        })
    })
}

fn uint(data: &[u8]) -> Result<u64> {
    if data.len() > 8 {
        return Err(malformed("integer longer than 8 bytes"));
    }
    Ok(data.iter().fold(0, |v, &b| v << 8 | u64::from(b)))
}

fn float(data: &[u8]) -> Result<f64> {
    match *data {
        [] => Ok(0.0),
        [a, b, c, d] => Ok(f32::from_be_bytes([a, b, c, d]).into()),
        [a, b, c, d, e, f, g, h] => Ok(f64::from_be_bytes([a, b, c, d, e, f, g, h])),
        _ => Err(malformed("float neither 4 nor 8 bytes")),
    }
}

/// Checks the EBML header (DocType `matroska` or `webm`) and returns the Segment's data range
/// in the file (an unknown or too large size ends at the end of the file).
fn segment(head: &[u8], file_len: u64) -> Result<(u64, u64)> {
    if header(head).map(|h| h.id).ok() != Some(EBML) {
        return Err(malformed("not an EBML file"));
    }
    let (_, body, used) = child(head)?;
    let mut doc_type: &[u8] = b"matroska";
    for item in children(body) {
        let (id, data) = item?;
        if id == DOC_TYPE {
            doc_type = data.split(|&b| b == 0).next().unwrap_or_default();
        }
    }
    if doc_type != b"matroska" && doc_type != b"webm" {
        return Err(malformed("DocType is neither matroska nor webm"));
    }
    let seg = header(&head[used..])?;
    if seg.id != SEGMENT {
        return Err(malformed("no Segment after the EBML header"));
    }
    let start = (used + seg.len) as u64;
    let end = seg
        .size
        .map_or(file_len, |size| start.saturating_add(size).min(file_len));
    Ok((start, end))
}

/// What the index needs, gathered from whichever elements were read.
#[derive(Default)]
struct Found {
    /// `(element id, absolute position)` from the `SeekHead`s read.
    seeks: Vec<(u32, u64)>,
    /// Positions of the `SeekHead`s already read.
    seek_heads: Vec<u64>,
    /// `(TimestampScale, Duration)`.
    info: Option<(u64, Option<f64>)>,
    tracks_read: bool,
    video_track: Option<u64>,
    /// `(CueTime, CueTrack)` pairs.
    cues: Option<Vec<(u64, u64)>>,
}

impl Found {
    fn wants(&self, id: u32, pos: u64) -> bool {
        match id {
            SEEK_HEAD => !self.seek_heads.contains(&pos),
            INFO => self.info.is_none(),
            TRACKS => !self.tracks_read,
            CUES => self.cues.is_none(),
            _ => false,
        }
    }

    fn take(&mut self, id: u32, pos: u64, body: &[u8], seg_start: u64) -> Result<()> {
        match id {
            SEEK_HEAD => {
                self.seek_heads.push(pos);
                let room = MAX_SEEKS.saturating_sub(self.seeks.len());
                self.seeks
                    .extend(seek_entries(body, seg_start)?.into_iter().take(room));
            }
            INFO => self.info = Some(info(body)?),
            TRACKS => {
                self.tracks_read = true;
                self.video_track = video_track(body)?;
            }
            CUES => self.cues = Some(cue_pairs(body)?),
            _ => {}
        }
        Ok(())
    }
}

/// `(SeekID, position in the file)` of each `Seek` (SeekPosition is relative to the Segment).
fn seek_entries(body: &[u8], seg_start: u64) -> Result<Vec<(u32, u64)>> {
    let mut entries = Vec::new();
    for item in children(body) {
        let (id, seek) = item?;
        if id != SEEK {
            continue;
        }
        let (mut target, mut position) = (None, None);
        for field in children(seek) {
            match field? {
                (SEEK_ID, data) => target = u32::try_from(uint(data)?).ok(),
                (SEEK_POSITION, data) => position = seg_start.checked_add(uint(data)?),
                _ => {}
            }
        }
        if let (Some(target), Some(position)) = (target, position) {
            entries.push((target, position));
        }
    }
    Ok(entries)
}

/// `(TimestampScale, Duration)` from `Info`, the duration in TimestampScale units.
fn info(body: &[u8]) -> Result<(u64, Option<f64>)> {
    let (mut scale, mut duration) = (1_000_000, None);
    for field in children(body) {
        match field? {
            (TIMESTAMP_SCALE, data) => scale = uint(data)?,
            (DURATION, data) => duration = Some(float(data)?),
            _ => {}
        }
    }
    if scale == 0 {
        return Err(malformed("TimestampScale is 0"));
    }
    Ok((scale, duration))
}

/// The number of the first video track in `Tracks`.
fn video_track(body: &[u8]) -> Result<Option<u64>> {
    for item in children(body) {
        let (id, entry) = item?;
        if id != TRACK_ENTRY {
            continue;
        }
        let (mut number, mut kind) = (None, None);
        for field in children(entry) {
            match field? {
                (TRACK_NUMBER, data) => number = Some(uint(data)?),
                (TRACK_TYPE, data) => kind = Some(uint(data)?),
                _ => {}
            }
        }
        if kind == Some(TRACK_TYPE_VIDEO) && number.is_some() {
            return Ok(number);
        }
    }
    Ok(None)
}

/// `(CueTime, CueTrack)` for every track position of every `CuePoint`.
fn cue_pairs(body: &[u8]) -> Result<Vec<(u64, u64)>> {
    let mut pairs = Vec::new();
    for item in children(body) {
        let (id, point) = item?;
        if id != CUE_POINT {
            continue;
        }
        let mut time = None;
        for field in children(point) {
            if let (CUE_TIME, data) = field? {
                time = Some(uint(data)?);
            }
        }
        let Some(time) = time else { continue };
        for field in children(point) {
            let (CUE_TRACK_POSITIONS, positions) = field? else {
                continue;
            };
            for field in children(positions) {
                if let (CUE_TRACK, data) = field? {
                    pairs.push((time, uint(data)?));
                }
            }
        }
        if pairs.len() > MAX_CUE_PAIRS {
            return Err(malformed("too many cue points"));
        }
    }
    Ok(pairs)
}

/// The keyframe index from what was found: sorted, deduplicated seconds of the chosen track.
fn index(found: Found) -> Result<KeyframeIndex> {
    let cues = found.cues.ok_or(IndexError::NoIndex)?;
    let (scale, duration) = found.info.ok_or_else(|| malformed("no Info element"))?;
    // A VOD playlist needs the length of its last segment: without it, no index.
    let duration = duration.ok_or(IndexError::NoIndex)?;
    let tick = scale as f64 / 1e9;
    let duration = duration * tick;
    if !(duration.is_finite() && duration > 0.0) {
        return Err(malformed("invalid Duration"));
    }
    let track = cue_track(&cues, found.video_track).ok_or(IndexError::NoIndex)?;
    let mut times: Vec<f64> = cues
        .iter()
        .filter(|&&(_, t)| t == track)
        .map(|&(time, _)| time as f64 * tick)
        .collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    Ok(KeyframeIndex { times, duration })
}

/// The video track if some cue names it, else the only track the cues name.
fn cue_track(cues: &[(u64, u64)], video: Option<u64>) -> Option<u64> {
    if let Some(video) = video.filter(|&v| cues.iter().any(|&(_, t)| t == v)) {
        return Some(video);
    }
    let first = cues.first()?.1;
    cues.iter().all(|&(_, t)| t == first).then_some(first)
}

/// Range reads of one file, served from the head when it holds the bytes, within a budget.
struct Reader<'a, R> {
    src: &'a R,
    head: Bytes,
    spent: u64,
    file_len: u64,
    seg_start: u64,
    seg_end: u64,
}

impl<R: RangeRead> Reader<'_, R> {
    async fn read(&mut self, start: u64, len: u64) -> Result<Bytes> {
        self.spent = self.spent.saturating_add(len);
        if self.spent > MAX_INDEX_BYTES {
            return Err(malformed("index larger than MAX_INDEX_BYTES"));
        }
        Ok(self.src.read(start, len).await?)
    }

    /// Whether the head holds `len` bytes at `pos`, or all the file has from `pos` on.
    fn in_head(&self, pos: u64, len: u64) -> bool {
        let head_len = self.head.len() as u64;
        pos.saturating_add(len) <= head_len || (pos < head_len && head_len == self.file_len)
    }

    /// The bytes from `pos` on: the rest of the head, or one read of up to `len`.
    async fn at(&mut self, pos: u64, len: u64) -> Result<Bytes> {
        if self.in_head(pos, MAX_HEADER_LEN) {
            return Ok(self.head.slice(pos as usize..));
        }
        let len = len.min(self.seg_end.saturating_sub(pos));
        self.read(pos, len).await
    }

    /// The body of the element `id` at `pos`, which must have a known size within the Segment.
    async fn element(&mut self, pos: u64, id: u32) -> Result<Bytes> {
        if pos < self.seg_start || pos >= self.seg_end {
            return Err(malformed("SeekPosition outside the Segment"));
        }
        let first = self.at(pos, CHUNK_BYTES).await?;
        let h = header(&first)?;
        if h.id != id {
            return Err(malformed("SeekHead points at another element"));
        }
        let size = h
            .size
            .ok_or_else(|| malformed("index element of unknown size"))?;
        let total = (h.len as u64).saturating_add(size);
        if total > MAX_INDEX_BYTES || pos.saturating_add(total) > self.seg_end {
            return Err(malformed("element overruns the Segment"));
        }
        let total = total as usize;
        if total <= first.len() {
            return Ok(first.slice(h.len..total));
        }
        let missing = total - first.len();
        let rest = self.read(pos + first.len() as u64, missing as u64).await?;
        if rest.len() != missing {
            return Err(malformed("file ends inside an element"));
        }
        let mut body = BytesMut::with_capacity(total - h.len);
        body.extend_from_slice(&first[h.len..]);
        body.extend_from_slice(&rest);
        Ok(body.freeze())
    }

    /// Walks top-level elements from `pos` by their headers, taking the ones `found` wants,
    /// until the `Cues` are found or the Segment ends; without `reads` also where the head
    /// ends, with them after [`MAX_HEADER_READS`] header reads. Returns where it stopped.
    async fn walk(&mut self, found: &mut Found, mut pos: u64, reads: bool) -> Result<u64> {
        let mut header_reads = 0;
        while pos < self.seg_end && found.cues.is_none() {
            let in_head = self.in_head(pos, MAX_HEADER_LEN);
            if !(in_head || reads && header_reads < MAX_HEADER_READS) {
                break;
            }
            header_reads += usize::from(!in_head);
            let bytes = self.at(pos, MAX_HEADER_LEN).await?;
            let h = header(&bytes)?;
            // An unknown-size element (a live recording's Cluster) can't be skipped.
            let Some(size) = h.size else { break };
            let end = pos.saturating_add(h.len as u64).saturating_add(size);
            if found.wants(h.id, pos) {
                if !reads && end > self.head.len() as u64 {
                    break;
                }
                let body = self.element(pos, h.id).await?;
                found.take(h.id, pos, &body, self.seg_start)?;
            }
            pos = end;
        }
        Ok(pos)
    }

    /// Reads what the `SeekHead`s point at that is still wanted (including further `SeekHead`s).
    async fn follow_seeks(&mut self, found: &mut Found) -> Result<()> {
        for _ in 0..MAX_SEEKS_FOLLOWED {
            let mut seeks = found.seeks.iter().copied();
            let Some((id, pos)) = seeks.find(|&(id, pos)| found.wants(id, pos)) else {
                break;
            };
            let body = self.element(pos, id).await?;
            found.take(id, pos, &body, self.seg_start)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

    use rand::{Rng, SeedableRng};

    use super::*;

    /// Keyframes of the fixture (B-frames delay its pictures by 5 ms), from `ffprobe -v error
    /// -select_streams v:0 -skip_frame nokey -show_entries frame=pts_time -of csv=p=0 FILE`.
    const FIXTURE_KEYFRAMES: [f64; 10] = [
        0.005, 2.005, 4.005, 6.005, 8.005, 10.005, 12.005, 14.005, 16.005, 18.005,
    ];

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/mkv/Sample.Movie.2019.1080p.BluRay.x264.mkv"
    );

    fn fixture() -> Vec<u8> {
        std::fs::read(FIXTURE).unwrap()
    }

    /// Bytes in memory as a [`RangeRead`] that counts the reads and bytes asked of it.
    struct Mem(Bytes, AtomicUsize, AtomicU64);

    fn mem(data: impl Into<Bytes>) -> Mem {
        Mem(data.into(), AtomicUsize::new(0), AtomicU64::new(0))
    }

    impl Mem {
        /// `(reads, bytes)` so far.
        fn spent(&self) -> (usize, u64) {
            (self.1.load(Relaxed), self.2.load(Relaxed))
        }
    }

    impl RangeRead for Mem {
        fn len(&self) -> u64 {
            self.0.len() as u64
        }

        async fn read(&self, start: u64, len: u64) -> std::io::Result<Bytes> {
            self.1.fetch_add(1, Relaxed);
            self.2.fetch_add(len, Relaxed);
            let start = start.min(self.len());
            let end = start.saturating_add(len).min(self.len());
            Ok(self.0.slice(start as usize..end as usize))
        }
    }

    /// `seconds` of ffmpeg's test picture (160x90, 25 fps) and a tone, encoded with `args`
    /// into a seekable file named `out.{ext}`, or with `ext` "pipe" to a pipe.
    fn encode(seconds: &str, args: &[&str], ext: &str) -> Bytes {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("out.{ext}"));
        let target = if ext == "pipe" {
            "pipe:1"
        } else {
            path.to_str().unwrap()
        };
        let output = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi"])
            .args(["-i", "testsrc2=size=160x90:rate=25", "-f", "lavfi"])
            .args(["-i", "sine=sample_rate=48000", "-t", seconds])
            .args(args)
            .arg(target)
            .output()
            .expect("ffmpeg not found: install it (apt-get install ffmpeg)");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "ffmpeg {args:?}: {stderr}");
        match ext {
            "pipe" => output.stdout.into(),
            _ => std::fs::read(path).unwrap().into(),
        }
    }

    fn assert_times(got: &[f64], want: &[f64], tolerance: f64) {
        let close = got
            .iter()
            .zip(want)
            .all(|(g, w)| (g - w).abs() <= tolerance);
        assert!(
            close && got.len() == want.len(),
            "got {got:?}, want {want:?}"
        );
    }

    /// An element with an 8-byte size.
    fn el(id: u32, body: &[u8]) -> Vec<u8> {
        let id = id.to_be_bytes();
        let id = &id[id.iter().take_while(|&&b| b == 0).count()..];
        let size = (body.len() as u64 | 1 << 56).to_be_bytes();
        [id, &size, body].concat()
    }

    fn uint_el(id: u32, value: u64) -> Vec<u8> {
        el(id, &value.to_be_bytes())
    }

    fn info_el(scale: u64, duration: f64) -> Vec<u8> {
        let duration = el(DURATION, &duration.to_be_bytes());
        el(INFO, &[uint_el(TIMESTAMP_SCALE, scale), duration].concat())
    }

    fn track_el(number: u64, kind: u64) -> Vec<u8> {
        let fields = [uint_el(TRACK_NUMBER, number), uint_el(TRACK_TYPE, kind)];
        el(TRACK_ENTRY, &fields.concat())
    }

    fn cue_el(time: u64, track: u64) -> Vec<u8> {
        let positions = el(CUE_TRACK_POSITIONS, &uint_el(CUE_TRACK, track));
        el(CUE_POINT, &[uint_el(CUE_TIME, time), positions].concat())
    }

    /// A file of `doc_type` with `children` in an unknown-size Segment.
    fn file_of(doc_type: &str, children: &[Vec<u8>]) -> Vec<u8> {
        let ebml = el(EBML, &el(DOC_TYPE, doc_type.as_bytes()));
        let segment = [
            0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        [ebml, segment.to_vec(), children.concat()].concat()
    }

    fn file(children: &[Vec<u8>]) -> Vec<u8> {
        file_of("matroska", children)
    }

    #[test]
    fn variable_length_integers_decode() {
        assert_eq!(vint(&[0x81], 8, false).unwrap(), (1, 1));
        assert_eq!(vint(&[0x40, 0x02], 8, false).unwrap(), (2, 2));
        assert_eq!(
            vint(&[0x1A, 0x45, 0xDF, 0xA3], 4, true).unwrap(),
            (EBML as u64, 4)
        );
        assert!(vint(&[0x40], 8, false).is_err(), "truncated");
        assert!(vint(&[0x00], 8, false).is_err(), "no marker bit");
        assert!(vint(&[0x08, 0, 0, 0, 0], 4, true).is_err(), "5-byte ID");
        assert_eq!(header(&[0xEC, 0xFF]).unwrap().size, None);
        assert_eq!(
            header(&[0xEC, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
                .unwrap()
                .size,
            None
        );
        assert_eq!(
            header(&[0xEC, 0x01, 0, 0, 0, 0, 0, 1, 0]).unwrap().size,
            Some(256)
        );
        assert_eq!(float(&[0x41, 0xA0, 0, 0]).unwrap(), 20.0);
        assert!(float(&[0; 5]).is_err());
        assert!(uint(&[0; 9]).is_err());
    }

    #[tokio::test]
    async fn fixture_keyframes_match_ffprobe() {
        let file = super::super::FileRange::open(FIXTURE).unwrap();
        let index = keyframes(&file).await.unwrap();
        assert_times(&index.times, &FIXTURE_KEYFRAMES, 1e-9);
        assert!((index.duration - 20.005).abs() < 1e-3, "{}", index.duration);
    }

    #[tokio::test]
    async fn fixture_needs_two_small_reads() {
        let src = mem(fixture());
        keyframes(&src).await.unwrap();
        let (reads, bytes) = src.spent();
        assert_eq!(reads, 2, "head and Cues");
        assert!(bytes < 200 << 10, "{bytes} bytes read");
    }

    #[tokio::test]
    async fn forced_keyframes_are_indexed_at_their_times() {
        let forced = [
            0.0, 1.5, 4.0, 9.2, 13.0, 17.64, 25.0, 31.2, 38.0, 45.0, 52.4, 58.0,
        ];
        let list = forced.map(|t| t.to_string()).join(",");
        let x264 = "keyint=250:min-keyint=10:scenecut=0";
        let args = [
            "-c:v",
            "libx264",
            "-x264-params",
            x264,
            "-force_key_frames",
            &list,
        ];
        let data = encode("60", &[&args[..], &["-c:a", "aac"]].concat(), "mkv");
        let index = keyframes(&mem(data)).await.unwrap();
        // ffmpeg forces the first frame at or after each time; AAC priming shifts all by 21 ms.
        let shift = index.times[0];
        assert!(shift < 0.04, "{shift}");
        let want = forced.map(|t| (t * 25.0_f64).ceil() / 25.0 + shift);
        assert_times(&index.times, &want, 1e-3);
        assert!((index.duration - 60.0).abs() < 0.1, "{}", index.duration);
    }

    #[tokio::test]
    async fn webm_vp9_keyframes_are_indexed() {
        let vp9 = [
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-g",
            "1000",
        ];
        let rest = ["-force_key_frames", "0,1,2.5", "-c:a", "libopus"];
        let data = encode("4", &[&vp9[..], &rest].concat(), "webm");
        let index = keyframes(&mem(data)).await.unwrap();
        assert_times(&index.times, &[0.0, 1.0, 2.5], 0.04);
        assert!((index.duration - 4.0).abs() < 0.1, "{}", index.duration);
    }

    /// `-reserve_index_space` makes ffmpeg write the Cues before the Clusters.
    #[tokio::test]
    async fn cues_at_the_front_are_read_with_the_head_alone() {
        let args = [
            "-c:v",
            "libx264",
            "-g",
            "50",
            "-c:a",
            "aac",
            "-reserve_index_space",
            "4096",
        ];
        let src = mem(encode("10", &args, "mkv"));
        assert_eq!(keyframes(&src).await.unwrap().times.len(), 5);
        assert_eq!(src.spent().0, 1);
    }

    /// ffmpeg's Matroska muxer writes Cues only when it can seek back: piped, it writes none
    /// (and an unknown-size Segment); `-cluster_time_limit` makes it 300 Clusters.
    #[tokio::test]
    async fn piped_file_without_cues_has_no_index_after_bounded_reads() {
        let args = [
            "-c:v",
            "libx264",
            "-g",
            "12",
            "-cluster_time_limit",
            "200",
            "-f",
            "matroska",
        ];
        let data = encode("60", &args, "pipe");
        assert!(
            !data.windows(4).any(|w| w == CUES.to_be_bytes()),
            "the file has Cues"
        );
        let src = mem(data);
        assert!(matches!(keyframes(&src).await, Err(IndexError::NoIndex)));
        let (reads, bytes) = src.spent();
        assert!(reads <= 1 + MAX_HEADER_READS, "{reads} reads");
        assert!(
            bytes <= HEAD_BYTES + MAX_HEADER_READS as u64 * MAX_HEADER_LEN,
            "{bytes}"
        );
    }

    /// The fixture with its SeekHead's Cues entry renamed (SeekID → Chapters).
    #[tokio::test]
    async fn cues_missing_from_seek_head_are_found_by_walking_cluster_headers() {
        let mut data = fixture();
        let seek_id = [0x53, 0xAB, 0x84, 0x1C, 0x53, 0xBB, 0x6B];
        let at = data.windows(7).position(|w| w == seek_id).unwrap();
        data[at + 3..at + 7].copy_from_slice(&0x1043_A770_u32.to_be_bytes());
        let src = mem(data);
        let index = keyframes(&src).await.unwrap();
        assert_times(&index.times, &FIXTURE_KEYFRAMES, 1e-9);
        let (reads, bytes) = src.spent();
        assert!(reads <= 16, "{reads} reads");
        assert!(
            bytes < 100 << 10,
            "{bytes} bytes of a 540 KiB file: Cluster bodies were read"
        );
    }

    #[tokio::test]
    async fn cues_larger_than_a_chunk_take_one_more_read() {
        let cues = el(
            CUES,
            &(0..6000)
                .map(|i| cue_el(i * 1000, 1))
                .collect::<Vec<_>>()
                .concat(),
        );
        let (info, void) = (info_el(1_000_000, 6e6), el(0xEC, &vec![0; 200_000]));
        let seek = |pos: u64| {
            let fields = [
                el(SEEK_ID, &CUES.to_be_bytes()),
                uint_el(SEEK_POSITION, pos),
            ];
            el(SEEK_HEAD, &el(SEEK, &fields.concat()))
        };
        let pos = (seek(0).len() + info.len() + void.len()) as u64;
        let src = mem(file(&[seek(pos), info, void, cues]));
        let index = keyframes(&src).await.unwrap();
        assert_eq!((index.times.len(), index.times[5999]), (6000, 5999.0));
        assert_eq!(
            src.spent().0,
            3,
            "head, first chunk of the Cues, their rest"
        );
    }

    #[tokio::test]
    async fn cues_of_other_tracks_are_ignored_and_times_scaled() {
        let tracks = el(
            TRACKS,
            &[track_el(1, 2), track_el(2, TRACK_TYPE_VIDEO)].concat(),
        );
        let cues = [cue_el(30, 2), cue_el(0, 2), cue_el(10, 1), cue_el(30, 2)].concat();
        let data = file(&[info_el(100_000_000, 45.0), tracks, el(CUES, &cues)]);
        let index = keyframes(&mem(data)).await.unwrap();
        assert_eq!(
            index,
            KeyframeIndex {
                times: vec![0.0, 3.0],
                duration: 4.5
            }
        );
    }

    #[tokio::test]
    async fn single_cue_track_is_used_when_no_cue_names_the_video_track() {
        let tracks = el(TRACKS, &track_el(1, TRACK_TYPE_VIDEO));
        let cues = el(CUES, &[cue_el(0, 2), cue_el(2000, 2)].concat());
        let index = keyframes(&mem(file(&[info_el(1_000_000, 4000.0), tracks, cues]))).await;
        assert_eq!(index.unwrap().times, [0.0, 2.0]);
    }

    #[tokio::test]
    async fn no_duration_or_an_unknown_size_cluster_before_the_cues_give_no_index() {
        let no_duration = el(INFO, &uint_el(TIMESTAMP_SCALE, 1_000_000));
        let live_cluster = vec![0x1F, 0x43, 0xB6, 0x75, 0xFF, 0xA3, 0x81];
        let cues = el(CUES, &cue_el(0, 1));
        for data in [
            file(&[no_duration, cues.clone()]),
            file(&[info_el(1_000_000, 1.0), live_cluster, cues]),
        ] {
            let result = keyframes(&mem(data)).await;
            assert!(matches!(result, Err(IndexError::NoIndex)), "{result:?}");
        }
    }

    #[tokio::test]
    async fn malformed_inputs_are_errors() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let random: Vec<u8> = (0..100_000).map(|_| rng.gen()).collect();
        let huge_cues = vec![
            0x1C, 0x53, 0xBB, 0x6B, 0x01, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0,
        ];
        let fixture = fixture();
        let cases = [
            ("empty", vec![]),
            ("random", random),
            ("not matroska", file_of("avi", &[info_el(1_000_000, 1.0)])),
            ("truncated head", fixture[..40].to_vec()),
            ("huge Cues", file(&[info_el(1_000_000, 1.0), huge_cues])),
        ];
        for (name, data) in cases {
            let result = keyframes(&mem(data)).await;
            assert!(
                matches!(result, Err(IndexError::Malformed(_))),
                "{name}: {result:?}"
            );
        }
        for cut in [100, 300, 4096, 300_000] {
            let result = keyframes(&mem(fixture[..cut].to_vec())).await;
            assert!(result.is_err(), "truncated at {cut}: {result:?}");
        }
    }

    /// Random bytes changed in the head and the Cues never panic, hang or read much.
    #[tokio::test]
    async fn corrupted_fixtures_never_panic() {
        let original = fixture();
        let cues_at = original.len() - 220;
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        for _ in 0..3000 {
            let mut data = original.clone();
            for _ in 0..rng.gen_range(1..4) {
                let tail = rng.gen_range(cues_at..data.len());
                let at = if rng.gen() {
                    rng.gen_range(0..500)
                } else {
                    tail
                };
                data[at] = rng.gen();
            }
            let src = mem(data);
            let _ = keyframes(&src).await;
            assert!(src.spent().0 <= 2 + MAX_HEADER_READS + 2 * MAX_SEEKS_FOLLOWED);
        }
    }
}
