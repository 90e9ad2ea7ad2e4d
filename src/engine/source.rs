//! What a user hands us: a magnet URI (validated with `magnet-url`) or .torrent bytes
//! (validated with `lava_torrent`), turned into a [`TorrentSource`]. Pure parsing and
//! validation; nothing here touches the network or the disk.

use std::net::SocketAddr;

use bytes::Bytes;
use serde::Serialize;

use super::files::{classify, FileKind};

/// Bounds applied while parsing untrusted input.
#[derive(Debug, Clone, Copy)]
pub struct SourceLimits {
    pub max_torrent_bytes: usize,
    pub max_files: usize,
    pub max_magnet_len: usize,
}

/// Why input was refused. The message is safe to show the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    #[error("invalid magnet: {0}")]
    InvalidMagnet(String),
    #[error("invalid torrent: {0}")]
    InvalidTorrent(String),
    #[error("torrent is larger than the limit of {0} bytes")]
    TooLarge(usize),
}

/// One file of a torrent, with a path made of safe components joined by `/`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TorrentFile {
    pub index: usize,
    pub path: String,
    pub size: u64,
    pub kind: FileKind,
}

/// Where the metadata comes from.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// A canonical magnet (`xt` as 40 hex, `dn`, `tr`) for librqbit.
    Magnet(String),
    /// Validated .torrent bytes.
    Torrent(Bytes),
}

/// A validated torrent reference.
#[derive(Debug, Clone)]
pub struct TorrentSource {
    /// 40 lowercase hex characters.
    pub info_hash: String,
    pub name: Option<String>,
    pub trackers: Vec<String>,
    /// Peer hints (`x.pe=` in magnets).
    pub peers: Vec<SocketAddr>,
    /// Known for .torrent input; `None` for a magnet until its metadata resolves.
    pub files: Option<Vec<TorrentFile>>,
    /// Bytes per piece (0 until known).
    pub piece_length: u64,
    pub kind: SourceKind,
}

