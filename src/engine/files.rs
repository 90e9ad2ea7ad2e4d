//! File choice inside a torrent: what kind each file is, which one to play (the one asked
//! for, else the largest video), and which subtitle files travel with it. Pure functions.

use serde::{Deserialize, Serialize};

use super::source::TorrentFile;

/// What a file is, from its extension.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Video,
    Subtitle,
    Audio,
    Other,
}

const VIDEO: &[&str] = &[
    "mkv", "mp4", "m4v", "webm", "avi", "mov", "ts", "m2ts", "mts", "wmv", "flv", "mpg", "mpeg",
    "ogv", "3gp", "vob",
];
const SUBTITLE: &[&str] = &["srt", "vtt", "ass", "ssa", "sub", "idx", "sup"];
const AUDIO: &[&str] = &[
    "mp3", "aac", "m4a", "flac", "ogg", "opus", "wav", "ac3", "eac3", "dts", "mka",
];

/// Classifies a path by its extension (case-insensitive).
pub fn classify(path: &str) -> FileKind {
    let ext = extension(path);
    if VIDEO.contains(&ext.as_str()) {
        FileKind::Video
    } else if SUBTITLE.contains(&ext.as_str()) {
        FileKind::Subtitle
    } else if AUDIO.contains(&ext.as_str()) {
        FileKind::Audio
    } else {
        FileKind::Other
    }
}

fn extension(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// The file a user asked for: an index, or a path inside the torrent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FileSelector {
    Index(usize),
    Path(String),
}

/// Why no file could be chosen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    #[error("the torrent has no video file; choose one with `file`")]
    NoVideo,
    #[error("file {0} is not in the torrent")]
    NotFound(String),
}

/// The requested file, else the largest video file.
pub fn select_file(
    files: &[TorrentFile],
    requested: Option<&FileSelector>,
) -> Result<usize, SelectError> {
    match requested {
        Some(FileSelector::Index(index)) => files
            .iter()
            .position(|f| f.index == *index)
            .map(|_| *index)
            .ok_or_else(|| SelectError::NotFound(index.to_string())),
        Some(FileSelector::Path(path)) => {
            let wanted = path.trim_start_matches('/');
            files
                .iter()
                .find(|f| f.path == wanted)
                .map(|f| f.index)
                .ok_or_else(|| SelectError::NotFound(format!("{path:?}")))
        }
        None => files
            .iter()
            .filter(|f| f.kind == FileKind::Video && f.size > 0)
            .max_by_key(|f| (f.size, std::cmp::Reverse(f.index)))
            .map(|f| f.index)
            .ok_or(SelectError::NoVideo),
    }
}

/// Subtitle files in the chosen file's folder or a `Subs`/`Subtitles` folder beside it.
pub fn companions(files: &[TorrentFile], chosen: usize) -> Vec<usize> {
    let Some(video) = files.iter().find(|f| f.index == chosen) else {
        return Vec::new();
    };
    let folder = parent(&video.path);
    files
        .iter()
        .filter(|f| f.kind == FileKind::Subtitle && f.index != chosen)
        .filter(|f| {
            let sub_folder = parent(&f.path);
            sub_folder == folder || is_subs_folder_of(sub_folder, folder)
        })
        .map(|f| f.index)
        .collect()
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("")
}

fn is_subs_folder_of(candidate: &str, folder: &str) -> bool {
    let (base, last) = candidate.rsplit_once('/').unwrap_or(("", candidate));
    base == folder && matches!(last.to_ascii_lowercase().as_str(), "subs" | "subtitles")
}

/// The MIME type for a file name.
pub fn mime_for(path: &str) -> String {
    match extension(path).as_str() {
        "mkv" => "video/x-matroska".into(),
        "mka" => "audio/x-matroska".into(),
        "ts" | "m2ts" | "mts" => "video/mp2t".into(),
        "srt" => "application/x-subrip".into(),
        "vtt" => "text/vtt".into(),
        _ => mime_guess::from_path(path)
            .first_or_octet_stream()
            .essence_str()
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(index: usize, path: &str, size: u64) -> TorrentFile {
        TorrentFile {
            index,
            path: path.into(),
            size,
            kind: classify(path),
        }
    }

    fn pack() -> Vec<TorrentFile> {
        vec![
            file(0, "Show/sample.mkv", 5_000),
            file(1, "Show/Show.S01E01.mkv", 900_000),
            file(2, "Show/Show.S01E01.en.srt", 40),
            file(3, "Show/Subs/Show.S01E01.fr.SRT", 40),
            file(4, "Show/Show.S01E02.MP4", 800_000),
            file(5, "Show/readme.nfo", 10),
            file(6, "Other/elsewhere.srt", 10),
        ]
    }

    #[test]
    fn classifies_by_extension() {
        let cases = [
            ("a.MKV", FileKind::Video),
            ("dir/a.b.mp4", FileKind::Video),
            ("a.srt", FileKind::Subtitle),
            ("a.flac", FileKind::Audio),
            ("a.nfo", FileKind::Other),
            ("mkv", FileKind::Other),
            (".mkv", FileKind::Other),
        ];
        for (path, kind) in cases {
            assert_eq!(classify(path), kind, "{path}");
        }
    }

    #[test]
    fn default_choice_is_the_largest_video() {
        assert_eq!(select_file(&pack(), None), Ok(1));
    }

    #[test]
    fn a_requested_index_or_path_wins() {
        let files = pack();
        assert_eq!(select_file(&files, Some(&FileSelector::Index(4))), Ok(4));
        let path = FileSelector::Path("Show/Show.S01E02.MP4".into());
        assert_eq!(select_file(&files, Some(&path)), Ok(4));
        assert_eq!(select_file(&files, Some(&FileSelector::Index(5))), Ok(5));
    }

    #[test]
    fn missing_choices_and_no_video_are_errors() {
        let files = pack();
        assert!(matches!(
            select_file(&files, Some(&FileSelector::Index(99))),
            Err(SelectError::NotFound(_))
        ));
        let path = FileSelector::Path("../etc/passwd".into());
        assert!(matches!(
            select_file(&files, Some(&path)),
            Err(SelectError::NotFound(_))
        ));
        let no_video = vec![file(0, "a.txt", 3), file(1, "b.srt", 3)];
        assert_eq!(select_file(&no_video, None), Err(SelectError::NoVideo));
    }

    #[test]
    fn subtitles_next_to_the_video_come_along() {
        assert_eq!(companions(&pack(), 1), vec![2, 3]);
    }

    #[test]
    fn mime_types() {
        assert_eq!(mime_for("a.mkv"), "video/x-matroska");
        assert_eq!(mime_for("a.mp4"), "video/mp4");
        assert_eq!(mime_for("a.webm"), "video/webm");
        assert_eq!(mime_for("noext"), "application/octet-stream");
    }
}
