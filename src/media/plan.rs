//! The play plan: a pure function of (probe, client) deciding how a file reaches a player —
//! `direct` (the file as it is), `remux` (HLS, both tracks copied), `remux_audio` (HLS, video
//! copied, audio to AAC stereo) or `transcode` (HLS, video to H.264 too). Chromium fails
//! silently on AC-3/E-AC-3/DTS (no sound) and HEVC (black picture), so the plan decides from
//! codecs, never from playback errors. mpv and VLC play everything directly.

use serde::Serialize;

use super::{
    client::Client,
    probe::{Container, Kind, Probe, Track},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Direct,
    Remux,
    RemuxAudio,
    Transcode,
}

/// What happens to a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Copy,
    /// Video to H.264 (libx264).
    H264,
    /// Audio to AAC stereo.
    Aac,
}

/// The decision, with the tracks it uses and why.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub mode: Mode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<TrackPlan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<TrackPlan>,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackPlan {
    pub index: u32,
    /// The source codec.
    pub codec: String,
    pub action: Action,
}

/// Nothing can make the file playable for this client (`UNSUPPORTED_MEDIA`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

/// Decides how `client` plays the probed file. `allow_video_transcode` is
/// `media.allow_video_transcode`.
pub fn plan(
    probe: &Probe,
    client: Client,
    allow_video_transcode: bool,
) -> Result<Plan, Unsupported> {
    let video = probe.tracks(Kind::Video).next();
    let audio = probe.tracks(Kind::Audio).next();
    if video.is_none() && audio.is_none() {
        return Err(Unsupported("the file has no audio or video track".into()));
    }
    let copy = |t: &Track| TrackPlan {
        index: t.index,
        codec: t.codec.clone(),
        action: Action::Copy,
    };
    if client.plays_anything() {
        return Ok(Plan {
            mode: Mode::Direct,
            video: video.map(copy),
            audio: audio.map(copy),
            reasons: vec![format!("{client:?} plays every container and codec")],
        });
    }
    let mut reasons = Vec::new();
    let container_ok = container_plays(&probe.container, client);
    if !container_ok {
        reasons.push(format!(
            "{client:?} does not play the {:?} container",
            probe.container
        ));
    }
    let video_ok = video.is_none_or(|v| video_plays(v, client, &probe.container));
    if let (Some(v), false) = (video, video_ok) {
        reasons.push(format!("{client:?} does not decode {} video", describe(v)));
    }
    let audio_ok = audio.is_none_or(|a| audio_plays(&a.codec, client));
    if let (Some(a), false) = (audio, audio_ok) {
        reasons.push(format!("{client:?} does not decode {} audio", a.codec));
    }
    if container_ok && video_ok && audio_ok {
        return Ok(Plan {
            mode: Mode::Direct,
            video: video.map(copy),
            audio: audio.map(copy),
            reasons: vec![format!("{client:?} plays this file as it is")],
        });
    }
    let video_copies = video.is_none_or(|v| video_copies_to_hls(v, client));
    let audio_copies = audio.is_none_or(|a| audio_copies_to_hls(&a.codec, client));
    let audio_plan = audio.map(|a| TrackPlan {
        index: a.index,
        codec: a.codec.clone(),
        action: if audio_copies {
            Action::Copy
        } else {
            Action::Aac
        },
    });
    if video_copies {
        let mode = if audio_copies {
            Mode::Remux
        } else {
            Mode::RemuxAudio
        };
        return Ok(Plan {
            mode,
            video: video.map(copy),
            audio: audio_plan,
            reasons,
        });
    }
    if !allow_video_transcode {
        reasons.push("video transcoding is off (media.allow_video_transcode)".into());
        return Err(Unsupported(reasons.join("; ")));
    }
    let video_plan = video.map(|v| TrackPlan {
        index: v.index,
        codec: v.codec.clone(),
        action: Action::H264,
    });
    Ok(Plan {
        mode: Mode::Transcode,
        video: video_plan,
        audio: audio_plan,
        reasons,
    })
}

