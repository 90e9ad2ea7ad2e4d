//! A stream's subtitle tracks in one list, and turning a text track into WebVTT.
//!
//! Tracks are external files next to the video (ids `0`, `1`, … in
//! [`companions`](crate::engine::files::companions) order) and the subtitle streams inside it
//! (id `e{n}` for ffprobe's stream `n`, known once the file is probed). Text tracks become
//! WebVTT: external ones here, from their bytes; embedded ones by ffmpeg
//! ([`crate::media::Media::embedded_vtt`]). Image tracks (PGS, VobSub, DVB) are listed as
//! `image` and never converted.

pub mod ass;
pub mod text;

use serde::Serialize;

pub use text::{decode_text, language_of, srt_to_vtt, vtt, MAX_SUBTITLE_BYTES};

use crate::{
    engine::{files::companions, source::TorrentFile},
    media::probe::{Kind, Probe},
};

/// Embedded subtitle codecs ffmpeg turns into WebVTT.
const TEXT_CODECS: &[&str] = &[
    "subrip",
    "srt",
    "ass",
    "ssa",
    "webvtt",
    "mov_text",
    "text",
    "microdvd",
    "subviewer",
    "subviewer1",
    "sami",
    "realtext",
    "mpl2",
    "pjs",
    "vplayer",
    "stl",
    "jacosub",
];

/// Whether a track is text (served as WebVTT) or pictures (listed only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubtitleKind {
    Text,
    Image,
}

/// Where a track's cues come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubtitleSource {
    /// An external file (torrent file index) in a text format.
    External { file: usize, format: TextFormat },
    /// Stream `n` of the video file.
    Embedded { stream: u32 },
    /// Nothing to convert (image subtitles).
    None,
}

/// External text subtitle formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    Srt,
    Vtt,
    Ass,
}

/// One subtitle track of a stream.
#[derive(Debug, Clone, Serialize)]
pub struct SubtitleTrack {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub kind: SubtitleKind,
    /// File extension (external) or codec (embedded).
    pub format: String,
    #[serde(skip)]
    pub source: SubtitleSource,
}

/// The subtitle tracks for `video`: external files beside it, then the probe's subtitle
/// streams (none when `probe` is not known yet).
pub fn tracks(files: &[TorrentFile], video: usize, probe: Option<&Probe>) -> Vec<SubtitleTrack> {
    let mut list = Vec::new();
    let all = companions(files, video);
    let paths: Vec<&str> = all
        .iter()
        .filter_map(|&i| files.iter().find(|f| f.index == i))
        .map(|f| f.path.as_str())
        .collect();
    for (k, &index) in all.iter().enumerate() {
        let Some(file) = files.iter().find(|f| f.index == index) else {
            continue;
        };
        let extension = extension(&file.path);
        let format = match extension.as_str() {
            "srt" => Some(TextFormat::Srt),
            "vtt" => Some(TextFormat::Vtt),
            "ass" | "ssa" => Some(TextFormat::Ass),
            _ => None,
        };
        // VobSub is a `.idx` + `.sub` pair: one track, listed as the `.idx`.
        if extension == "sub" && paths.contains(&with_extension(&file.path, "idx").as_str()) {
            continue;
        }
        list.push(SubtitleTrack {
            id: k.to_string(),
            lang: language_of(&file.path),
            title: None,
            kind: if format.is_some() {
                SubtitleKind::Text
            } else {
                SubtitleKind::Image
            },
            format: extension,
            source: format.map_or(SubtitleSource::None, |format| SubtitleSource::External {
                file: index,
                format,
            }),
        });
    }
    let embedded = probe.into_iter().flat_map(|p| &p.tracks);
    for track in embedded.filter(|t| t.kind == Kind::Subtitle) {
        let text = TEXT_CODECS.contains(&track.codec.as_str());
        list.push(SubtitleTrack {
            id: format!("e{}", track.index),
            lang: track
                .language
                .clone()
                .filter(|l| !l.eq_ignore_ascii_case("und")),
            title: track.title.clone(),
            kind: if text {
                SubtitleKind::Text
            } else {
                SubtitleKind::Image
            },
            format: track.codec.clone(),
            source: if text {
                SubtitleSource::Embedded {
                    stream: track.index,
                }
            } else {
                SubtitleSource::None
            },
        });
    }
    list
}

