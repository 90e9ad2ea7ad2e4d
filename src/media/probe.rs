//! What ffprobe says about a file, reduced to what playback decisions need: the container,
//! duration, and each stream's kind, codec, profile, pixel format, tag, channels, language and
//! default flag. Parsing is pure (tested on committed ffprobe JSON); running ffprobe is
//! [`super::Media::probe`]'s job.

use serde::{Deserialize, Serialize};

/// The container family, as far as players care.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    Mp4,
    Matroska,
    WebM,
    Avi,
    Other(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Video,
    Audio,
    Subtitle,
    Other,
}

/// One elementary stream.
#[derive(Debug, Clone, Serialize)]
pub struct Track {
    pub index: u32,
    pub kind: Kind,
    pub codec: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pix_fmt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u32>,
    /// Video frames per second (the average, else the base rate), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub default: bool,
}

/// A probed file.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub container: Container,
    /// Seconds, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bit_rate: Option<u64>,
    pub tracks: Vec<Track>,
}

#[derive(Deserialize)]
struct RawProbe {
    #[serde(default)]
    streams: Vec<RawStream>,
    format: Option<RawFormat>,
}

#[derive(Deserialize)]
struct RawFormat {
    format_name: Option<String>,
    duration: Option<String>,
    bit_rate: Option<String>,
}

#[derive(Deserialize)]
struct RawStream {
    index: u32,
    codec_type: Option<String>,
    codec_name: Option<String>,
    profile: Option<String>,
    pix_fmt: Option<String>,
    codec_tag_string: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    channels: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    #[serde(default)]
    disposition: std::collections::HashMap<String, i64>,
    #[serde(default)]
    tags: std::collections::HashMap<String, String>,
}

/// ffprobe's output was not what `-of json -show_format -show_streams` prints.
#[derive(Debug, thiserror::Error)]
#[error("unreadable ffprobe output: {0}")]
pub struct ProbeParseError(String);

impl Probe {
    /// Parses ffprobe's JSON for the file named `file_name` (its extension tells WebM from
    /// Matroska, which ffprobe names alike).
    pub fn from_json(json: &[u8], file_name: &str) -> Result<Self, ProbeParseError> {
        let raw: RawProbe =
            serde_json::from_slice(json).map_err(|e| ProbeParseError(e.to_string()))?;
        let format = raw
            .format
            .ok_or_else(|| ProbeParseError("no format".into()))?;
        let tracks = raw.streams.into_iter().map(track).collect();
        Ok(Self {
            container: container(format.format_name.as_deref().unwrap_or(""), file_name),
            duration: format.duration.and_then(|d| d.parse().ok()),
            bit_rate: format.bit_rate.and_then(|b| b.parse().ok()),
            tracks,
        })
    }

    /// The tracks of one kind, default ones first.
    pub fn tracks(&self, kind: Kind) -> impl Iterator<Item = &Track> {
        let mut of_kind: Vec<&Track> = self.tracks.iter().filter(|t| t.kind == kind).collect();
        of_kind.sort_by_key(|t| !t.default);
        of_kind.into_iter()
    }
}

fn container(format_name: &str, file_name: &str) -> Container {
    let names: Vec<&str> = format_name.split(',').collect();
    let webm = file_name.to_ascii_lowercase().ends_with(".webm");
    if names.contains(&"mp4") || names.contains(&"mov") {
        Container::Mp4
    } else if names.contains(&"matroska") {
        if webm {
            Container::WebM
        } else {
            Container::Matroska
        }
    } else if names.contains(&"avi") {
        Container::Avi
    } else {
        Container::Other(format_name.to_owned())
    }
}

/// A rate as ffprobe writes it (`24000/1001`, `25/1`; `0/0` when unknown).
fn rate(text: &str) -> Option<f64> {
    let (num, den) = text.split_once('/').unwrap_or((text, "1"));
    let (num, den): (f64, f64) = (num.parse().ok()?, den.parse().ok()?);
    let rate = num / den;
    (rate.is_finite() && rate > 0.0).then_some(rate)
}

fn track(raw: RawStream) -> Track {
    let kind = match raw.codec_type.as_deref() {
        Some("video") => Kind::Video,
        Some("audio") => Kind::Audio,
        Some("subtitle") => Kind::Subtitle,
        _ => Kind::Other,
    };
    // Cover art is a "video" stream with the attached_pic disposition: not a video.
    let kind = match raw.disposition.get("attached_pic") {
        Some(1) => Kind::Other,
        _ => kind,
    };
    let tag = raw
        .codec_tag_string
        .filter(|t| !t.starts_with('[') && !t.is_empty());
    let tag_value = |name: &str| {
        raw.tags
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    Track {
        index: raw.index,
        kind,
        codec: raw.codec_name.unwrap_or_else(|| "unknown".into()),
        profile: raw.profile,
        pix_fmt: raw.pix_fmt,
        tag,
        width: raw.width,
        height: raw.height,
        channels: raw.channels,
        frame_rate: (kind == Kind::Video)
            .then(|| {
                [&raw.avg_frame_rate, &raw.r_frame_rate]
                    .into_iter()
                    .find_map(|r| rate(r.as_deref()?))
            })
            .flatten(),
        language: tag_value("language"),
        title: tag_value("title"),
        default: raw.disposition.get("default") == Some(&1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_read_as_ffprobe_writes_them() {
        let cases = [
            ("24000/1001", Some(23.976)),
            ("25/1", Some(25.0)),
            ("30", Some(30.0)),
            ("0/0", None),
            ("1/0", None),
            ("", None),
        ];
        for (text, want) in cases {
            let got = rate(text).map(|r| (r * 1000.0).round() / 1000.0);
            assert_eq!(got, want, "{text:?}");
        }
    }
}