fn describe(track: &Track) -> String {
    match (&track.profile, &track.pix_fmt) {
        (Some(profile), Some(pix)) => format!("{} ({profile}, {pix})", track.codec),
        _ => track.codec.clone(),
    }
}

fn container_plays(container: &Container, client: Client) -> bool {
    match client {
        Client::Safari => matches!(container, Container::Mp4),
        _ => matches!(container, Container::Mp4 | Container::WebM),
    }
}

/// 8-bit 4:2:0 H.264: what every browser decoder handles (not High 10, 4:2:2, 4:4:4).
fn plain_h264(track: &Track) -> bool {
    track.codec == "h264"
        && matches!(
            track.pix_fmt.as_deref(),
            Some("yuv420p" | "yuvj420p") | None
        )
}

fn video_plays(track: &Track, client: Client, container: &Container) -> bool {
    match client {
        Client::Safari => {
            plain_h264(track)
                || (track.codec == "hevc"
                    && *container == Container::Mp4
                    && track.tag.as_deref() == Some("hvc1"))
        }
        _ => plain_h264(track) || matches!(track.codec.as_str(), "vp9" | "vp8" | "av1"),
    }
}

/// Copied into fMP4 HLS segments as they are (HEVC is written with the `hvc1` tag).
fn video_copies_to_hls(track: &Track, client: Client) -> bool {
    match client {
        Client::Safari => plain_h264(track) || track.codec == "hevc",
        _ => plain_h264(track) || matches!(track.codec.as_str(), "vp9" | "av1"),
    }
}

fn audio_plays(codec: &str, client: Client) -> bool {
    match client {
        Client::Safari => matches!(codec, "aac" | "mp3" | "ac3" | "eac3" | "flac" | "alac"),
        _ => matches!(codec, "aac" | "mp3" | "opus" | "flac" | "vorbis"),
    }
}

