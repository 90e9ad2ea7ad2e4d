//! Release-name quality detection (resolution, source, codec, HDR): a pure
//! function over a torrent or file name, table-tested.
//!
//! This module owns the vocabulary of scene/P2P quality tags and how each one
//! is normalised. It does no I/O and keeps no state: [`parse_quality`] maps a
//! name to a [`Quality`] and never fails.

/// Quality attributes detected in a release name; `None`/`false` = not found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Quality {
    /// "2160p", "1440p", "1080p", "720p", "576p", "480p" or "360p".
    /// "4K", "UHD" and "3840x2160" give "2160p"; interlaced "1080i" gives "1080p".
    pub resolution: Option<String>,
    /// "BluRay", "Remux", "WEB-DL", "WEBRip", "HDTV", "DVDRip", "DVD", "BDRip",
    /// "BRRip", "HDRip", "CAM", "TS", "TC" or "SCR". A BluRay Remux is "Remux".
    pub source: Option<String>,
    /// "x264" (also H.264/AVC), "x265" (also H.265/HEVC), "AV1", "VP9",
    /// "XviD", "DivX" or "MPEG-2".
    pub codec: Option<String>,
    /// True for HDR, HDR10, HDR10+, Dolby Vision (DV, DoVi) and HLG.
    pub hdr: bool,
}

