//! Magnet URIs: `parse_magnet` never panics, and what it accepts round-trips.

use super::*;

/// An info-hash value: valid-looking hex or base32 of any length, or garbage.
fn xt_value() -> impl Strategy<Value = String> {
    let hash = prop_oneof![
        "[0-9a-fA-F]{0,48}",
        "[0-9a-fA-F]{40}",
        "[A-Za-z2-7]{32}",
        "[A-Za-z0-9]{28,44}",
        "[ -~]{0,50}",
        lossy_text(64),
    ];
    let urn = prop_oneof![
        4 => Just("urn:btih:"),
        1 => Just("urn:sha1:"),
        1 => Just("urn:BTIH:"),
        1 => Just("urn:btmh:"),
        1 => Just(""),
    ];
    (urn, hash).prop_map(|(urn, hash)| format!("{urn}{hash}"))
}

/// A parameter value meant to trip a decoder: separators, numbers, addresses, URLs,
/// percent-encoding (valid and broken) and values far past the length limit.
fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        "[0-9]{0,30}",
        Just("-1".to_owned()),
        Just("18446744073709551616".to_owned()),
        "[0-9a-f.:\\[\\]]{0,40}",
        "(udp|http|https|wss|file)://[a-z0-9.]{0,20}(:[0-9]{0,6})?(/[ -~]{0,10})?",
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| percent_encode(&b)),
        "(%[0-9A-Fa-f]?[0-9A-Za-z]?|[a-z+&=#]){0,20}",
        (1usize..12_000).prop_map(|n| "a".repeat(n)),
        (1usize..3_000).prop_map(|n| "%2F".repeat(n)),
    ]
}

fn magnet_param() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        6 => prop::sample::select(vec!["dn", "tr", "x.pe", "xl", "xt"]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["xs", "as", "ws", "kt", "mt", "so", "XT", "x.pe."])
            .prop_map(str::to_owned),
        1 => "[a-z.%&=]{0,4}",
    ];
    prop_oneof![
        1 => xt_value().prop_map(|v| format!("xt={v}")),
        4 => (key, hostile_value()).prop_map(|(k, v)| format!("{k}={v}")),
        1 => "[ -~]{0,12}",
    ]
}

/// `magnet:?xt=urn:btih:…&…` and near misses, built from hostile parameters.
fn structured_magnet() -> impl Strategy<Value = Text> {
    let prefix = prop::sample::select(vec![
        "magnet:?",
        "magnet:?",
        "magnet:?",
        "magnet:",
        "MAGNET:?",
        " magnet:?",
        "magnet:??",
        "",
    ]);
    let separator = prop::sample::select(vec!["&", "&", "&", "&&", ";", " ", "\n", "&amp;"]);
    (
        prefix,
        xt_value(),
        prop::collection::vec((separator, magnet_param()), 0..8),
    )
        .prop_map(|(prefix, xt, params)| {
            let mut magnet = format!("{prefix}xt={xt}");
            for (separator, param) in params {
                magnet.push_str(separator);
                magnet.push_str(&param);
            }
            Text(magnet)
        })
}

/// How a 20-byte info-hash is written in a magnet.
#[derive(Debug, Clone, Copy)]
enum HashSpelling {
    HexLower,
    HexUpper,
    Base32Upper,
    Base32Lower,
}

fn spell(hash: &[u8; 20], spelling: HashSpelling) -> String {
    let base32 = || base32::encode(base32::Alphabet::Rfc4648 { padding: false }, hash);
    match spelling {
        HashSpelling::HexLower => hex::encode(hash),
        HashSpelling::HexUpper => hex::encode_upper(hash),
        HashSpelling::Base32Upper => base32(),
        HashSpelling::Base32Lower => base32().to_ascii_lowercase(),
    }
}

fn hash_spelling() -> impl Strategy<Value = HashSpelling> {
    prop::sample::select(vec![
        HashSpelling::HexLower,
        HashSpelling::HexUpper,
        HashSpelling::Base32Upper,
        HashSpelling::Base32Lower,
    ])
}

/// A valid magnet: a real info-hash plus a percent-encoded `dn` and `tr`s.
fn valid_magnet() -> impl Strategy<Value = ([u8; 20], String)> {
    let name = prop::option::of(prop::collection::vec(any::<u8>(), 0..60));
    let trackers =
        prop::collection::vec("(udp|http|https)://[a-z]{1,12}\\.example:[0-9]{1,5}", 0..4);
    (any::<[u8; 20]>(), hash_spelling(), name, trackers).prop_map(
        |(hash, spelling, name, trackers)| {
            let mut magnet = format!("magnet:?xt=urn:btih:{}", spell(&hash, spelling));
            if let Some(name) = name {
                magnet.push_str(&format!("&dn={}", percent_encode(&name)));
            }
            for tracker in trackers {
                magnet.push_str(&format!("&tr={}", percent_encode(tracker.as_bytes())));
            }
            (hash, magnet)
        },
    )
}

