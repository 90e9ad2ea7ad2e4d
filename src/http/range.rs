//! RFC 9110 range resolution as a pure function: the `Range` header is parsed by
//! `http-range-header`; this decides what to send for a file of a given length, honouring
//! `If-Range` (strong ETag comparison), suffix ranges, clamping past EOF and 416.

use http_range_header::{EndPosition, StartPosition};

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeDecision {
    /// 200 with the whole file.
    Full,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Decides the answer for `Range`/`If-Range` on a file of `len` bytes with entity tag `etag`.
///
/// A Range header that does not parse, or an If-Range that does not match, is ignored (the
/// whole file is sent), as RFC 9110 allows. Several ranges that join into one span are sent
/// as that span; disjoint multi-ranges are answered with the whole file.
pub fn decide(range: Option<&str>, if_range: Option<&str>, etag: &str, len: u64) -> RangeDecision {
    let Some(range) = range else {
        return RangeDecision::Full;
    };
    if let Some(validator) = if_range {
        if validator.trim() != etag || etag.starts_with("W/") {
            return RangeDecision::Full;
        }
    }
    let Ok(parsed) = http_range_header::parse_range_header(range) else {
        // The parser refuses a zero suffix, which RFC 9110 calls unsatisfiable.
        let zero_suffix = range.trim().eq_ignore_ascii_case("bytes=-0");
        return if zero_suffix {
            RangeDecision::Unsatisfiable
        } else {
            RangeDecision::Full
        };
    };
    let reversed = parsed.ranges.iter().any(
        |r| matches!((r.start, r.end), (StartPosition::Index(s), EndPosition::Index(e)) if e < s),
    );
    if reversed {
        // `last-pos < first-pos` makes the header invalid: ignore it.
        return RangeDecision::Full;
    }
    let mut spans: Vec<(u64, u64)> = parsed
        .ranges
        .iter()
        .filter_map(|r| satisfiable(r.start, r.end, len))
        .collect();
    if spans.is_empty() {
        return RangeDecision::Unsatisfiable;
    }
    spans.sort_unstable();
    let (mut start, mut end) = spans[0];
    for &(s, e) in &spans[1..] {
        if s > end.saturating_add(1) {
            return RangeDecision::Full;
        }
        end = end.max(e);
        start = start.min(s);
    }
    RangeDecision::Partial { start, end }
}

fn satisfiable(start: StartPosition, end: EndPosition, len: u64) -> Option<(u64, u64)> {
    if len == 0 {
        return None;
    }
    let last = len - 1;
    match start {
        StartPosition::FromLast(0) => None,
        StartPosition::FromLast(n) => Some((len.saturating_sub(n), last)),
        StartPosition::Index(s) if s > last => None,
        StartPosition::Index(s) => {
            let e = match end {
                EndPosition::Index(e) => e.min(last),
                EndPosition::LastByte => last,
            };
            Some((s, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{decide, RangeDecision::*};

    const TAG: &str = "\"abc-0\"";

    fn d(range: &str, len: u64) -> super::RangeDecision {
        decide(Some(range), None, TAG, len)
    }

    #[test]
    fn rfc9110_cases() {
        let cases = [
            ("bytes=0-99", 1000, Partial { start: 0, end: 99 }),
            (
                "bytes=100-",
                1000,
                Partial {
                    start: 100,
                    end: 999,
                },
            ),
            (
                "bytes=-100",
                1000,
                Partial {
                    start: 900,
                    end: 999,
                },
            ),
            ("bytes=-5000", 1000, Partial { start: 0, end: 999 }),
            (
                "bytes=900-5000",
                1000,
                Partial {
                    start: 900,
                    end: 999,
                },
            ),
            (
                "bytes=999-999",
                1000,
                Partial {
                    start: 999,
                    end: 999,
                },
            ),
            ("bytes=1000-", 1000, Unsatisfiable),
            ("bytes=1000-2000", 1000, Unsatisfiable),
            ("bytes=-0", 1000, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=0-9,10-19", 1000, Partial { start: 0, end: 19 }),
            ("bytes=0-9,5-19", 1000, Partial { start: 0, end: 19 }),
            ("bytes=0-9,50-59", 1000, Full),
            ("items=0-9", 1000, Full),
            ("bytes=abc", 1000, Full),
            ("bytes=9-0", 1000, Full),
        ];
        for (range, len, want) in cases {
            assert_eq!(d(range, len), want, "{range} on {len} bytes");
        }
    }

    #[test]
    fn if_range_needs_the_same_strong_etag() {
        assert_eq!(
            decide(Some("bytes=0-9"), Some(TAG), TAG, 100),
            Partial { start: 0, end: 9 }
        );
        assert_eq!(decide(Some("bytes=0-9"), Some("\"other\""), TAG, 100), Full);
        assert_eq!(
            decide(
                Some("bytes=0-9"),
                Some("Sat, 01 Jan 2000 00:00:00 GMT"),
                TAG,
                100
            ),
            Full
        );
        assert_eq!(decide(None, Some(TAG), TAG, 100), Full);
    }
}