/// External subtitle bytes as WebVTT.
pub fn external_to_vtt(format: TextFormat, bytes: &[u8]) -> String {
    let text = decode_text(bytes);
    match format {
        TextFormat::Srt => srt_to_vtt(&text),
        TextFormat::Vtt => vtt(&text),
        TextFormat::Ass => ass::ass_to_vtt(&text),
    }
}

fn extension(path: &str) -> String {
    path.rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

fn with_extension(path: &str, extension: &str) -> String {
    let stem = path.rsplit_once('.').map_or(path, |(stem, _)| stem);
    format!("{stem}.{extension}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::files::classify;

    fn files(paths: &[&str]) -> Vec<TorrentFile> {
        paths
            .iter()
            .enumerate()
            .map(|(index, path)| TorrentFile {
                index,
                path: path.to_string(),
                size: 1,
                kind: classify(path),
            })
            .collect()
    }

    #[test]
    fn external_and_embedded_tracks_in_one_list() {
        let files = files(&[
            "M/Movie.mkv",
            "M/Movie.en.srt",
            "M/Subs/Movie.fr.ass",
            "M/Movie.idx",
            "M/Movie.sub",
            "M/Movie.pt.sup",
        ]);
        let probe = Probe::from_json(
            br#"{"format":{"format_name":"matroska,webm"},"streams":[
                {"index":0,"codec_type":"video","codec_name":"h264"},
                {"index":1,"codec_type":"subtitle","codec_name":"subrip","tags":{"language":"spa","title":"Forced"}},
                {"index":2,"codec_type":"subtitle","codec_name":"hdmv_pgs_subtitle","tags":{"language":"und"}}]}"#,
            "Movie.mkv",
        )
        .unwrap();
        let list = tracks(&files, 0, Some(&probe));
        let summary: Vec<(String, Option<String>, SubtitleKind, String, SubtitleSource)> = list
            .into_iter()
            .map(|t| (t.id, t.lang, t.kind, t.format, t.source))
            .collect();
        use SubtitleKind::*;
        let s = |v: &str| v.to_string();
        assert_eq!(
            summary,
            vec![
                (
                    s("0"),
                    Some(s("en")),
                    Text,
                    s("srt"),
                    SubtitleSource::External {
                        file: 1,
                        format: TextFormat::Srt
                    }
                ),
                (
                    s("1"),
                    Some(s("fr")),
                    Text,
                    s("ass"),
                    SubtitleSource::External {
                        file: 2,
                        format: TextFormat::Ass
                    }
                ),
                (s("2"), None, Image, s("idx"), SubtitleSource::None),
                (s("4"), Some(s("pt")), Image, s("sup"), SubtitleSource::None),
                (
                    s("e1"),
                    Some(s("spa")),
                    Text,
                    s("subrip"),
                    SubtitleSource::Embedded { stream: 1 }
                ),
                (
                    s("e2"),
                    None,
                    Image,
                    s("hdmv_pgs_subtitle"),
                    SubtitleSource::None
                ),
            ]
        );
        assert_eq!(tracks(&files, 0, None).len(), 4);
    }

    #[test]
    fn external_formats_convert() {
        let srt = b"1\n00:00:01,000 --> 00:00:02,000\nHi\n";
        assert!(external_to_vtt(TextFormat::Srt, srt).contains("00:00:01.000 --> 00:00:02.000\nHi"));
        assert!(
            external_to_vtt(TextFormat::Vtt, b"00:01.000 --> 00:02.000\nHi").starts_with("WEBVTT")
        );
        let ass = b"[Events]\nFormat: Start, End, Text\nDialogue: 0:00:01.00,0:00:02.00,caf\xe9\n";
        assert!(external_to_vtt(TextFormat::Ass, ass).ends_with("café\n\n"));
    }
}