/// Validates a magnet URI: `xt=urn:btih:` with a hex-40 or base32-32 info-hash.
pub fn parse_magnet(input: &str, limits: &SourceLimits) -> Result<TorrentSource, SourceError> {
    let bad = |why: &str| SourceError::InvalidMagnet(why.to_owned());
    let input = input.trim();
    if input.len() > limits.max_magnet_len {
        return Err(bad("longer than the limit"));
    }
    if !input.is_ascii() {
        return Err(bad("must be ASCII (percent-encode other characters)"));
    }
    // magnet-url panics on `xl=` values that are not a u64; refuse them first.
    if has_bad_exact_length(input) {
        return Err(bad("xl is not a number"));
    }
    let magnet = magnet_url::Magnet::new(input).map_err(|_| bad("not a magnet: URI"))?;
    if magnet.hash_type.as_deref() != Some("btih") {
        return Err(bad("missing xt=urn:btih:"));
    }
    let params = query_pairs(input);
    // magnet-url's pattern stops base32 hashes at their first non-hex letter: read the
    // whole `xt` value from the query instead.
    let info_hash = params
        .iter()
        .find_map(|(k, v)| (k == "xt").then(|| v.strip_prefix("urn:btih:")).flatten())
        .and_then(normalise_info_hash)
        .ok_or_else(|| bad("info-hash must be 40 hex or 32 base32 characters"))?;
    let name = params
        .iter()
        .find(|(k, _)| k == "dn")
        .map(|(_, v)| v.clone())
        .or(magnet.dn.map(|d| percent_decode(&d)));
    let trackers: Vec<String> = magnet
        .tr
        .iter()
        .map(|t| percent_decode(t))
        .filter(|t| url::Url::parse(t).is_ok())
        .collect();
    let peers = params
        .iter()
        .filter(|(k, _)| k == "x.pe")
        .map(|(_, v)| {
            v.parse::<SocketAddr>()
                .map_err(|_| bad("x.pe is not ip:port"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let canonical = canonical_magnet(&info_hash, name.as_deref(), &trackers);
    Ok(TorrentSource {
        info_hash,
        name,
        trackers,
        peers,
        files: None,
        piece_length: 0,
        kind: SourceKind::Magnet(canonical),
    })
}

/// Parses a magnet this server stored itself (a stream record's canonical form): the same
/// checks except the length limit, which percent-encoding can push the canonical form past
/// even when the original fit.
pub fn parse_stored_magnet(
    magnet: &str,
    limits: &SourceLimits,
) -> Result<TorrentSource, SourceError> {
    let limits = SourceLimits {
        max_magnet_len: usize::MAX,
        ..*limits
    };
    parse_magnet(magnet, &limits)
}

/// Validates .torrent bytes: size, structure, piece hashes, safe paths, file count.
pub fn parse_torrent(bytes: Bytes, limits: &SourceLimits) -> Result<TorrentSource, SourceError> {
    let bad = |why: String| SourceError::InvalidTorrent(why);
    if bytes.len() > limits.max_torrent_bytes {
        return Err(SourceError::TooLarge(limits.max_torrent_bytes));
    }
    super::bencode::check_nesting(&bytes)
        .map_err(|e| bad(format!("not a valid .torrent file: {e}")))?;
    let torrent = lava_torrent::torrent::v1::Torrent::read_from_bytes(&bytes[..])
        .map_err(|_| bad("not a valid .torrent file".into()))?;
    if torrent.piece_length <= 0 || torrent.pieces.is_empty() {
        return Err(bad("missing piece length or piece hashes".into()));
    }
    if torrent.pieces.iter().any(|p| p.len() != 20) {
        return Err(bad("piece hashes are not 20 bytes each".into()));
    }
    check_component(&torrent.name).map_err(|e| bad(format!("unsafe name: {e}")))?;
    let files = torrent_files(&torrent, limits)?;
    let trackers = torrent_trackers(&torrent);
    Ok(TorrentSource {
        info_hash: torrent.info_hash(),
        name: Some(torrent.name.clone()),
        trackers,
        peers: Vec::new(),
        files: Some(files),
        piece_length: torrent.piece_length as u64,
        kind: SourceKind::Torrent(bytes),
    })
}

fn torrent_files(
    torrent: &lava_torrent::torrent::v1::Torrent,
    limits: &SourceLimits,
) -> Result<Vec<TorrentFile>, SourceError> {
    let bad = |why: String| SourceError::InvalidTorrent(why);
    let Some(files) = &torrent.files else {
        return Ok(vec![file_entry(0, torrent.name.clone(), torrent.length)]);
    };
    if files.len() > limits.max_files {
        return Err(bad(format!(
            "{} files, more than the limit of {}",
            files.len(),
            limits.max_files
        )));
    }
    let mut seen = std::collections::HashSet::new();
    files
        .iter()
        .enumerate()
        .map(|(index, file)| {
            let mut parts = Vec::new();
            for component in file.path.iter() {
                let part = component
                    .to_str()
                    .ok_or_else(|| bad("a file path is not UTF-8".into()))?;
                check_component(part).map_err(|e| bad(format!("unsafe file path: {e}")))?;
                parts.push(part);
            }
            if parts.is_empty() {
                return Err(bad("a file has an empty path".into()));
            }
            // Empty components are dropped by the parser (and by librqbit), so two entries
            // may land on one path; they would overwrite each other on disk.
            let path = parts.join("/");
            if !seen.insert(path.clone()) {
                return Err(bad(format!("two files share the path {path:?}")));
            }
            Ok(file_entry(index, path, file.length))
        })
        .collect()
}

fn file_entry(index: usize, path: String, length: i64) -> TorrentFile {
    let kind = classify(&path);
    TorrentFile {
        index,
        path,
        size: length.max(0) as u64,
        kind,
    }
}

fn torrent_trackers(torrent: &lava_torrent::torrent::v1::Torrent) -> Vec<String> {
    let mut trackers: Vec<String> = torrent.announce.iter().cloned().collect();
    for tier in torrent.announce_list.iter().flatten() {
        trackers.extend(tier.iter().cloned());
    }
    trackers.sort();
    trackers.dedup();
    trackers
}

/// A path component from a torrent must be a plain name: no separators, no `.`/`..`,
/// no control characters, not empty.
pub fn check_component(part: &str) -> Result<(), &'static str> {
    if part.is_empty() {
        return Err("empty component");
    }
    if part == "." || part == ".." {
        return Err("'.' or '..' component");
    }
    if part.contains(['/', '\\']) {
        return Err("path separator inside a name");
    }
    if part.chars().any(char::is_control) {
        return Err("control character");
    }
    if part.len() > 255 {
        return Err("name longer than 255 bytes");
    }
    Ok(())
}

/// Hex-40 (any case) or base32-32 → 40 lowercase hex.
pub fn normalise_info_hash(raw: &str) -> Option<String> {
    if raw.len() == 40 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(raw.to_ascii_lowercase());
    }
    if raw.len() == 32 {
        let upper = raw.to_ascii_uppercase();
        let bytes = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &upper)?;
        return (bytes.len() == 20).then(|| hex::encode(bytes));
    }
    None
}

fn has_bad_exact_length(input: &str) -> bool {
    static XL: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"xl=(\d*)(&|$|\s)").expect("valid regex"));
    XL.captures(input)
        .and_then(|c| c.get(1))
        .is_some_and(|m| m.as_str().parse::<u64>().is_err())
}

