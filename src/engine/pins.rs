//! Head and tail pins: before a player arrives, fetch the bytes it will ask for first — the
//! container header at the start and the index at the end (MP4 `moov`, MKV Cues) — by
//! reading them through ordinary librqbit readers, whose windows librqbit serves first.
//!
//! A reader's window runs forward from its position to the end of the file, so a tail pin
//! that simply read forward from `len - 4 MiB` would fetch the index last (and on a small
//! file, half the file first). The tail is therefore read backwards, one piece at a time:
//! each step's window holds exactly the next missing piece. Pins are sized to the file.
//!
//! A player's reader opened inside the file ends the pins at once: the player steers from
//! then on. One opened at byte 0 is reading the container header, and its next request is
//! usually the index at the tail: there each pin finishes the step it is on (the tail's is
//! its last piece), so that piece comes with the header instead of a round trip later.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::reader::TorrentReader;

/// A pin takes at most this fraction of the file at the head (1/32) and tail (1/8)…
const HEAD_SHARE: u64 = 32;
const TAIL_SHARE: u64 = 8;
/// …but never less than this (a container header or a short index).
const MIN_PIN: u64 = 64 * 1024;

/// The byte ranges `[start, end)` a pin reads, in order.
pub type Steps = Vec<(u64, u64)>;

/// The head pin: one forward range from 0.
pub fn head_steps(size: u64, head_max: u64) -> Steps {
    let len = (size / HEAD_SHARE)
        .clamp(MIN_PIN, head_max.max(MIN_PIN))
        .min(size)
        .min(head_max);
    if len == 0 {
        return Vec::new();
    }
    vec![(0, len)]
}

/// The tail pin: whole pieces from the end backwards, not overlapping the head. `offset` is
/// the file's position in the torrent, where piece boundaries are counted from: a step that
/// straddled a boundary would fetch two pieces for one. The first step (the one a reader at
/// byte 0 lets finish) holds at least [`MIN_PIN`] bytes: a last piece of a few KB holds
/// none of the index before it.
pub fn tail_steps(size: u64, head_len: u64, piece_len: u64, tail_max: u64, offset: u64) -> Steps {
    let len = (size / TAIL_SHARE)
        .clamp(MIN_PIN, tail_max.max(MIN_PIN))
        .min(tail_max)
        .min(size.saturating_sub(head_len));
    let piece = piece_len.max(16 * 1024);
    let floor = size - len;
    let mut steps = Vec::new();
    let mut end = size;
    while end > floor {
        // The start of the piece holding byte `end - 1`, in file offsets.
        let last = offset + end - 1;
        let mut start = (last - last % piece).saturating_sub(offset).max(floor);
        while steps.is_empty() && end - start < MIN_PIN && start > floor {
            let before = offset + start - 1;
            start = (before - before % piece).saturating_sub(offset).max(floor);
        }
        steps.push((start, end));
        end = start;
    }
    steps
}

