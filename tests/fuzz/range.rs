//! `Range` / `If-Range`: `decide` never panics and every answer stays inside the file.

use super::*;

const ETAG: &str = "\"08ada5a7a6183aae1e09d831df6748d566095a10-0\"";

/// File lengths: empty, small, huge and the u64 edges.
fn file_length() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        1u64..4096,
        any::<u64>(),
        (0u64..4).prop_map(|d| u64::MAX - d),
    ]
}

/// A number as a client might write it: in range, at the u64 edges, overflowing, padded.
fn range_number() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u64..5000).prop_map(|n| n.to_string()),
        2 => any::<u64>().prop_map(|n| n.to_string()),
        1 => (0u64..4).prop_map(|d| (u64::MAX - d).to_string()),
        1 => "[0-9]{20,40}",
        1 => "(0|\\+|-)[0-9]{1,4}",
        1 => Just(String::new()),
    ]
}

fn range_spec() -> impl Strategy<Value = String> {
    let pad = prop::sample::select(vec!["", "", " ", "\t"]);
    let body = prop_oneof![
        4 => (range_number(), range_number()).prop_map(|(a, b)| format!("{a}-{b}")),
        2 => range_number().prop_map(|a| format!("{a}-")),
        2 => range_number().prop_map(|n| format!("-{n}")),
        1 => "[0-9 ,=-]{0,8}",
    ];
    (pad.clone(), body, pad).prop_map(|(a, body, b)| format!("{a}{body}{b}"))
}

/// `bytes=…` headers with one or more specs, and near misses of the unit.
fn structured_range() -> impl Strategy<Value = String> {
    let unit = prop::sample::select(vec![
        "bytes=", "bytes=", "bytes=", "Bytes=", "bytes =", "items=", "",
    ]);
    (unit, prop::collection::vec(range_spec(), 1..5))
        .prop_map(|(unit, specs)| format!("{unit}{}", specs.join(",")))
}

fn if_range() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => Just(None),
        2 => Just(Some(ETAG.to_owned())),
        1 => Just(Some(format!("W/{ETAG}"))),
        1 => any::<String>().prop_map(Some),
    ]
}

/// What must hold for any decision on a file of `len` bytes.
fn check_decision(decision: RangeDecision, len: u64) -> Result<(), TestCaseError> {
    match decision {
        RangeDecision::Full => {}
        RangeDecision::Partial { start, end } => {
            prop_assert!(start <= end && end < len, "{start}-{end} of {len}");
            let count = end - start + 1;
            prop_assert!(count <= len && start + count - 1 == end);
        }
        RangeDecision::Unsatisfiable => {
            let response = AppError::unsatisfiable(len).into_response();
            prop_assert_eq!(response.status().as_u16(), 416);
            let content_range = response.headers().get("content-range");
            let want = format!("bytes */{len}");
            prop_assert_eq!(content_range.and_then(|v| v.to_str().ok()), Some(&want[..]));
        }
    }
    Ok(())
}

#[test]
fn range_never_panics_on_arbitrary_headers() {
    let strategy = (prop::option::of(any::<String>()), if_range(), file_length());
    fuzz(
        "range_never_panics_on_arbitrary_headers",
        strategy,
        |(range, if_range, len)| {
            check_decision(
                decide(range.as_deref(), if_range.as_deref(), ETAG, len),
                len,
            )
        },
    );
}

#[test]
fn range_structured_headers_stay_in_bounds() {
    let strategy = (structured_range(), if_range(), file_length());
    fuzz(
        "range_structured_headers_stay_in_bounds",
        strategy,
        |(range, if_range, len)| {
            check_decision(decide(Some(&range), if_range.as_deref(), ETAG, len), len)
        },
    );
}

#[test]
fn range_suffix_gives_the_last_bytes() {
    let suffix = prop_oneof![0u64..5000, any::<u64>()];
    fuzz(
        "range_suffix_gives_the_last_bytes",
        (suffix, file_length()),
        |(n, len)| {
            let decision = decide(Some(&format!("bytes=-{n}")), None, ETAG, len);
            let want = if n == 0 || len == 0 {
                RangeDecision::Unsatisfiable
            } else {
                RangeDecision::Partial {
                    start: len - n.min(len),
                    end: len - 1,
                }
            };
            prop_assert_eq!(decision, want);
            check_decision(decision, len)
        },
    );
}

#[test]
fn range_single_span_is_clamped_or_unsatisfiable() {
    let bound = prop_oneof![0u64..5000, any::<u64>()];
    let strategy = (bound.clone(), prop::option::of(bound), file_length());
    fuzz(
        "range_single_span_is_clamped_or_unsatisfiable",
        strategy,
        |(start, end, len)| {
            let header = match end {
                Some(end) => format!("bytes={start}-{end}"),
                None => format!("bytes={start}-"),
            };
            let decision = decide(Some(&header), None, ETAG, len);
            let want = match end {
                Some(end) if end < start => RangeDecision::Full,
                _ if start >= len => RangeDecision::Unsatisfiable,
                end => RangeDecision::Partial {
                    start,
                    end: end.unwrap_or(u64::MAX).min(len - 1),
                },
            };
            prop_assert_eq!(decision, want, "{} on {} bytes", header, len);
            check_decision(decision, len)
        },
    );
}
