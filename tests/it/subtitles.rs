//! Subtitles end to end: external `.srt`/`.ass` files beside the video served as UTF-8 WebVTT
//! and as HLS `SUBTITLES` renditions; text tracks inside the MKV extracted by the real ffmpeg
//! on first request (503 + `Retry-After` while it reads the file); picture subtitles (PGS)
//! listed as `image` and refused with 415, never mangled.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

/// Tries (a second apart) of a subtitle request answered 503 while ffmpeg extracts.
const EXTRACTION_TRIES: usize = 90;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_srt_next_to_the_video_is_listed_and_served_as_webvtt() {
    let root = tempfile::tempdir().unwrap();
    let (_seeder, seeded) = seed(&fixtures().join("mkv"), None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let subtitles = stream["urls"]["subtitles"].as_array().unwrap();
    assert_eq!(subtitles.len(), 1, "{stream}");
    assert_eq!(subtitles[0]["lang"], "en");
    assert!(stream["urls"]["hls"]
        .as_str()
        .unwrap()
        .ends_with("/hls/master.m3u8"));
    let url = server.url(subtitles[0]["url"].as_str().unwrap());
    let (status, headers, body) = fetch(&url, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/vtt; charset=utf-8");
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.starts_with("WEBVTT\n\n00:00:01.000 --> 00:00:04.000\n"),
        "{text}"
    );
    assert!(text.contains("café, naïve"), "{text}");
    let (status, body) = json_of(
        client()
            .get(url.replace("/0.vtt", "/7.vtt"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 404, "FILE_NOT_FOUND");

    // The same track as an HLS SUBTITLES rendition, mapped for fMP4.
    let hls = format!("{}/hls", server.playback_base(&stream));
    let (_, _, master) = fetch(&format!("{hls}/master.m3u8?client=browser"), None).await;
    let master = String::from_utf8(master).unwrap();
    assert!(
        master
            .contains("#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"en\",LANGUAGE=\"en\""),
        "{master}"
    );
    assert!(
        master.contains("URI=\"subs/0.m3u8\"") && master.contains("SUBTITLES=\"subs\""),
        "{master}"
    );
    let (status, _, playlist) = fetch(&format!("{hls}/subs/0.m3u8"), None).await;
    assert_eq!(status, StatusCode::OK);
    let playlist = String::from_utf8(playlist).unwrap();
    assert_eq!(uris(&playlist), ["0.vtt"], "{playlist}");
    assert!(playlist.contains("#EXT-X-ENDLIST"));
    let (status, _, vtt) = fetch(&format!("{hls}/subs/0.vtt"), None).await;
    assert_eq!(status, StatusCode::OK);
    let vtt = String::from_utf8(vtt).unwrap();
    assert!(
        vtt.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n00:00:01.000"),
        "{vtt}"
    );
    server.stop().await;
}

/// A folder with an MKV holding two text subtitle streams (stream 2: SubRip, `spa`, titled
/// "Forced"; stream 3: ASS, `fre`), an external Windows-1252 `.ass` and an external PGS `.sup`.
fn subtitled_movie(dir: &Path) -> PathBuf {
    require_tool("ffmpeg", "ffmpeg");
    let folder = dir.join("Subtitled.Movie");
    std::fs::create_dir_all(&folder).unwrap();
    let srt = dir.join("inner.srt");
    std::fs::write(
        &srt,
        "1\n00:00:01,000 --> 00:00:04,000\nInner SubRip line.\n\n2\n00:00:12,500 --> 00:00:14,000\nA later line.\n",
    )
    .unwrap();
    let ass = dir.join("inner.ass");
    std::fs::write(&ass, ass_script("Ligne intérieure")).unwrap();
    let source = fixtures().join("mkv/Sample.Movie.2019.1080p.BluRay.x264.mkv");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&source)
        .arg("-i")
        .arg(&srt)
        .arg("-i")
        .arg(&ass)
        .args(["-map", "0", "-map", "1", "-map", "2", "-c", "copy"])
        .args([
            "-metadata:s:s:0",
            "language=spa",
            "-metadata:s:s:0",
            "title=Forced",
        ])
        .args(["-metadata:s:s:1", "language=fre"])
        .arg(folder.join("Subtitled.Movie.mkv"))
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg muxed the subtitled MKV");
    // External files: an ASS script in Windows-1252 and a PGS file (pictures).
    let latin1: Vec<u8> = ass_script("Deuxième {\\i1}ligne{\\i0}")
        .chars()
        .map(|c| u8::try_from(u32::from(c)).expect("Latin-1"))
        .collect();
    std::fs::write(folder.join("Subtitled.Movie.fr.ass"), latin1).unwrap();
    std::fs::write(folder.join("Subtitled.Movie.pt.sup"), pattern(4096, 7)).unwrap();
    folder
}

/// An ASS script with one dialogue line from 2 s to 3.5 s.
fn ass_script(line: &str) -> String {
    format!(
        "[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\nFormat: Name, Fontname, Fontsize\nStyle: Default,Arial,20\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\nDialogue: 0,0:00:02.00,0:00:03.50,Default,,0,0,0,,{line}\n"
    )
}

/// GETs `url`, retrying while it answers 503 (each answer must carry `Retry-After`).
async fn fetch_when_ready(url: &str) -> (StatusCode, String) {
    for _ in 0..EXTRACTION_TRIES {
        let response = client().get(url).send().await.unwrap();
        let status = response.status();
        if status != StatusCode::SERVICE_UNAVAILABLE {
            return (status, response.text().await.unwrap());
        }
        assert!(response.headers().contains_key("retry-after"));
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    panic!("{url} still answered 503 after {EXTRACTION_TRIES} tries");
}

/// `(id, kind, lang, has a URL)` of each listed track.
fn listed(tracks: &Value) -> Vec<(String, String, String, bool)> {
    tracks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_owned(),
                t["kind"].as_str().unwrap().to_owned(),
                t["lang"].as_str().unwrap_or("").to_owned(),
                t["url"].is_string(),
            )
        })
        .collect()
}

