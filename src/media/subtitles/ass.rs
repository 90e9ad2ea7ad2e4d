//! Advanced SubStation Alpha (`.ass`, `.ssa`) → WebVTT, as a pure function: the `[Events]`
//! section's `Dialogue` lines, in the field order its `Format` line gives, with times
//! converted, cues sorted by start, override blocks dropped (bold/italic/underline kept as
//! WebVTT tags), `\N` line breaks, `\h` spaces, drawings (`\p1`) skipped and cue text escaped.

/// ASS/SSA text as WebVTT.
pub fn ass_to_vtt(text: &str) -> String {
    let mut cues = Vec::new();
    let mut in_events = false;
    // SSA and ASS both default to this order when no `Format` line comes first.
    let mut format: Vec<String> = [
        "layer", "start", "end", "style", "name", "marginl", "marginr", "marginv", "effect", "text",
    ]
    .map(String::from)
    .to_vec();
    for line in text.lines() {
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.starts_with('[') {
            in_events = line.eq_ignore_ascii_case("[events]");
            continue;
        }
        if !in_events {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "format" => {
                format = value
                    .split(',')
                    .map(|f| f.trim().to_ascii_lowercase())
                    .collect();
            }
            "dialogue" => cues.extend(cue(&format, value)),
            _ => {}
        }
    }
    cues.sort_by_key(|c| c.start);
    let mut out = String::from("WEBVTT\n\n");
    for c in cues {
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            timestamp(c.start),
            timestamp(c.end),
            c.text
        ));
    }
    out
}

struct Cue {
    start: u64,
    end: u64,
    text: String,
}

/// One `Dialogue:` value; the text field takes the rest of the line (it may hold commas).
fn cue(format: &[String], value: &str) -> Option<Cue> {
    let fields: Vec<&str> = value.splitn(format.len(), ',').collect();
    let field = |name: &str| {
        format
            .iter()
            .position(|f| f == name)
            .and_then(|i| fields.get(i))
            .map(|v| v.trim())
    };
    let start = millis(field("start")?)?;
    let end = millis(field("end")?)?;
    let text = cue_text(field("text")?);
    (end > start && !text.trim().is_empty()).then_some(Cue { start, end, text })
}

/// `H:MM:SS.cc` → milliseconds.
fn millis(time: &str) -> Option<u64> {
    let mut parts = time.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac_ms = match frac.len() {
        0 => 0,
        1 => frac.parse::<u64>().ok()? * 100,
        2 => frac.parse::<u64>().ok()? * 10,
        _ => frac.get(..3)?.parse::<u64>().ok()?,
    };
    let (h, m, secs): (u64, u64, u64) = (h.parse().ok()?, m.parse().ok()?, secs.parse().ok()?);
    Some(((h * 60 + m) * 60 + secs) * 1000 + frac_ms)
}

fn timestamp(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// The cue's text: override blocks interpreted or dropped, escapes resolved, WebVTT-escaped.
fn cue_text(raw: &str) -> String {
    let mut out = String::new();
    let mut open: Vec<&'static str> = Vec::new();
    let mut drawing = false;
    let mut rest = raw;
    while let Some(c) = rest.chars().next() {
        if c == '{' {
            let Some(end) = rest.find('}') else {
                rest = "";
                continue;
            };
            for tag in rest[1..end].split('\\').filter(|t| !t.is_empty()) {
                if let Some(level) = tag.strip_prefix('p').and_then(|l| l.parse::<u32>().ok()) {
                    drawing = level > 0;
                } else if let Some((name, on)) = style(tag) {
                    toggle(&mut out, &mut open, name, on);
                }
            }
            rest = &rest[end + 1..];
            continue;
        }
        if c == '\\' && rest.len() > 1 {
            let next = rest.as_bytes()[1];
            if matches!(next, b'N' | b'n' | b'h') {
                if !drawing {
                    out.push(if next == b'h' { ' ' } else { '\n' });
                }
                rest = &rest[2..];
                continue;
            }
        }
        if !drawing {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                _ => out.push(c),
            }
        }
        rest = &rest[c.len_utf8()..];
    }
    while let Some(name) = open.pop() {
        out.push_str(&format!("</{name}>"));
    }
    // A blank line would end the cue early.
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `i1` → (`i`, on), `b0` → (`b`, off); `u` too. Other override tags are not styling we keep.
fn style(tag: &str) -> Option<(&'static str, bool)> {
    let name = match tag.chars().next()? {
        'i' => "i",
        'b' => "b",
        'u' => "u",
        _ => return None,
    };
    match &tag[1..] {
        "0" => Some((name, false)),
        // `\b700` (a weight) counts as bold.
        value if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) => {
            Some((name, true))
        }
        _ => None,
    }
}