/// A valid magnet whose `dn` and `tr` are written raw (unencoded), as many sites do.
fn raw_magnet() -> impl Strategy<Value = Text> {
    let name = prop_oneof![
        "[A-Za-z0-9 ()\\[\\]!:,._+-]{0,80}",
        (0usize..4_000).prop_map(|n| "[x]".repeat(n)),
    ];
    let trackers = prop::collection::vec("udp://[a-z]{1,12}\\.example:[0-9]{1,5}/announce", 0..6);
    (any::<[u8; 20]>(), name, trackers).prop_map(|(hash, name, trackers)| {
        let mut magnet = format!("magnet:?xt=urn:btih:{}&dn={name}", hex::encode(hash));
        for tracker in trackers {
            magnet.push_str(&format!("&tr={tracker}"));
        }
        Text(magnet)
    })
}

#[test]
fn magnet_never_panics() {
    let limits = default_limits();
    fuzz("magnet_never_panics", any::<String>(), |input| {
        let _ = parse_magnet(&input, &limits);
        Ok(())
    });
}

#[test]
fn magnet_never_panics_on_lossy_bytes() {
    let limits = default_limits();
    fuzz(
        "magnet_never_panics_on_lossy_bytes",
        lossy_text(512),
        |input| {
            let _ = parse_magnet(&input, &limits);
            Ok(())
        },
    );
}

#[test]
fn magnet_never_panics_on_structured_input() {
    let limits = default_limits();
    fuzz(
        "magnet_never_panics_on_structured_input",
        structured_magnet(),
        |Text(input)| {
            if let Ok(source) = parse_magnet(&input, &limits) {
                prop_assert_eq!(source.info_hash.len(), 40);
                prop_assert!(source
                    .info_hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            }
            Ok(())
        },
    );
}

#[test]
fn magnet_valid_info_hash_round_trips_to_lowercase_hex() {
    let limits = default_limits();
    fuzz(
        "magnet_valid_info_hash_round_trips_to_lowercase_hex",
        valid_magnet(),
        |(hash, magnet)| {
            let source = parse_magnet(&magnet, &limits);
            prop_assert!(source.is_ok(), "refused {magnet:?}: {source:?}");
            let source = source.unwrap();
            prop_assert_eq!(&source.info_hash, &hex::encode(hash));
            let SourceKind::Magnet(canonical) = &source.kind else {
                return Err(TestCaseError::fail("a magnet source must keep a magnet"));
            };
            let again = parse_stored_magnet(canonical, &limits);
            prop_assert_eq!(again.map(|s| s.info_hash), Ok(hex::encode(hash)));
            Ok(())
        },
    );
}

#[test]
fn magnet_over_the_length_limit_is_refused() {
    let limits = default_limits();
    let strategy = (valid_magnet(), 1usize..4_000, any::<bool>());
    fuzz(
        "magnet_over_the_length_limit_is_refused",
        strategy,
        |((_, magnet), extra, spaces)| {
            let pad = (limits.max_magnet_len + extra).saturating_sub(magnet.len() + 4);
            let mut long = format!("{magnet}&dn={}", "a".repeat(pad));
            if spaces {
                long = format!("  {long}\n");
            }
            let refused = parse_magnet(&long, &limits);
            prop_assert!(
                matches!(refused, Err(SourceError::InvalidMagnet(_))),
                "accepted {} bytes",
                long.trim().len()
            );
            Ok(())
        },
    );
}

/// A stream's record keeps the canonical magnet and parses it again on restart (as a stored
/// magnet: percent-encoding may make it longer than the length limit the original met):
/// whatever was accepted once must be accepted again, unchanged.
#[test]
fn magnet_canonical_form_parses_again_unchanged() {
    let limits = default_limits();
    let strategy = prop_oneof![raw_magnet(), valid_magnet().prop_map(|(_, m)| Text(m))];
    fuzz(
        "magnet_canonical_form_parses_again_unchanged",
        strategy,
        |Text(magnet)| {
            let Ok(first) = parse_magnet(&magnet, &limits) else {
                return Ok(());
            };
            let SourceKind::Magnet(canonical) = &first.kind else {
                return Err(TestCaseError::fail("a magnet source must keep a magnet"));
            };
            let again = parse_stored_magnet(canonical, &limits);
            prop_assert!(
                again.is_ok(),
                "canonical magnet of {} bytes refused: {:?}",
                canonical.len(),
                again
            );
            let again = again.unwrap();
            prop_assert_eq!(&again.info_hash, &first.info_hash);
            prop_assert_eq!(&again.name, &first.name);
            prop_assert_eq!(&again.trackers, &first.trackers);
            Ok(())
        },
    );
}
