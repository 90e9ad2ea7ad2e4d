//! The process's file-descriptor budget: the soft `RLIMIT_NOFILE` is raised to the hard limit
//! at start (as nginx and Go do; the usual soft limit of 1,024 is gone after a thousand idle
//! sockets), and the connection bound is clamped to what is left after the engine's share
//! (peer sockets, open files, ffmpeg pipes).

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Descriptors kept for everything that is not an HTTP connection.
pub const ENGINE_SHARE: u64 = 1024;

/// Raises the soft descriptor limit to the hard one; returns the soft limit now in force.
pub fn raise_to_hard_limit() -> u64 {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                tracing::info!(from = soft, to = hard, "raised the file-descriptor limit");
                return hard;
            }
            Err(err) => {
                tracing::warn!(error = %err, soft, hard, "cannot raise the file-descriptor limit")
            }
        }
    }
    soft
}

/// How many connections (before the reserve) fit in `descriptors`, at most `configured`.
pub fn connection_budget(descriptors: u64, configured: usize, reserve: usize) -> usize {
    let room = descriptors.saturating_sub(ENGINE_SHARE + reserve as u64);
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    configured.min(room).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_bound_leaves_the_engine_its_share() {
        assert_eq!(connection_budget(1_048_576, 8192, 64), 8192);
        assert_eq!(connection_budget(4096, 8192, 64), 4096 - 1024 - 64);
        assert_eq!(connection_budget(1024, 8192, 64), 1, "never zero");
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let now = raise_to_hard_limit();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!((now, soft), (hard, hard));
    }
}