/// Reads `steps` through `reader` so librqbit fetches them first; stops at `stop`, at the
/// deadline, or before the next step once `wind_down` is cancelled. Dropping the reader at
/// the end frees its window and its slot.
pub async fn run(
    mut reader: TorrentReader,
    steps: Steps,
    deadline: Duration,
    stop: CancellationToken,
    wind_down: CancellationToken,
) {
    let work = async {
        let mut buf = vec![0u8; 64 * 1024];
        for (step, (start, end)) in steps.into_iter().enumerate() {
            if step > 0 && wind_down.is_cancelled() {
                break;
            }
            reader.seek_to(start).await?;
            let mut remaining = end - start;
            while remaining > 0 {
                let want = buf.len().min(remaining as usize);
                let got = reader.read(&mut buf[..want]).await?;
                if got == 0 {
                    return Ok(());
                }
                remaining -= got as u64;
            }
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::select! {
        _ = stop.cancelled() => {}
        result = tokio::time::timeout(deadline, work) => {
            if let Ok(Err(err)) = result {
                tracing::debug!(error = %err, "pin read ended early");
            }
        }
    }
}

impl super::Engine {
    /// Starts background readers over the file's head and tail; they hold pin slots (never
    /// player slots) and end when read, when the torrent is released, or at the deadline.
    pub(super) fn pin_head_and_tail(
        self: &std::sync::Arc<Self>,
        meta: &super::TorrentMeta,
        file: usize,
        cancel: CancellationToken,
    ) {
        let Some(size) = meta.file(file).map(|f| f.size) else {
            return;
        };
        let cfg = &self.config.engine;
        let head = head_steps(size, cfg.head_pin_bytes);
        let head_len = head.last().map(|r| r.1).unwrap_or(0);
        let offset = meta.file_offset(file);
        let (piece, most) = (meta.piece_length, cfg.tail_pin_bytes);
        let tail = tail_steps(size, head_len, piece, most, offset);
        let (stop, wind_down) = (cancel.child_token(), CancellationToken::new());
        let pinning = super::Pinning {
            stop: stop.clone(),
            wind_down: wind_down.clone(),
        };
        self.pinning
            .lock()
            .expect("pinning lock")
            .insert((meta.info_hash.clone(), file), pinning);
        for steps in [tail, head].into_iter().filter(|s| !s.is_empty()) {
            let Ok(permit) = self.pins.clone().try_acquire_owned() else {
                tracing::debug!("all pin slots busy; not pinning");
                return;
            };
            let engine = self.clone();
            let info_hash = meta.info_hash.clone();
            let (stop, wind_down) = (stop.child_token(), wind_down.clone());
            tokio::spawn(async move {
                let deadline = engine.config.engine.metadata_timeout;
                let slot = super::reader::Slot::new(permit, None);
                match engine.open_with(slot, &info_hash, file).await {
                    Ok(reader) => run(reader, steps, deadline, stop, wind_down).await,
                    Err(err) => tracing::debug!(error = %err, "cannot pin"),
                }
            });
        }
    }

    pub(super) fn end_pins(&self, info_hash: &str, file: usize, start: u64) {
        let mut pinning = self.pinning.lock().expect("pinning lock");
        let key = (info_hash.to_owned(), file);
        if start == 0 {
            if let Some(pins) = pinning.get(&key) {
                pins.wind_down.cancel();
            }
        } else if let Some(pins) = pinning.remove(&key) {
            pins.stop.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn a_large_file_pins_the_configured_head_and_tail() {
        assert_eq!(head_steps(4096 * MIB, 2 * MIB), vec![(0, 2 * MIB)]);
        let tail = tail_steps(4096 * MIB, 2 * MIB, 2 * MIB, 4 * MIB, 0);
        assert_eq!(
            tail,
            vec![(4094 * MIB, 4096 * MIB), (4092 * MIB, 4094 * MIB)]
        );
    }

    #[test]
    fn a_small_file_pins_a_share_of_it_tail_first_from_the_end() {
        let size = 7 * MIB;
        let head = head_steps(size, 2 * MIB);
        assert_eq!(head, vec![(0, size / 32)]);
        let tail = tail_steps(size, size / 32, 256 * 1024, 4 * MIB, 0);
        assert_eq!(
            tail.first(),
            Some(&(size - 256 * 1024, size)),
            "the last piece first"
        );
        assert_eq!(tail.last().unwrap().0, size - size / 8);
        assert!(
            tail.windows(2).all(|w| w[1].1 == w[0].0),
            "contiguous, walking backwards"
        );
    }

    #[test]
    fn tail_steps_follow_piece_boundaries() {
        // 7,082,227 bytes in 2 MiB pieces: the last piece is 790,771 bytes, fetched alone.
        let size = 7_082_227;
        let tail = tail_steps(size, size / 32, 2 * MIB, 4 * MIB, 0);
        assert_eq!(tail, vec![(6 * MIB, size), (size - size / 8, 6 * MIB)]);
        // The same file 1.5 MiB into a torrent: boundaries move with it.
        let tail = tail_steps(size, size / 32, 2 * MIB, 4 * MIB, 3 * MIB / 2);
        let boundary = 8 * MIB - 3 * MIB / 2;
        assert_eq!(tail, vec![(boundary, size), (size - size / 8, boundary)]);
        // A file that starts inside its first piece, in 16 KiB pieces.
        let tail = tail_steps(1_000_000, 0, 16 * 1024, 4 * MIB, 200_000);
        assert_eq!(
            tail[0],
            (930_496, 1_000_000),
            "64 KiB or more, from a boundary"
        );
        assert_eq!(tail[1], (930_496 - 16_384, 930_496));
        assert_eq!(tail.last().unwrap().0, 1_000_000 - 125_000);
    }

    #[test]
    fn a_tiny_last_piece_is_fetched_with_the_one_before() {
        // 27 pieces of 256 KiB and one of 4,339 bytes: the index ends in the 27th.
        let size = 27 * 256 * 1024 + 4339;
        let tail = tail_steps(size, size / 32, 256 * 1024, 4 * MIB, 0);
        assert_eq!(tail[0], (26 * 256 * 1024, size));
        assert_eq!(tail[1], (25 * 256 * 1024, 26 * 256 * 1024));
    }

    #[test]
    fn tiny_and_empty_files_never_overlap_or_overflow() {
        assert_eq!(head_steps(0, 2 * MIB), Vec::new());
        assert_eq!(head_steps(10_000, 2 * MIB), vec![(0, 10_000)]);
        assert_eq!(
            tail_steps(10_000, 10_000, 16 * 1024, 4 * MIB, 0),
            Vec::new()
        );
        let tail = tail_steps(100_000, 64 * 1024, 16 * 1024, 4 * MIB, 0);
        assert!(tail
            .iter()
            .all(|&(s, e)| s >= 64 * 1024 && e <= 100_000 && s < e));
    }
}
