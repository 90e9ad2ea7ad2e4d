//! .torrent bytes: `parse_torrent` never panics (arbitrary, mutated and deeply nested input),
//! refuses hostile paths, and enforces the file-count limit.

use super::*;

/// A bencode value, encoded with dictionary keys sorted as the format requires.
#[derive(Debug, Clone)]
enum Bencode {
    Int(i64),
    Str(Vec<u8>),
    List(Vec<Bencode>),
    Dict(Vec<(&'static str, Bencode)>),
}

impl Bencode {
    fn text(s: &str) -> Self {
        Self::Str(s.as_bytes().to_vec())
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Self::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Self::Str(s) => {
                out.extend_from_slice(format!("{}:", s.len()).as_bytes());
                out.extend_from_slice(s);
            }
            Self::List(items) => {
                out.push(b'l');
                items.iter().for_each(|item| item.encode_into(out));
                out.push(b'e');
            }
            Self::Dict(entries) => {
                let mut entries: Vec<_> = entries.iter().collect();
                entries.sort_by_key(|(key, _)| *key);
                out.push(b'd');
                for (key, value) in entries {
                    Self::text(key).encode_into(out);
                    value.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }
}

/// What a generated torrent holds. Path components are raw bytes so they can be hostile.
#[derive(Debug, Clone)]
struct TorrentSpec {
    name: Vec<u8>,
    piece_length: i64,
    /// `None`: single-file of `length`; `Some`: multi-file.
    files: Option<Vec<(Vec<Vec<u8>>, i64)>>,
    length: i64,
    announce: Option<String>,
}

impl TorrentSpec {
    fn total_length(&self) -> i64 {
        match &self.files {
            Some(files) => files.iter().map(|(_, len)| len).sum(),
            None => self.length,
        }
    }

    /// 20-byte piece hashes enough to cover the content; never valid UTF-8 (0x80..=0xFF),
    /// since lava_torrent wants `pieces` as raw bytes.
    fn pieces(&self) -> Vec<u8> {
        let count = (self.total_length() / self.piece_length + 1) as usize;
        (0..count * 20).map(|i| 0x80 | (i as u8)).collect()
    }

    fn encode(&self) -> Vec<u8> {
        let mut info = vec![
            ("name", Bencode::Str(self.name.clone())),
            ("piece length", Bencode::Int(self.piece_length)),
            ("pieces", Bencode::Str(self.pieces())),
        ];
        match &self.files {
            None => info.push(("length", Bencode::Int(self.length))),
            Some(files) => info.push((
                "files",
                Bencode::List(files.iter().map(file_entry).collect()),
            )),
        }
        let mut root = vec![("info", Bencode::Dict(info))];
        if let Some(announce) = &self.announce {
            root.push(("announce", Bencode::text(announce)));
        }
        Bencode::Dict(root).encode()
    }
}

fn file_entry((path, length): &(Vec<Vec<u8>>, i64)) -> Bencode {
    let path = path.iter().map(|c| Bencode::Str(c.clone())).collect();
    Bencode::Dict(vec![
        ("length", Bencode::Int(*length)),
        ("path", Bencode::List(path)),
    ])
}

fn safe_component() -> impl Strategy<Value = Vec<u8>> {
    "[A-Za-z0-9][A-Za-z0-9 ()._-]{0,23}".prop_map(String::into_bytes)
}

/// Path components an attacker would try, mixed with plain names.
fn hostile_component() -> impl Strategy<Value = Vec<u8>> {
    let fixed = prop::sample::select(vec![
        "..",
        ".",
        "",
        "/",
        "/etc",
        "/etc/passwd",
        "a/b",
        "a/../b",
        "../x",
        "x/..",
        "./x",
        "x/.",
        "x\0y",
        "\0",
        "a\\b",
        "..\\..\\x",
        "C:\\x",
        "C:",
        "a\nb",
        "\u{7f}",
        "\u{202e}txt.exe",
        "~",
        "...",
        " ",
        "//",
        "a//b",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    prop_oneof![
        3 => safe_component(),
        4 => fixed,
        1 => (250usize..300).prop_map(|n| vec![b'n'; n]),
        1 => prop::collection::vec(any::<u8>(), 0..12),
        1 => "[./\\\\a\\x00]{0,6}".prop_map(String::into_bytes),
    ]
}

fn torrent_spec(
    component: BoxedStrategy<Vec<u8>>,
    max_files: usize,
) -> impl Strategy<Value = TorrentSpec> {
    let file = (
        prop::collection::vec(component.clone(), 1..4),
        1i64..100_000,
    );
    let files = prop::option::of(prop::collection::vec(file, 1..=max_files));
    let announce = prop::option::of("udp://[a-z]{1,10}\\.example:[0-9]{2,5}/announce");
    (component, 14u32..19, files, 1i64..1_000_000, announce).prop_map(
        |(name, shift, files, length, announce)| TorrentSpec {
            name,
            piece_length: 1 << shift,
            files,
            length,
            announce,
        },
    )
}

/// A valid torrent: safe components, and no two files on one path.
fn valid_torrent() -> impl Strategy<Value = TorrentSpec> {
    torrent_spec(safe_component().boxed(), 8).prop_map(|mut spec| {
        for (i, (path, _)) in spec.files.iter_mut().flatten().enumerate() {
            if let Some(last) = path.last_mut() {
                last.extend_from_slice(format!("-{i}").as_bytes());
            }
        }
        spec
    })
}

/// One edit of a torrent's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
    Duplicate(Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(b"dlie0123456789:-/.".to_vec()),
    ];
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        3 => (any::<Index>(), byte.clone()).prop_map(|(at, b)| Mutation::Set(at, b)),
        3 => (any::<Index>(), byte).prop_map(|(at, b)| Mutation::Insert(at, b)),
        2 => any::<Index>().prop_map(Mutation::Delete),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Duplicate(a, b)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match mutation {
        Mutation::Flip(at, bit) => bytes[at.index(len)] ^= 1 << bit,
        Mutation::Set(at, b) => bytes[at.index(len)] = *b,
        Mutation::Insert(at, b) => bytes.insert(at.index(len + 1), *b),
        Mutation::Delete(at) => {
            bytes.remove(at.index(len));
        }
        Mutation::Truncate(at) => bytes.truncate(at.index(len)),
        Mutation::Duplicate(from, to) => {
            let (a, b) = (from.index(len), to.index(len));
            let chunk = bytes[a.min(b)..a.max(b)].to_vec();
            bytes.splice(b..b, chunk);
        }
    }
}

/// A path component is safe when it is a plain name: what `check_component` promises.
fn is_safe_component(part: &str) -> bool {
    !part.is_empty()
        && part != "."
        && part != ".."
        && !part.contains(['/', '\\'])
        && !part.chars().any(char::is_control)
        && part.len() <= 255
}

/// Components whose acceptance would be a bug, whatever sanitising is done.
fn must_be_refused(component: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(component) else {
        return true;
    };
    text == "."
        || text.starts_with('/')
        || text.split('/').any(|seg| seg == ".." || seg.len() > 255)
        || text.contains('\\')
        || text.chars().any(char::is_control)
}

#[test]
fn torrent_never_panics_on_arbitrary_bytes() {
    let limits = default_limits();
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..1024),
        prop::collection::vec(prop::sample::select(b"dlie0123456789:".to_vec()), 0..256),
    ];
    fuzz("torrent_never_panics_on_arbitrary_bytes", bytes, |bytes| {
        let _ = parse_torrent(Bytes::from(bytes), &limits);
        Ok(())
    });
}

#[test]
fn torrent_valid_single_and_multi_file_torrents_parse() {
    let limits = default_limits();
    fuzz(
        "torrent_valid_single_and_multi_file_torrents_parse",
        valid_torrent(),
        |spec| {
            let parsed = parse_torrent(Bytes::from(spec.encode()), &limits);
            prop_assert!(parsed.is_ok(), "refused: {parsed:?}");
            let source = parsed.unwrap();
            let files = source.files.unwrap_or_default();
            let want = spec.files.as_ref().map_or(1, Vec::len);
            prop_assert_eq!(files.len(), want);
            prop_assert_eq!(
                source.name.as_deref().map(str::as_bytes),
                Some(&spec.name[..])
            );
            prop_assert_eq!(source.info_hash.len(), 40);
            prop_assert_eq!(source.piece_length, spec.piece_length as u64);
            Ok(())
        },
    );
}

#[test]
fn torrent_never_panics_on_mutated_valid_torrents() {
    let limits = default_limits();
    let strategy = (valid_torrent(), prop::collection::vec(mutation(), 1..8));
    fuzz(
        "torrent_never_panics_on_mutated_valid_torrents",
        strategy,
        |(spec, mutations)| {
            let mut bytes = spec.encode();
            mutations.iter().for_each(|m| mutate(&mut bytes, m));
            if let Ok(source) = parse_torrent(Bytes::from(bytes), &limits) {
                for file in source.files.unwrap_or_default() {
                    prop_assert!(
                        file.path.split('/').all(is_safe_component),
                        "{:?}",
                        file.path
                    );
                }
            }
            Ok(())
        },
    );
}

#[test]
fn torrent_hostile_paths_are_refused_or_sanitised() {
    let limits = default_limits();
    let strategy = torrent_spec(hostile_component().boxed(), 4);
    fuzz(
        "torrent_hostile_paths_are_refused_or_sanitised",
        strategy,
        |spec| {
            let parsed = parse_torrent(Bytes::from(spec.encode()), &limits);
            let hostile_name = !std::str::from_utf8(&spec.name).is_ok_and(is_safe_component);
            let hostile_path = spec
                .files
                .iter()
                .flatten()
                .flat_map(|(path, _)| path)
                .any(|c| must_be_refused(c));
            let Ok(source) = parsed else {
                return Ok(());
            };
            prop_assert!(!hostile_name, "accepted name {:?}", source.name);
            prop_assert!(!hostile_path, "accepted files {:?}", source.files);
            for file in source.files.unwrap_or_default() {
                prop_assert!(!file.path.starts_with('/'), "absolute: {:?}", file.path);
                prop_assert!(
                    file.path.split('/').all(is_safe_component),
                    "{:?}",
                    file.path
                );
            }
            Ok(())
        },
    );
}

#[test]
fn torrent_file_count_limit_is_enforced() {
    let strategy = (
        1usize..24,
        valid_torrent(),
        prop::collection::vec(safe_component(), 1..40),
    );
    fuzz(
        "torrent_file_count_limit_is_enforced",
        strategy,
        |(max_files, mut spec, names)| {
            let count = names.len();
            // Distinct paths: two files on one path are refused for their own reason.
            let unique = |(i, mut name): (usize, Vec<u8>)| {
                name.extend_from_slice(format!("-{i}").as_bytes());
                (vec![name], 1)
            };
            spec.files = Some(names.into_iter().enumerate().map(unique).collect());
            let limits = SourceLimits {
                max_files,
                ..default_limits()
            };
            let parsed = parse_torrent(Bytes::from(spec.encode()), &limits);
            if count > max_files {
                prop_assert!(
                    matches!(parsed, Err(SourceError::InvalidTorrent(_))),
                    "{count} files accepted with a limit of {max_files}"
                );
            } else {
                prop_assert_eq!(parsed.map(|s| s.files.map(|f| f.len())), Ok(Some(count)));
            }
            Ok(())
        },
    );
}

#[test]
fn torrent_with_one_file_over_the_default_limit_is_refused() {
    let limits = default_limits();
    let files = (0..=limits.max_files)
        .map(|i| (vec![format!("f{i}.mkv").into_bytes()], 1))
        .collect();
    let spec = TorrentSpec {
        name: b"many".to_vec(),
        piece_length: 1 << 14,
        files: Some(files),
        length: 0,
        announce: None,
    };
    let parsed = parse_torrent(Bytes::from(spec.encode()), &limits);
    assert!(
        matches!(parsed, Err(SourceError::InvalidTorrent(_))),
        "{parsed:?}"
    );
}

/// Set in the child process of [`torrent_deep_nesting_does_not_overflow_the_stack`].
const NESTING_CHILD: &str = "MAGNETAR_FUZZ_NESTING_CHILD";

/// A .torrent upload of `[[[[…]]]]` within the size limit, parsed on a thread with a tokio
/// worker's 2 MiB stack. A stack overflow aborts the whole process, so the parse runs in a
/// child process (this test binary, filtered to this test) and the parent checks its exit.
#[test]
fn torrent_deep_nesting_does_not_overflow_the_stack() {
    if std::env::var_os(NESTING_CHILD).is_some() {
        return parse_deeply_nested_torrent();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let output = Command::new(exe)
        .args([
            "torrent::torrent_deep_nesting_does_not_overflow_the_stack",
            "--exact",
        ])
        .args(["--test-threads", "1", "--nocapture"])
        .env(NESTING_CHILD, "1")
        .output()
        .expect("run the child test");
    assert!(
        output.status.success(),
        "parse_torrent on {} nested lists crashed the process ({}): {}",
        default_limits().max_torrent_bytes / 2,
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("1 passed"),
        "the child ran no test: {stdout}"
    );
}

fn parse_deeply_nested_torrent() {
    let limits = default_limits();
    let depth = limits.max_torrent_bytes / 2;
    let mut bytes = vec![b'l'; depth];
    bytes.resize(depth * 2, b'e');
    let parsed = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || parse_torrent(Bytes::from(bytes), &limits))
        .expect("spawn the parser thread")
        .join()
        .expect("the parser thread panicked");
    assert!(
        matches!(parsed, Err(SourceError::InvalidTorrent(_))),
        "{parsed:?}"
    );
}
