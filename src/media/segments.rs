//! The segment plan: the file cut at the first keyframe at or after each grid line (6 s
//! apart), so every segment starts on a keyframe. With a keyframe index the whole VOD
//! playlist exists before any transcoding starts; without one, the keyframes are the GOPs
//! ffmpeg has written so far and the playlist is an EVENT playlist that grows ([`grown`]).
//! Pure functions.

use std::fmt::Write;

use super::index::KeyframeIndex;

/// Target segment length (seconds): the grid the cuts follow.
pub const TARGET: f64 = 6.0;

/// One playlist segment: `[start, end)` in presentation seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub index: usize,
    pub start: f64,
    pub end: f64,
}

impl Segment {
    pub fn duration(&self) -> f64 {
        self.end - self.start
    }
}

/// Cuts `[0, duration)` at the first keyframe at or after each multiple of `target`.
/// Keyframes past the end are ignored; a file with no keyframe after 0 is one segment.
pub fn cut(index: &KeyframeIndex, target: f64) -> Vec<Segment> {
    let duration = index.duration.max(0.0);
    let target = if target > 0.0 { target } else { 6.0 };
    let mut bounds = vec![0.0];
    let mut grid = target;
    for &time in &index.times {
        if time >= duration {
            break;
        }
        if time >= grid && time > *bounds.last().unwrap_or(&0.0) {
            bounds.push(time);
            // The next cut is at the next grid line after this keyframe.
            grid = (time / target).floor() * target + target;
        }
    }
    bounds.push(duration);
    bounds
        .windows(2)
        .filter(|w| w[1] > w[0])
        .enumerate()
        .map(|(index, w)| Segment {
            index,
            start: w[0],
            end: w[1],
        })
        .collect()
}

/// The segment that contains presentation time `time` (the last one past the end).
pub fn segment_at(segments: &[Segment], time: f64) -> Option<&Segment> {
    let at = segments.partition_point(|s| s.end <= time);
    segments.get(at).or(segments.last())
}

/// The segments of what a job has written so far: `times` are its GOP start times and `end`
/// where the last written GOP ends. Only segments whose end is a cut already seen are listed,
/// so a listed segment never changes as more GOPs arrive; once the job is `done`, the last
/// one (up to `end`) is listed too.
pub fn grown(times: &[f64], end: f64, done: bool, target: f64) -> Vec<Segment> {
    let index = KeyframeIndex {
        times: times.to_vec(),
        duration: end,
    };
    let mut segments = cut(&index, target);
    if !done {
        segments.pop();
    }
    segments
}

/// What kind of media playlist to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Every segment known at once: players can seek anywhere.
    Vod,
    /// Segments so far (no index); `ended` once the last one is listed.
    Event { ended: bool },
}

/// An fMP4 media playlist; `uri(n)` names segment `n`.
pub fn media_playlist(
    segments: &[Segment],
    listing: Listing,
    uri: impl Fn(usize) -> String,
) -> String {
    let longest = segments.iter().map(Segment::duration).fold(0.0, f64::max);
    // An event playlist's target duration must not change as it grows: allow for long GOPs.
    let target = match listing {
        Listing::Vod => longest.ceil().max(1.0),
        Listing::Event { .. } => longest.ceil().max(EVENT_TARGET),
    };
    let mut text = String::new();
    let _ = writeln!(text, "#EXTM3U");
    let _ = writeln!(text, "#EXT-X-VERSION:7");
    let _ = writeln!(text, "#EXT-X-TARGETDURATION:{}", target as u64);
    let _ = writeln!(text, "#EXT-X-MEDIA-SEQUENCE:0");
    match listing {
        Listing::Vod => {
            let _ = writeln!(text, "#EXT-X-PLAYLIST-TYPE:VOD");
        }
        Listing::Event { .. } => {
            let _ = writeln!(text, "#EXT-X-PLAYLIST-TYPE:EVENT");
            // Play from the beginning, not from the growing end as for a live stream.
            let _ = writeln!(text, "#EXT-X-START:TIME-OFFSET=0,PRECISE=YES");
        }
    }
    let _ = writeln!(text, "#EXT-X-INDEPENDENT-SEGMENTS");
    let _ = writeln!(text, "#EXT-X-MAP:URI=\"init.mp4\"");
    for segment in segments {
        let _ = writeln!(text, "#EXTINF:{:.6},", segment.duration());
        let _ = writeln!(text, "{}", uri(segment.index));
    }
    if matches!(listing, Listing::Vod | Listing::Event { ended: true }) {
        let _ = writeln!(text, "#EXT-X-ENDLIST");
    }
    text
}

