//! A flat, iterative pre-check of bencode nesting, run before any recursive parser sees
//! untrusted bytes: `lava_torrent` recurses once per nested list or dictionary, so a few
//! kilobytes of `lll…` would overflow a worker's stack and abort the process.

/// Deepest nesting a real .torrent needs is about 5 (root, info, files, file, path).
pub const MAX_DEPTH: usize = 32;

/// Why the structure was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NestingError {
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("malformed bencode at byte {0}")]
    Malformed(usize),
}

/// Walks `bytes` without recursion and checks that lists and dictionaries nest at most
/// [`MAX_DEPTH`] deep. Integers and strings are skipped by their syntax; anything else is
/// malformed. Trailing data after the root value is left to the real parser.
pub fn check_nesting(bytes: &[u8]) -> Result<(), NestingError> {
    let mut depth = 0usize;
    let mut at = 0usize;
    while at < bytes.len() {
        match bytes[at] {
            b'l' | b'd' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(NestingError::TooDeep);
                }
                at += 1;
            }
            b'e' if depth > 0 => {
                depth -= 1;
                at += 1;
                if depth == 0 {
                    return Ok(());
                }
            }
            b'i' => {
                let end = find(bytes, at + 1, b'e').ok_or(NestingError::Malformed(at))?;
                at = end + 1;
            }
            b'0'..=b'9' => {
                let colon = find(bytes, at, b':').ok_or(NestingError::Malformed(at))?;
                let len: usize = std::str::from_utf8(&bytes[at..colon])
                    .ok()
                    .and_then(|digits| digits.parse().ok())
                    .ok_or(NestingError::Malformed(at))?;
                at = colon
                    .checked_add(1 + len)
                    .filter(|&next| next <= bytes.len())
                    .ok_or(NestingError::Malformed(at))?;
            }
            _ => return Err(NestingError::Malformed(at)),
        }
        if depth == 0 {
            return Ok(());
        }
    }
    Err(NestingError::Malformed(at))
}

fn find(bytes: &[u8], from: usize, byte: u8) -> Option<usize> {
    bytes
        .get(from..)?
        .iter()
        .position(|&b| b == byte)
        .map(|i| from + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_shapes_pass_and_deep_or_broken_ones_do_not() {
        let torrent = b"d8:announce3:url4:infod5:filesld6:lengthi1e4:pathl1:aeee4:name1:x12:piece lengthi16384e6:pieces0:ee";
        assert_eq!(check_nesting(torrent), Ok(()));
        assert_eq!(check_nesting(b"i42e"), Ok(()));
        assert_eq!(check_nesting(b"4:spam"), Ok(()));
        let deep = format!("{}{}", "l".repeat(MAX_DEPTH + 1), "e".repeat(MAX_DEPTH + 1));
        assert_eq!(check_nesting(deep.as_bytes()), Err(NestingError::TooDeep));
        let unclosed = "l".repeat(1_000_000);
        assert_eq!(
            check_nesting(unclosed.as_bytes()),
            Err(NestingError::TooDeep)
        );
        let ok_deep = format!("{}{}", "l".repeat(MAX_DEPTH), "e".repeat(MAX_DEPTH));
        assert_eq!(check_nesting(ok_deep.as_bytes()), Ok(()));
        for broken in [
            &b""[..],
            b"d",
            b"i42",
            b"5:abc",
            b"99999999999999999999999:x",
            b"x",
            b"le:",
        ] {
            assert!(
                check_nesting(broken).is_err() || broken == b"le:",
                "{broken:?}"
            );
        }
    }
}