fn query_pairs(input: &str) -> Vec<(String, String)> {
    let query = input.split_once('?').map(|(_, q)| q).unwrap_or("");
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn percent_decode(raw: &str) -> String {
    url::form_urlencoded::parse(format!("x={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn canonical_magnet(info_hash: &str, name: Option<&str>, trackers: &[String]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    if let Some(name) = name {
        out.append_pair("dn", name);
    }
    for tracker in trackers {
        out.append_pair("tr", tracker);
    }
    let rest = out.finish();
    let sep = if rest.is_empty() { "" } else { "&" };
    format!("magnet:?xt=urn:btih:{info_hash}{sep}{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SourceLimits = SourceLimits {
        max_torrent_bytes: 1 << 20,
        max_files: 100,
        max_magnet_len: 4096,
    };
    const HEX: &str = "08ada5a7a6183aae1e09d831df6748d566095a10";

    #[test]
    fn magnet_with_hex_hash_trackers_and_peer_hints() {
        let input = format!(
            "magnet:?xt=urn:btih:{}&dn=Sintel%20Movie&tr=udp%3A%2F%2Ftracker.example%3A6969\
             &x.pe=127.0.0.1:6881&x.pe=[::1]:7000",
            HEX.to_uppercase()
        );
        let source = parse_magnet(&input, &LIMITS).unwrap();
        assert_eq!(source.info_hash, HEX);
        assert_eq!(source.name.as_deref(), Some("Sintel Movie"));
        assert_eq!(source.trackers, vec!["udp://tracker.example:6969"]);
        assert_eq!(source.peers.len(), 2);
        let SourceKind::Magnet(canonical) = source.kind else {
            panic!("magnet kind")
        };
        assert!(canonical.starts_with(&format!("magnet:?xt=urn:btih:{HEX}&dn=Sintel")));
    }

    #[test]
    fn magnet_with_base32_hash_becomes_hex() {
        let b32 = base32::encode(
            base32::Alphabet::Rfc4648 { padding: false },
            &hex::decode(HEX).unwrap(),
        );
        let source = parse_magnet(&format!("magnet:?xt=urn:btih:{b32}"), &LIMITS).unwrap();
        assert_eq!(source.info_hash, HEX);
    }

    #[test]
    fn bad_magnets_are_refused() {
        for input in [
            "",
            "http://example.com",
            "magnet:?dn=nohash",
            "magnet:?xt=urn:sha1:08ada5a7a6183aae1e09d831df6748d566095a10",
            "magnet:?xt=urn:btih:1234",
            "magnet:?xt=urn:btih:zzada5a7a6183aae1e09d831df6748d566095a10",
            "magnet:?xt=urn:btih:08ada5a7a6183aae1e09d831df6748d566095a10&xl=",
            "magnet:?xt=urn:btih:08ada5a7a6183aae1e09d831df6748d566095a10&xl=99999999999999999999999",
            "magnet:?xt=urn:btih:08ada5a7a6183aae1e09d831df6748d566095a10&x.pe=nothost",
            "magnet:?xt=urn:btih:08ada5a7a6183aae1e09d831df6748d566095a10&dn=caf\u{e9}",
        ] {
            assert!(
                matches!(parse_magnet(input, &LIMITS), Err(SourceError::InvalidMagnet(_))),
                "{input:?} should be refused"
            );
        }
        let long = format!("magnet:?xt=urn:btih:{HEX}&dn={}", "a".repeat(5000));
        assert!(parse_magnet(&long, &LIMITS).is_err());
    }

    #[test]
    fn garbage_torrents_are_refused() {
        for input in [
            &b""[..],
            b"garbage",
            b"d4:infod4:name3:abcee",
            b"d8:announce",
        ] {
            assert!(matches!(
                parse_torrent(Bytes::copy_from_slice(input), &LIMITS),
                Err(SourceError::InvalidTorrent(_))
            ));
        }
        let huge = Bytes::from(vec![b'd'; (1 << 20) + 1]);
        assert_eq!(
            parse_torrent(huge, &LIMITS).unwrap_err(),
            SourceError::TooLarge(1 << 20)
        );
    }

    #[test]
    fn unsafe_components_are_refused() {
        for part in ["", ".", "..", "a/b", "a\\b", "x\u{0}y", "new\nline"] {
            assert!(check_component(part).is_err(), "{part:?}");
        }
        assert!(check_component("Movie (2019) [1080p].mkv").is_ok());
    }
}