/// The target duration an event playlist declares at least (a segment is 6 s plus at most
/// one GOP).
const EVENT_TARGET: f64 = 16.0;

#[cfg(test)]
mod tests {
    use super::*;

    fn index(times: &[f64], duration: f64) -> KeyframeIndex {
        KeyframeIndex {
            times: times.to_vec(),
            duration,
        }
    }

    fn starts(segments: &[Segment]) -> Vec<f64> {
        segments.iter().map(|s| s.start).collect()
    }

    #[test]
    fn cuts_land_on_the_first_keyframe_at_or_after_each_grid_line() {
        let regular: Vec<f64> = (0..30).map(|k| k as f64 * 2.0).collect();
        assert_eq!(
            starts(&cut(&index(&regular, 60.0), 6.0)),
            [0.0, 6.0, 12.0, 18.0, 24.0, 30.0, 36.0, 42.0, 48.0, 54.0]
        );
        let irregular = [0.0, 1.5, 4.0, 9.2, 9.9, 13.0, 25.5, 26.0, 31.0];
        let segments = cut(&index(&irregular, 33.0), 6.0);
        assert_eq!(starts(&segments), [0.0, 9.2, 13.0, 25.5, 31.0]);
        assert_eq!(segments.last().unwrap().end, 33.0);
        for pair in segments.windows(2) {
            assert_eq!(pair[0].end, pair[1].start, "segments are contiguous");
        }
    }

    #[test]
    fn edge_cases_give_one_segment_or_ignore_late_keyframes() {
        assert_eq!(cut(&index(&[], 10.0), 6.0).len(), 1);
        assert_eq!(cut(&index(&[0.0], 10.0), 6.0).len(), 1);
        assert_eq!(
            starts(&cut(&index(&[0.0, 7.0, 12.0, 40.0], 12.5), 6.0)),
            [0.0, 7.0, 12.0]
        );
        assert!(cut(&index(&[0.0], 0.0), 6.0).is_empty());
    }

    #[test]
    fn finds_the_segment_of_a_time_and_writes_a_vod_playlist() {
        let segments = cut(&index(&[0.0, 6.5, 13.0], 20.0), 6.0);
        assert_eq!(segment_at(&segments, 0.0).unwrap().index, 0);
        assert_eq!(segment_at(&segments, 6.5).unwrap().index, 1);
        assert_eq!(segment_at(&segments, 19.9).unwrap().index, 2);
        assert_eq!(segment_at(&segments, 99.0).unwrap().index, 2);
        let text = media_playlist(&segments, Listing::Vod, |n| format!("{n}.m4s"));
        assert!(text.starts_with("#EXTM3U\n"));
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        assert!(text.contains("#EXT-X-TARGETDURATION:7\n"), "{text}");
        assert!(text.contains("#EXTINF:6.500000,\n0.m4s\n"));
        assert!(text.trim_end().ends_with("#EXT-X-ENDLIST"));
        assert_eq!(text.matches(".m4s").count(), 3);
        assert!(!text.contains("EXT-X-START"));
    }

    #[test]
    fn a_growing_event_playlist_lists_only_segments_that_will_not_change() {
        let gops = [0.0, 2.0, 4.0, 6.5, 8.0, 13.0, 15.0];
        // Written so far: GOPs up to 8.0 (ending at 10.0).
        let early = grown(&gops[..5], 10.0, false, 6.0);
        assert_eq!(starts(&early), [0.0], "the segment from 6.5 is still open");
        assert_eq!(early[0].end, 6.5);
        let later = grown(&gops, 17.0, false, 6.0);
        assert_eq!(starts(&later), [0.0, 6.5]);
        assert_eq!(later[..1], early[..], "listed segments never change");
        let done = grown(&gops, 17.0, true, 6.0);
        assert_eq!(starts(&done), [0.0, 6.5, 13.0]);
        assert_eq!(done[2].end, 17.0);
        assert!(grown(&[], 0.0, false, 6.0).is_empty());

        let open = media_playlist(&later, Listing::Event { ended: false }, |n| {
            format!("{n}.m4s")
        });
        assert!(
            open.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-START:TIME-OFFSET=0,PRECISE=YES\n")
        );
        assert!(open.contains("#EXT-X-TARGETDURATION:16\n"), "{open}");
        assert!(!open.contains("ENDLIST"));
        let ended = media_playlist(&done, Listing::Event { ended: true }, |n| {
            format!("{n}.m4s")
        });
        assert!(ended.trim_end().ends_with("#EXT-X-ENDLIST"));
    }
}