#[derive(Clone, Copy)]
enum Tag {
    Resolution(&'static str),
    Source(&'static str),
    Codec(&'static str),
    Hdr,
}

/// Each tag and its spellings: whole tokens, lowercase, separators removed.
const VOCABULARY: &[(Tag, &[&str])] = &[
    (Tag::Resolution("2160p"), &["4k", "uhd"]),
    (Tag::Source("Remux"), &["remux", "bdremux"]),
    (Tag::Source("BluRay"), &["bluray", "bd"]),
    (Tag::Source("WEB-DL"), &["webdl", "web"]),
    (Tag::Source("WEBRip"), &["webrip"]),
    (Tag::Source("HDTV"), &["hdtv"]),
    (Tag::Source("DVDRip"), &["dvdrip"]),
    (Tag::Source("DVD"), &["dvd", "dvdr", "dvd5", "dvd9"]),
    (Tag::Source("BDRip"), &["bdrip"]),
    (Tag::Source("BRRip"), &["brrip"]),
    (Tag::Source("HDRip"), &["hdrip"]),
    (Tag::Source("CAM"), &["cam", "camrip", "hdcam"]),
    (Tag::Source("TS"), &["ts", "hdts", "telesync"]),
    (Tag::Source("TC"), &["tc", "hdtc", "telecine"]),
    (Tag::Source("SCR"), &["scr", "screener", "dvdscr"]),
    (Tag::Codec("x264"), &["x264", "h264", "avc"]),
    (Tag::Codec("x265"), &["x265", "h265", "hevc"]),
    (Tag::Codec("AV1"), &["av1"]),
    (Tag::Codec("VP9"), &["vp9"]),
    (Tag::Codec("XviD"), &["xvid"]),
    (Tag::Codec("DivX"), &["divx"]),
    (Tag::Codec("MPEG-2"), &["mpeg2"]),
    (Tag::Hdr, &["hdr", "hdr10", "hdr10+", "hdr10plus", "hlg"]),
    (Tag::Hdr, &["dv", "dovi", "dolbyvision"]),
];

/// Tags that are also ordinary words or title abbreviations ("Cam Girl",
/// "Charlotte's Web"): trusted only after the title (a year, an episode
/// marker or another tag came earlier) or right next to an unambiguous tag.
const AMBIGUOUS: &[&str] = &["bd", "cam", "dv", "scr", "tc", "ts", "web"];

/// First halves of tags that a separator splits ("WEB-DL", "H.264", "Dolby Vision").
const SPLIT_HEADS: &[&str] = &[
    "bd", "blu", "br", "dolby", "dvd", "h", "hd", "hdr10", "mpeg", "web",
];

/// Container extensions dropped before parsing (".ts" is not a telesync).
const EXTENSIONS: &[&str] = &[
    "avi", "m2ts", "m4v", "mkv", "mov", "mp4", "mpg", "ts", "webm", "wmv",
];

/// Label, height and width of each known resolution, largest first.
const RESOLUTIONS: &[(&str, u32, u32)] = &[
    ("2160p", 2160, 3840),
    ("1440p", 1440, 2560),
    ("1080p", 1080, 1920),
    ("720p", 720, 1280),
    ("576p", 576, 1024),
    ("480p", 480, 854),
    ("360p", 360, 640),
];

/// Detects resolution, source, codec and HDR in a torrent or file name.
///
/// Matching is case-insensitive and on whole tokens only. The first
/// resolution, source and codec found win, except that "Remux" overrides any
/// other source. Short tags that are also words ("CAM", "TS", "TC", "SCR",
/// "DV", "WEB", "BD") count only after the title or beside another tag, and a
/// container extension (".mkv", ".ts") is ignored. Never panics; names
/// without quality tags give `Quality::default()`.
pub fn parse_quality(name: &str) -> Quality {
    let words = merge_split_tags(tokenize(strip_extension(name)));
    let mut quality = Quality::default();
    let mut after_title = false;
    for (index, word) in words.iter().enumerate() {
        let tag = classify(word).filter(|_| {
            after_title || !is_ambiguous(word) || next_to_unambiguous_tag(&words, index)
        });
        if let Some(tag) = tag {
            apply(&mut quality, tag);
        }
        after_title |= tag.is_some() || is_year(word) || is_episode(word);
    }
    quality
}

fn strip_extension(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((stem, ext)) if EXTENSIONS.iter().any(|e| ext.eq_ignore_ascii_case(e)) => stem,
        _ => name,
    }
}

fn tokenize(name: &str) -> Vec<String> {
    let is_separator = |c: char| {
        c.is_whitespace() || matches!(c, '.' | '_' | '-' | '[' | ']' | '(' | ')' | '{' | '}')
    };
    name.split(is_separator)
        .filter(|token| !token.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Rejoins pairs like ["web", "dl"] or ["h", "264"] that form one known tag.
fn merge_split_tags(tokens: Vec<String>) -> Vec<String> {
    let mut words = Vec::with_capacity(tokens.len());
    let mut tokens = tokens.into_iter().peekable();
    while let Some(token) = tokens.next() {
        let joined = match tokens.peek() {
            Some(next) if SPLIT_HEADS.contains(&token.as_str()) => format!("{token}{next}"),
            _ => String::new(),
        };
        if lookup(&joined).is_some() {
            tokens.next();
            words.push(joined);
        } else {
            words.push(token);
        }
    }
    words
}

fn lookup(word: &str) -> Option<Tag> {
    VOCABULARY
        .iter()
        .find(|(_, spellings)| spellings.contains(&word))
        .map(|&(tag, _)| tag)
}

fn classify(word: &str) -> Option<Tag> {
    lookup(word).or_else(|| parse_resolution(word).map(Tag::Resolution))
}

fn is_ambiguous(word: &str) -> bool {
    AMBIGUOUS.contains(&word)
}

fn next_to_unambiguous_tag(words: &[String], index: usize) -> bool {
    let before = index.checked_sub(1).and_then(|i| words.get(i));
    [before, words.get(index + 1)]
        .into_iter()
        .flatten()
        .any(|word| !is_ambiguous(word) && classify(word).is_some())
}

/// "1080p", "1080i" or "1920x1080"; a bare number like "2160" is not one.
fn parse_resolution(word: &str) -> Option<&'static str> {
    if let Some((width, height)) = word.split_once('x') {
        let (width, height) = (number(width)?, number(height)?);
        let fits = |r: &&(&str, u32, u32)| height >= r.1 || width >= r.2;
        return RESOLUTIONS.iter().find(fits).map(|r| r.0);
    }
    let height = number(word.strip_suffix(['p', 'i'])?)?;
    RESOLUTIONS.iter().find(|r| r.1 == height).map(|r| r.0)
}

/// A 3- or 4-digit number.
fn number(digits: &str) -> Option<u32> {
    let plausible = (3..=4).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    plausible.then(|| digits.parse().ok()).flatten()
}

fn is_year(word: &str) -> bool {
    word.len() == 4 && number(word).is_some_and(|n| (1900..=2099).contains(&n))
}

/// "s01", "s01e02", "s01e01e02".
fn is_episode(word: &str) -> bool {
    word.strip_prefix('s').is_some_and(|rest| {
        rest.starts_with(|c: char| c.is_ascii_digit())
            && rest.chars().all(|c| c.is_ascii_digit() || c == 'e')
    })
}

fn apply(quality: &mut Quality, tag: Tag) {
    let fill = |slot: &mut Option<String>, value: &str| {
        slot.get_or_insert_with(|| value.to_owned());
    };
    match tag {
        Tag::Resolution(value) => fill(&mut quality.resolution, value),
        Tag::Source("Remux") => quality.source = Some("Remux".to_owned()),
        Tag::Source(value) => fill(&mut quality.source, value),
        Tag::Codec(value) => fill(&mut quality.codec, value),
        Tag::Hdr => quality.hdr = true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Expect = Option<&'static str>;
    type Case = (&'static str, Expect, Expect, Expect, bool);

    /// (release name, resolution, source, codec, hdr)
    #[rustfmt::skip]
    const CASES: &[Case] = &[
        // Movies, scene style.
        ("The.Matrix.1999.1080p.BluRay.x264-GROUP", Some("1080p"), Some("BluRay"), Some("x264"), false),
        ("Inception.2010.2160p.UHD.BluRay.REMUX.HDR.HEVC.Atmos-FGT", Some("2160p"), Some("Remux"), Some("x265"), true),
        ("movie name 2020 1080p bluray remux avc", Some("1080p"), Some("Remux"), Some("x264"), false),
        ("Movie.Name.2020.1080P.BLURAY.X264", Some("1080p"), Some("BluRay"), Some("x264"), false),
        ("Movie.2021.720p.AMZN.WEB-DL.DDP5.1.H.264-NTG", Some("720p"), Some("WEB-DL"), Some("x264"), false),
        ("Nature.Doc.2018.1080p.BDRip.x265-GRP", Some("1080p"), Some("BDRip"), Some("x265"), false),
        ("Movie.2015.720p.BRRip.XviD.AC3", Some("720p"), Some("BRRip"), Some("XviD"), false),
        ("Movie.2016.HDRip.XviD-EVO", None, Some("HDRip"), Some("XviD"), false),
        ("Old.Movie.1985.DVD-Rip.DivX", None, Some("DVDRip"), Some("DivX"), false),
        ("Classic.Film.1960.DVD9.MPEG-2", None, Some("DVD"), Some("MPEG-2"), false),
        ("Anime.Movie.2020.1080p.WEB-DL.AV1.Opus", Some("1080p"), Some("WEB-DL"), Some("AV1"), false),
        // Pre-release sources.
        ("Some.Movie.2019.HDCAM.x264-GRP", None, Some("CAM"), Some("x264"), false),
        ("Some.Movie.2019.CAM.XviD-GRP", None, Some("CAM"), Some("XviD"), false),
        ("Some Movie 2019 TS XviD", None, Some("TS"), Some("XviD"), false),
        ("Movie.2019.720p.HDTC.x264", Some("720p"), Some("TC"), Some("x264"), false),
        ("Movie.2019.DVDSCR.XviD", None, Some("SCR"), Some("XviD"), false),
        // HDR flavours and alternative resolution spellings.
        ("The.Mandalorian.S02E01.2160p.DSNP.WEB-DL.DDP5.1.Atmos.DV.HDR10.H.265-FLUX", Some("2160p"), Some("WEB-DL"), Some("x265"), true),
        ("Dune.2021.3840x2160.BluRay.HEVC.HDR10+", Some("2160p"), Some("BluRay"), Some("x265"), true),
        ("Blade Runner 2049 (2017) 4K UHD BluRay Dolby Vision HEVC", Some("2160p"), Some("BluRay"), Some("x265"), true),
        ("Planet.Earth.II.2016.2160p.HLG.WEB-DL.VP9", Some("2160p"), Some("WEB-DL"), Some("VP9"), true),
        ("Movie.2020.2160p.WEB-DL.DoVi.x265", Some("2160p"), Some("WEB-DL"), Some("x265"), true),
        ("Avatar.2022.1920x1080.WEB-DL.AVC", Some("1080p"), Some("WEB-DL"), Some("x264"), false),
        ("Movie.2001.1280x720.x264", Some("720p"), None, Some("x264"), false),
        ("Movie.2019.1080i.HDTV.MPEG2", Some("1080p"), Some("HDTV"), Some("MPEG-2"), false),
        ("Some.Video.576p.x264.mkv", Some("576p"), None, Some("x264"), false),
        ("Home video 360p.mp4", Some("360p"), None, None, false),
        // TV episodes.
        ("Breaking.Bad.S05E14.720p.HDTV.x264-IMMERSE", Some("720p"), Some("HDTV"), Some("x264"), false),
        ("Stranger Things S04E01 1080p NF WEBRip DDP5.1 x264-NTb", Some("1080p"), Some("WEBRip"), Some("x264"), false),
        ("the.office.us.s03e05.480p.dvdrip.xvid", Some("480p"), Some("DVDRip"), Some("XviD"), false),
        ("Show.S01E01.1080p.WEB.h264-GRP", Some("1080p"), Some("WEB-DL"), Some("x264"), false),
        // Anime and bracketed names.
        ("[SubsPlease] Frieren - 01 (1080p) [F02B9CEE].mkv", Some("1080p"), None, None, false),
        ("[Judas] Vinland Saga - S01E01 [BD 1080p][HEVC x265 10bit].mkv", Some("1080p"), Some("BluRay"), Some("x265"), false),
        ("[Erai-raws] Spy x Family - 12 [720p][Multiple Subtitle].mkv", Some("720p"), None, None, false),
        ("Movie (2020) [1080p] [BluRay] [5.1] [YTS.MX]", Some("1080p"), Some("BluRay"), None, false),
        // False positives that must not fire.
        ("Cam.Girl.2021.720p.WEB-DL.x264", Some("720p"), Some("WEB-DL"), Some("x264"), false),
        ("Camera.Obscura.2020.1080p.BluRay.x264", Some("1080p"), Some("BluRay"), Some("x264"), false),
        ("Charlotte's.Web.2006.720p.BluRay.x264", Some("720p"), Some("BluRay"), Some("x264"), false),
        ("DV.Is.A.Title.2020.720p.HDTV.x264", Some("720p"), Some("HDTV"), Some("x264"), false),
        ("The.TS.Movie", None, None, None, false),
        ("Movie.2160.Something.mkv", None, None, None, false),
        ("Holiday.Clip.ts", None, None, None, false),
        // No quality information at all.
        ("Sintel", None, None, None, false),
        ("", None, None, None, false),
    ];

    #[test]
    fn release_names_parse_to_the_expected_quality() {
        for &(name, resolution, source, codec, hdr) in CASES {
            let expected = Quality {
                resolution: resolution.map(String::from),
                source: source.map(String::from),
                codec: codec.map(String::from),
                hdr,
            };
            assert_eq!(parse_quality(name), expected, "name: {name:?}");
        }
    }

    #[test]
    fn garbage_unicode_and_huge_input_do_not_panic() {
        let palette = [
            '.', '-', '_', ' ', '[', ')', 'x', 'p', '1', '0', '9', 'é', '日', '🎬', '\0', 's',
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2_000 {
            let garbage: String = (0..64)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    palette[(seed >> 60) as usize]
                })
                .collect();
            parse_quality(&garbage);
        }
        for odd in [
            "....", "-", "[]()", "x", "p", "s", "ts.ts", "1x", "0x0", "\u{0}",
        ] {
            assert_eq!(parse_quality(odd), Quality::default(), "{odd:?}");
        }
        let overlong_number = format!("{}p", "9".repeat(40));
        assert_eq!(parse_quality(&overlong_number), Quality::default());
        let unicode = parse_quality("日本語.1080p.🎬");
        assert_eq!(unicode.resolution.as_deref(), Some("1080p"));
        assert_eq!(parse_quality(&"a.".repeat(500_000)), Quality::default());
        let huge = "1080p.".repeat(100_000);
        assert_eq!(parse_quality(&huge).resolution.as_deref(), Some("1080p"));
    }
}