/// Audio copied into fMP4 HLS as it is; anything else becomes AAC stereo (cheap: ~30× real
/// time) rather than relying on each browser's MSE support for Opus/FLAC in MP4.
fn audio_copies_to_hls(codec: &str, client: Client) -> bool {
    match client {
        Client::Safari => matches!(codec, "aac" | "mp3" | "ac3" | "eac3"),
        _ => matches!(codec, "aac" | "mp3"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(name: &str) -> Probe {
        let path = format!("{}/fixtures/probe/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let json = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let ext = name.split('-').next().unwrap();
        Probe::from_json(&json, &format!("{name}.{ext}")).unwrap()
    }

    fn mode(name: &str, client: Client) -> Result<Mode, Unsupported> {
        plan(&probe(name), client, true).map(|p| p.mode)
    }

    use Mode::*;

    /// Every committed probe × browser and Safari rules.
    #[rustfmt::skip]
    const TABLE: &[(&str, Mode, Mode)] = &[
        // file                     browser      safari
        ("mp4-h264-aac",            Direct,      Direct),
        ("mp4-h264-aac-movtext",    Direct,      Direct),
        ("mp4-h264-mp3",            Direct,      Direct),
        ("mp4-h264-opus",           Direct,      RemuxAudio),
        ("mp4-h264-flac",           Direct,      Direct),
        ("mp4-h264-ac3",            RemuxAudio,  Direct),
        ("mp4-h264-eac3",           RemuxAudio,  Direct),
        ("mp4-hevc-aac",            Transcode,   Remux),       // hev1 tag: Safari needs hvc1
        ("mp4-hevc_hvc1-aac",       Transcode,   Direct),
        ("mp4-vp9-aac",             Direct,      Transcode),
        ("mp4-av1-aac",             Direct,      Transcode),
        ("mp4-mpeg4-aac",           Transcode,   Transcode),
        ("mkv-h264-aac",            Remux,       Remux),
        ("mkv-h264-aac-subrip",     Remux,       Remux),
        ("mkv-h264-aac-pgs",        Remux,       Remux),
        ("mkv-h264-aac-dvdsub",     Remux,       Remux),
        ("mkv-h264-ac3",            RemuxAudio,  Remux),
        ("mkv-h264-eac3",           RemuxAudio,  Remux),
        ("mkv-h264-dts",            RemuxAudio,  RemuxAudio),
        ("mkv-h264-truehd",         RemuxAudio,  RemuxAudio),
        ("mkv-h264-mp3",            Remux,       Remux),
        ("mkv-h264-opus",           RemuxAudio,  RemuxAudio),
        ("mkv-h264-flac",           RemuxAudio,  RemuxAudio),
        ("mkv-h264-vorbis",         RemuxAudio,  RemuxAudio),
        ("mkv-h264-none",           Remux,       Remux),
        ("mkv-h264_10bit-aac",      Transcode,   Transcode),
        ("mkv-hevc-aac",            Transcode,   Remux),
        ("mkv-hevc-eac3",           Transcode,   Remux),
        ("mkv-hevc-truehd",         Transcode,   RemuxAudio),
        ("mkv-hevc_10bit-aac",      Transcode,   Remux),
        ("mkv-vp9-aac",             Remux,       Transcode),
        ("mkv-av1-aac",             Remux,       Transcode),
        ("mkv-mpeg4-aac",           Transcode,   Transcode),
        ("mka-none-flac",           RemuxAudio,  RemuxAudio),
        ("webm-vp9-opus",           Direct,      Transcode),
        ("webm-vp9-vorbis",         Direct,      Transcode),
        ("webm-av1-opus",           Direct,      Transcode),
        ("avi-h264-aac",            Remux,       Remux),
        ("avi-hevc-aac",            Transcode,   Remux),
        ("avi-vp9-aac",             Remux,       Transcode),
        ("avi-av1-aac",             Remux,       Transcode),
        ("avi-mpeg4-aac",           Transcode,   Transcode),
        ("avi-mpeg4-mp3",           Transcode,   Transcode),
        ("avi-mpeg4_xvid-mp3",      Transcode,   Transcode),
        ("avi-mpeg4_xvid-ac3",      Transcode,   Transcode),
    ];

    #[test]
    fn every_committed_probe_gets_the_expected_plan() {
        let committed = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/probe"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count();
        assert_eq!(committed, TABLE.len(), "every fixture is in the table");
        let mut wrong = Vec::new();
        for &(name, browser, safari) in TABLE {
            for (client, want) in [(Client::Browser, browser), (Client::Safari, safari)] {
                let got = mode(name, client);
                if got != Ok(want) {
                    wrong.push(format!("{name} {client:?}: want {want:?}, got {got:?}"));
                }
            }
            for client in [Client::Mpv, Client::Vlc] {
                assert_eq!(mode(name, client), Ok(Direct), "{name} {client:?}");
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn the_common_torrent_case_copies_video_and_makes_aac() {
        let plan = plan(&probe("mkv-h264-ac3"), Client::Browser, true).unwrap();
        assert_eq!(plan.mode, RemuxAudio);
        let (video, audio) = (plan.video.clone().unwrap(), plan.audio.clone().unwrap());
        assert_eq!(
            (video.index, video.codec.as_str(), video.action),
            (0, "h264", Action::Copy)
        );
        assert_eq!(
            (audio.index, audio.codec.as_str(), audio.action),
            (1, "ac3", Action::Aac)
        );
        assert!(
            plan.reasons.iter().any(|r| r.contains("ac3")),
            "{:?}",
            plan.reasons
        );
    }

    #[test]
    fn without_video_transcoding_hevc_is_unsupported_in_a_browser() {
        let refused = plan(&probe("mkv-hevc-aac"), Client::Browser, false).unwrap_err();
        assert!(refused.0.contains("hevc"), "{refused}");
        let still = plan(&probe("mkv-h264-ac3"), Client::Browser, false).unwrap();
        assert_eq!(
            still.mode, RemuxAudio,
            "audio transcoding is always allowed"
        );
    }
}
