//! Keyframe times read from the container's own index with a few small range reads (MKV
//! Cues, MP4 `stss`/`stts`/`ctts` in `moov`), so a VOD playlist can be cut at keyframes
//! before any transcoding starts. A file without an index gets `NoIndex` (the caller falls
//! back to an event playlist).

pub mod mkv;
pub mod mp4;

use std::future::Future;

use bytes::Bytes;

/// Random access to a file's bytes (the loopback playback URL in production, a local file in
/// tests).
pub trait RangeRead: Send + Sync {
    /// The file's length in bytes.
    fn len(&self) -> u64;
    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `len` bytes from `start` (fewer only at the end of the file).
    fn read(&self, start: u64, len: u64) -> impl Future<Output = std::io::Result<Bytes>> + Send;
}

/// The video track's keyframes.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyframeIndex {
    /// Presentation times in seconds, ascending, the first usually 0.
    pub times: Vec<f64>,
    /// The file's duration in seconds.
    pub duration: f64,
}

/// Why no index could be read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("the file has no keyframe index")]
    NoIndex,
    #[error("malformed container: {0}")]
    Malformed(String),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Most bytes an index read may fetch in all (a 3-hour MKV's Cues are ~100 KB; a long MP4's
/// `moov` a few MB).
pub const MAX_INDEX_BYTES: u64 = 32 << 20;

/// A local file as a [`RangeRead`] (tests, tools).
pub struct FileRange(pub std::path::PathBuf, pub u64);

impl FileRange {
    pub fn open(path: impl Into<std::path::PathBuf>) -> std::io::Result<Self> {
        let path = path.into();
        let len = std::fs::metadata(&path)?.len();
        Ok(Self(path, len))
    }
}

impl RangeRead for FileRange {
    fn len(&self) -> u64 {
        self.1
    }

    async fn read(&self, start: u64, len: u64) -> std::io::Result<Bytes> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(path)?;
            file.seek(SeekFrom::Start(start))?;
            let mut out = Vec::new();
            file.take(len).read_to_end(&mut out)?;
            Ok(Bytes::from(out))
        })
        .await
        .map_err(std::io::Error::other)?
    }
}