/// Opens or closes a WebVTT tag, keeping tags nested (closing reopens the ones inside it).
fn toggle(out: &mut String, open: &mut Vec<&'static str>, name: &'static str, on: bool) {
    let position = open.iter().position(|&o| o == name);
    match (on, position) {
        (true, None) => {
            out.push_str(&format!("<{name}>"));
            open.push(name);
        }
        (false, Some(at)) => {
            let inner: Vec<&str> = open.drain(at..).collect();
            for tag in inner.iter().rev() {
                out.push_str(&format!("</{tag}>"));
            }
            for &tag in &inner[1..] {
                out.push_str(&format!("<{tag}>"));
                open.push(tag);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASS: &str = "\u{feff}[Script Info]\r\nTitle: x\r\nScriptType: v4.00+\r\n\r\n[V4+ Styles]\r\nFormat: Name, Fontname\r\nStyle: Default,Arial\r\n\r\n[Events]\r\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\r\nDialogue: 0,0:00:05.50,0:00:07.00,Default,,0,0,0,,Second, with a comma\r\nDialogue: 0,0:00:01.00,0:00:04.25,Default,,0,0,0,,{\\an8}First\\Nline {\\i1}tilted{\\i0} & <done>\r\nComment: 0,0:00:02.00,0:00:03.00,Default,,0,0,0,,not shown\r\nDialogue: 0,0:00:08.00,0:00:09.00,Default,,0,0,0,,{\\p1}m 0 0 l 100 0 100 100{\\p0}\r\nDialogue: 0,1:02:03.04,1:02:04.00,Default,,0,0,0,,{\\b1}bold {\\i1}both{\\b0} italic\\hend\r\nDialogue: 0,0:00:10.00,0:00:09.00,Default,,0,0,0,,ends before it starts\r\n";

    #[test]
    fn ass_becomes_ordered_webvtt() {
        assert_eq!(
            ass_to_vtt(ASS),
            "WEBVTT\n\n\
             00:00:01.000 --> 00:00:04.250\nFirst\nline <i>tilted</i> &amp; &lt;done&gt;\n\n\
             00:00:05.500 --> 00:00:07.000\nSecond, with a comma\n\n\
             01:02:03.040 --> 01:02:04.000\n<b>bold <i>both</i></b><i> italic end</i>\n\n"
        );
    }

    #[test]
    fn ssa_without_format_and_garbage_are_safe() {
        let ssa =
            "[Events]\nDialogue: Marked=0,0:00:01.00,0:00:02.00,Default,NTP,0000,0000,0000,,Hi\n";
        assert_eq!(
            ass_to_vtt(ssa),
            "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nHi\n\n"
        );
        assert_eq!(ass_to_vtt("no events here"), "WEBVTT\n\n");
        let broken = "[Events]\nFormat: Start, End, Text\nDialogue: x,y,z\nDialogue: 0:00:01.00\nDialogue: 0:00:01.00,0:00:02.00,{unclosed\nDialogue: 0:00:01.00,0:00:02.00,\\\n";
        assert_eq!(
            ass_to_vtt(broken),
            "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n\\\n\n"
        );
    }
}
