//! Text subtitle helpers, as pure functions: text decoding that survives the
//! legacy encodings torrents carry (UTF-8 with or without BOM, UTF-16 with BOM, else
//! Windows-1252), SubRip → WebVTT, WebVTT passed through, and the language from the file
//! name (`Movie.en.srt` → `en`).

/// Largest subtitle file converted.
pub const MAX_SUBTITLE_BYTES: u64 = 8 << 20;

/// Decodes subtitle bytes to text.
pub fn decode_text(bytes: &[u8]) -> String {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, _) = encoding.decode_without_bom_handling(&bytes[bom..]);
        return text.into_owned();
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned(),
    }
}

/// SubRip text as WebVTT: cue numbers dropped, `,` → `.` in timings, blank-line separated.
pub fn srt_to_vtt(text: &str) -> String {
    let mut out = String::from("WEBVTT\n\n");
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    for block in normalized.split("\n\n") {
        let mut lines = block.lines().skip_while(|l| l.trim().is_empty()).peekable();
        // An optional numeric cue identifier.
        if lines
            .peek()
            .is_some_and(|l| l.trim().chars().all(|c| c.is_ascii_digit()))
        {
            lines.next();
        }
        let Some(timing) = lines.next().filter(|l| l.contains("-->")) else {
            continue;
        };
        let body: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
        if body.is_empty() {
            continue;
        }
        out.push_str(&vtt_timing(timing));
        out.push('\n');
        for line in body {
            // A line of only "-->" would be read as a timing line.
            out.push_str(&line.replace("-->", "->"));
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// `00:00:01,000 --> 00:00:04,000 X1:…` → `00:00:01.000 --> 00:00:04.000`.
fn vtt_timing(line: &str) -> String {
    let mut parts = line.split("-->");
    let start = parts.next().unwrap_or("").trim().replace(',', ".");
    let end = parts
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("")
        .replace(',', ".");
    format!("{start} --> {end}")
}

/// WebVTT text as served: made sure it starts with the `WEBVTT` signature.
pub fn vtt(text: &str) -> String {
    let text = text.trim_start_matches('\u{feff}');
    if text.starts_with("WEBVTT") {
        text.to_owned()
    } else {
        format!("WEBVTT\n\n{text}")
    }
}

/// The language tag in a subtitle file name (`Movie.en.srt`, `Movie.eng.forced.srt`).
pub fn language_of(path: &str) -> Option<String> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let marker = |part: &&str| {
        matches!(
            part.to_ascii_lowercase().as_str(),
            "forced" | "sdh" | "cc" | "hi" | "default" | "full"
        )
    };
    // The last dotted part before the extension (after markers like `forced`).
    let part = stem.split(['.', '_']).rev().find(|p| !marker(p))?;
    is_language_tag(part).then(|| part.to_ascii_lowercase())
}

/// `en`, `eng`, `pt-BR`.
fn is_language_tag(part: &str) -> bool {
    let (primary, region) = part.split_once('-').unwrap_or((part, ""));
    let alpha = |s: &str, lens: std::ops::RangeInclusive<usize>| {
        lens.contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphabetic())
    };
    alpha(primary, 2..=3) && (region.is_empty() || alpha(region, 2..=4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srt_becomes_webvtt() {
        let srt = "1\r\n00:00:01,000 --> 00:00:04,000\r\nFirst line.\r\n\r\n2\r\n00:00:05,000 --> 00:00:09,500 X1:0\r\nSecond,\r\ntwo lines.\r\n\r\n\r\n3\r\n00:00:10,000 --> 00:00:11,000\r\n\r\n";
        let vtt = srt_to_vtt(srt);
        assert_eq!(
            vtt,
            "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nFirst line.\n\n00:00:05.000 --> 00:00:09.500\nSecond,\ntwo lines.\n\n"
        );
        assert_eq!(srt_to_vtt("garbage without cues"), "WEBVTT\n\n");
    }

    #[test]
    fn text_decodes_from_utf8_utf16_and_windows_1252() {
        assert_eq!(decode_text("café".as_bytes()), "café");
        assert_eq!(decode_text(b"\xEF\xBB\xBFcaf\xC3\xA9"), "café");
        assert_eq!(decode_text(b"caf\xE9 na\xEFve"), "café naïve");
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("é".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(decode_text(&utf16), "é");
    }

    #[test]
    fn languages_come_from_the_file_name() {
        let cases = [
            ("Movie.2019.1080p.BluRay.x264.en.srt", Some("en")),
            ("Subs/Movie.ENG.forced.srt", Some("eng")),
            ("Movie.pt-BR.srt", Some("pt-br")),
            ("Movie.eng.sdh.srt", Some("eng")),
            ("movie.srt", None),
            ("The.Big.Short.srt", None),
        ];
        for (path, want) in cases {
            assert_eq!(language_of(path).as_deref(), want, "{path}");
        }
        assert!(vtt("\u{feff}WEBVTT\n\n1").starts_with("WEBVTT"));
        assert!(vtt("00:01.000 --> 00:02.000\nhi").starts_with("WEBVTT\n\n"));
    }
}