fn track(id: &str, kind: &str, lang: &str, url: bool) -> (String, String, String, bool) {
    (id.into(), kind.into(), lang.into(), url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_and_external_tracks_are_listed_converted_and_offered_in_hls() {
    require_tool("ffprobe", "ffmpeg");
    let root = tempfile::tempdir().unwrap();
    let folder = subtitled_movie(root.path());
    let (_seeder, seeded) = seed(&folder, None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    // Before a probe only the external files are known; the PGS one is listed without a URL.
    assert_eq!(
        listed(&stream["urls"]["subtitles"]),
        [
            track("0", "text", "fr", true),
            track("1", "image", "pt", false)
        ],
        "{stream}"
    );
    let base = server.playback_base(&stream);

    let (status, _, body) = fetch(&format!("{base}/subs/0.vtt"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "WEBVTT\n\n00:00:02.000 --> 00:00:03.500\nDeuxième <i>ligne</i>\n\n"
    );
    let (status, body) = json_of(
        client()
            .get(format!("{base}/subs/1.vtt"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 415, "UNSUPPORTED_MEDIA");

    // The probe lists the embedded tracks too, and so does the stream from then on.
    let (status, probe) =
        json_of(client().get(format!("{base}/probe")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{probe}");
    let ids: Vec<&str> = probe["subtitles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["0", "1", "e2", "e3"], "{probe}");
    let (_, stream) = server
        .get_api(
            "alice",
            &format!("/api/v1/streams/{}", stream["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(
        listed(&stream["urls"]["subtitles"]),
        [
            track("0", "text", "fr", true),
            track("1", "image", "pt", false),
            track("e2", "text", "spa", true),
            track("e3", "text", "fre", true),
        ],
        "{stream}"
    );
    assert_eq!(stream["urls"]["subtitles"][2]["title"], "Forced");
    assert_eq!(stream["urls"]["subtitles"][2]["format"], "subrip");

    let (status, vtt) = fetch_when_ready(&format!("{base}/subs/e2.vtt")).await;
    assert_eq!(status, StatusCode::OK, "{vtt}");
    assert!(vtt.starts_with("WEBVTT"), "{vtt}");
    // ffmpeg writes `mm:ss.ttt` below an hour.
    assert!(
        vtt.contains("00:01.000 --> 00:04.000\nInner SubRip line."),
        "{vtt}"
    );
    assert!(
        vtt.contains("00:12.500 --> 00:14.000\nA later line."),
        "{vtt}"
    );
    let (status, vtt) = fetch_when_ready(&format!("{base}/subs/e3.vtt")).await;
    assert_eq!(status, StatusCode::OK, "{vtt}");
    assert!(
        vtt.contains("00:02.000 --> 00:03.500\nLigne intérieure"),
        "{vtt}"
    );
    let (status, body) = json_of(
        client()
            .get(format!("{base}/subs/e9.vtt"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 404, "FILE_NOT_FOUND");

    // HLS: every text track is a SUBTITLES rendition; the picture track is not.
    let (_, _, master) = fetch(&format!("{base}/hls/master.m3u8?client=browser"), None).await;
    let master = String::from_utf8(master).unwrap();
    for uri in ["subs/0.m3u8", "subs/e2.m3u8", "subs/e3.m3u8"] {
        assert!(
            master.contains(&format!("URI=\"{uri}\"")),
            "{uri} in {master}"
        );
    }
    assert!(!master.contains("subs/1.m3u8"), "{master}");
    assert!(
        master.contains("NAME=\"spa (Forced)\",LANGUAGE=\"spa\""),
        "{master}"
    );
    let (_, _, playlist) = fetch(&format!("{base}/hls/subs/e2.m3u8"), None).await;
    assert_eq!(uris(&String::from_utf8(playlist).unwrap()), ["e2.vtt"]);
    let (status, vtt) = fetch_when_ready(&format!("{base}/hls/subs/e2.vtt")).await;
    assert_eq!(status, StatusCode::OK, "{vtt}");
    assert!(
        vtt.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n"),
        "{vtt}"
    );
    assert!(vtt.contains("Inner SubRip line."), "{vtt}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_track_answers_503_until_ffmpeg_has_read_the_whole_file_and_keeps_no_cut_track()
{
    require_tool("ffprobe", "ffmpeg");
    let root = tempfile::tempdir().unwrap();
    let folder = subtitled_movie(root.path());
    // ~560 KB at 64 KiB/s in 32 KiB pieces: the probe needs the first pieces, the extraction
    // all of them (about 9 s).
    let seeder = magnetar::seeder::Seeder::start(Some(64 * 1024))
        .await
        .unwrap();
    let seeded = seeder.seed_with(&folder, Some(32 * 1024)).await.unwrap();
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.media.hls_wait = std::time::Duration::from_millis(300);
    })
    .await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let base = server.playback_base(&stream);
    let (status, probe) =
        json_of(client().get(format!("{base}/probe")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{probe}");
    let response = client()
        .get(format!("{base}/subs/e2.vtt"))
        .send()
        .await
        .unwrap();
    let retry_after = response.headers().get("retry-after").cloned();
    let (status, body) = json_of(response).await;
    assert_error(status, &body, 503, "PLAYLIST_NOT_READY");
    assert!(retry_after.is_some(), "503 carries Retry-After");

    // The stream is deleted mid-extraction: ffmpeg's input ends early, and what it wrote must
    // not be kept for the next stream of the same file.
    let id = stream["id"].as_str().unwrap();
    assert_eq!(server.delete("alice", id).await, StatusCode::NO_CONTENT);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let base = server.playback_base(&stream);
    let (status, vtt) = fetch_when_ready(&format!("{base}/subs/e2.vtt")).await;
    assert_eq!(status, StatusCode::OK, "{vtt}");
    assert!(vtt.contains("Inner SubRip line."), "{vtt}");
    assert!(
        vtt.contains("A later line."),
        "the whole track, not a cut one: {vtt}"
    );
    server.stop().await;
    seeder.stop().await;
}
