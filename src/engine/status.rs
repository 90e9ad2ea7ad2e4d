//! Per-file progress of a shared torrent: bytes done, speed, peers, and the byte ranges of
//! the file already on disk (from librqbit's piece bitfield).

use librqbit::TorrentStatsState;

use super::TorrentHandle as ManagedTorrentHandle;
use serde::Serialize;

use super::{
    health::{classify, Condition},
    TorrentMeta,
};

/// Where a file's torrent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TorrentState {
    /// Checking existing data or not added yet.
    Initializing,
    Downloading,
    /// Every byte of the file is on disk.
    Complete,
    Paused,
    Error,
}

/// Progress of one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileStatus {
    pub state: TorrentState,
    pub bytes: u64,
    pub total: u64,
    pub download_bps: u64,
    pub peers: u32,
    /// Half-open `[start, end)` byte ranges of the file that are downloaded and verified.
    pub buffered: Vec<[u64; 2]>,
    /// What is wrong with the torrent, if anything (evicted, stopped by a full disk, failed).
    #[serde(skip)]
    pub condition: Option<Condition>,
}

/// Reads the status of `file` from the torrent's handle (absent → initializing, nothing;
/// evicted → paused, nothing) and what the engine knows is wrong with it (`condition`).
pub fn file_status(
    api: &librqbit::Api,
    handle: Option<&ManagedTorrentHandle>,
    meta: &TorrentMeta,
    file: usize,
    condition: Option<Condition>,
) -> FileStatus {
    let total = meta.file(file).map(|f| f.size).unwrap_or(0);
    let mut status = FileStatus {
        state: TorrentState::Initializing,
        bytes: 0,
        total,
        download_bps: 0,
        peers: 0,
        buffered: Vec::new(),
        condition,
    };
    if status.condition == Some(Condition::Evicted) {
        status.state = TorrentState::Paused;
        return status;
    }
    let Some(handle) = handle else {
        return status;
    };
    let stats = handle.stats();
    status.bytes = stats.file_progress.get(file).copied().unwrap_or(0);
    if let Some(live) = &stats.live {
        status.download_bps = (live.download_speed.mbps * 1024.0 * 1024.0) as u64;
        status.peers = live.snapshot.peer_stats.live;
    }
    if matches!(stats.state, TorrentStatsState::Error) {
        // librqbit's word is first: the engine's monitor may not have looked yet.
        let known = status.condition.take().filter(|c| *c != Condition::Evicted);
        let error = stats.error.as_deref().unwrap_or("");
        status.condition = Some(known.unwrap_or_else(|| classify(error)));
    }
    status.state = match stats.state {
        TorrentStatsState::Initializing { .. } => TorrentState::Initializing,
        TorrentStatsState::Error => TorrentState::Error,
        _ if total > 0 && status.bytes >= total => TorrentState::Complete,
        TorrentStatsState::Paused => TorrentState::Paused,
        TorrentStatsState::Live => TorrentState::Downloading,
    };
    status.buffered = buffered(api, handle, file).unwrap_or_default();
    status
}

fn buffered(
    api: &librqbit::Api,
    handle: &ManagedTorrentHandle,
    file: usize,
) -> Option<Vec<[u64; 2]>> {
    let geometry = handle
        .with_metadata(|m| {
            let info = m.file_infos.get(file)?;
            let lengths = m.lengths();
            Some(Geometry {
                piece_len: lengths.default_piece_length() as u64,
                total_len: lengths.total_length(),
                file_offset: info.offset_in_torrent,
                file_len: info.len,
            })
        })
        .ok()??;
    let id = librqbit::api::TorrentIdOrHash::Id(handle.id());
    let (haves, _) = api.api_dump_haves(id).ok()?;
    Some(buffered_ranges(haves.as_raw_slice(), geometry))
}

/// Where a file sits among the torrent's pieces.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    pub piece_len: u64,
    pub total_len: u64,
    pub file_offset: u64,
    pub file_len: u64,
}

/// Maps a most-significant-bit-first piece bitfield onto merged byte ranges of the file.
pub fn buffered_ranges(haves: &[u8], g: Geometry) -> Vec<[u64; 2]> {
    let mut ranges: Vec<[u64; 2]> = Vec::new();
    if g.file_len == 0 || g.piece_len == 0 {
        return ranges;
    }
    let file_end = g.file_offset + g.file_len;
    let first = g.file_offset / g.piece_len;
    let last = (file_end - 1) / g.piece_len;
    for piece in first..=last {
        let have = haves
            .get((piece / 8) as usize)
            .is_some_and(|byte| byte & (0x80 >> (piece % 8)) != 0);
        if !have {
            continue;
        }
        let start = (piece * g.piece_len).max(g.file_offset) - g.file_offset;
        let end = ((piece + 1) * g.piece_len).min(file_end).min(g.total_len) - g.file_offset;
        match ranges.last_mut() {
            Some(prev) if prev[1] == start => prev[1] = end,
            _ => ranges.push([start, end]),
        }
    }
    ranges
}

impl super::Engine {
    /// The whole engine in figures (metrics, the admin summary).
    pub fn figures(&self) -> super::EngineFigures {
        let snapshot = self.session.stats_snapshot();
        let torrents = self.session.with_torrents(|torrents| torrents.count());
        super::EngineFigures {
            torrents,
            peers: u64::from(snapshot.peers.live),
            downloaded_bytes: snapshot.counters.fetched_bytes,
            uploaded_bytes: snapshot.counters.uploaded_bytes,
            download_bps: super::mbps_to_bps(snapshot.download_speed.mbps),
            upload_bps: super::mbps_to_bps(snapshot.upload_speed.mbps),
            open_readers: self.config.engine.max_readers - self.readers.available_permits(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_map_to_file_byte_ranges() {
        // 4 pieces of 100 bytes, file at [150, 380); have pieces 1, 2 (0b0110_0000).
        let g = Geometry {
            piece_len: 100,
            total_len: 400,
            file_offset: 150,
            file_len: 230,
        };
        assert_eq!(buffered_ranges(&[0b0110_0000], g), vec![[0, 150]]);
        assert_eq!(buffered_ranges(&[0b1001_0000], g), vec![[150, 230]]);
        assert_eq!(buffered_ranges(&[0b1111_0000], g), vec![[0, 230]]);
        assert_eq!(buffered_ranges(&[0], g), Vec::<[u64; 2]>::new());
        assert_eq!(buffered_ranges(&[], g), Vec::<[u64; 2]>::new());
    }

    #[test]
    fn a_short_last_piece_is_clamped() {
        let g = Geometry {
            piece_len: 100,
            total_len: 250,
            file_offset: 0,
            file_len: 250,
        };
        assert_eq!(
            buffered_ranges(&[0b1010_0000], g),
            vec![[0, 100], [200, 250]]
        );
    }
}
