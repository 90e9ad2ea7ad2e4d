//! The one way Magnetar runs ffmpeg and ffprobe: a configured path, a concurrency permit, a
//! timeout, output captured up to a bound, stderr drained (a full pipe blocks the tool), and
//! the process killed when the caller gives up or the timeout fires.

use std::{path::PathBuf, process::Stdio, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt},
    process::Command,
    sync::Semaphore,
};

/// Most bytes kept from a tool's stdout (ffprobe JSON is a few KB, extracted WebVTT a few MB).
const MAX_STDOUT: usize = 16 << 20;
/// Most bytes of stderr kept for the log.
const MAX_STDERR: usize = 16 << 10;

/// Why a tool run failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{tool} is not available: {reason}")]
    Missing { tool: String, reason: String },
    #[error("{tool} took longer than {secs} s")]
    Timeout { tool: String, secs: u64 },
    #[error("{tool} failed ({status}): {stderr}")]
    Failed {
        tool: String,
        status: String,
        stderr: String,
    },
}

/// A tool (ffprobe, ffmpeg) with its own concurrency limit.
#[derive(Clone)]
pub struct Tool {
    pub path: PathBuf,
    slots: Arc<Semaphore>,
}

impl Tool {
    pub fn new(path: PathBuf, concurrency: usize) -> Self {
        Self {
            path,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// Whether the tool runs at all (`-version`), within a few seconds.
    pub async fn available(&self) -> Result<(), ToolError> {
        self.run(&["-version"], Duration::from_secs(5))
            .await
            .map(|_| ())
    }

    /// Runs the tool with `args` (waiting for a slot, counted in `timeout`); returns stdout.
    pub async fn run(&self, args: &[&str], timeout: Duration) -> Result<Vec<u8>, ToolError> {
        let tool = self.name();
        let work = async {
            let _slot = self.slots.acquire().await.map_err(|_| ToolError::Missing {
                tool: tool.clone(),
                reason: "shutting down".into(),
            })?;
            let mut child = Command::new(&self.path)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| ToolError::Missing {
                    tool: tool.clone(),
                    reason: e.to_string(),
                })?;
            let stdout = child.stdout.take().map(|s| bounded(s, MAX_STDOUT));
            let stderr = child.stderr.take().map(|s| bounded(s, MAX_STDERR));
            let (out, err) = tokio::join!(optional(stdout), optional(stderr));
            let status = child.wait().await.map_err(|e| ToolError::Missing {
                tool: tool.clone(),
                reason: e.to_string(),
            })?;
            if !status.success() {
                return Err(ToolError::Failed {
                    tool: tool.clone(),
                    status: status.to_string(),
                    stderr: String::from_utf8_lossy(&err).trim().to_owned(),
                });
            }
            Ok(out)
        };
        // Dropping `work` on timeout drops the child, which kills it.
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| ToolError::Timeout {
                tool,
                secs: timeout.as_secs(),
            })?
    }
}

async fn optional(read: Option<impl std::future::Future<Output = Vec<u8>>>) -> Vec<u8> {
    match read {
        Some(read) => read.await,
        None => Vec::new(),
    }
}

/// Reads a pipe to its end, keeping at most `max` bytes (the rest is drained and dropped).
async fn bounded(mut pipe: impl AsyncRead + Unpin, max: usize) -> Vec<u8> {
    let (mut kept, mut buf) = (Vec::new(), vec![0u8; 16 * 1024]);
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = max.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_times_out_and_reports_missing_tools() {
        let sh = Tool::new("sh".into(), 1);
        let out = sh
            .run(&["-c", "echo hi; echo noise >&2"], Duration::from_secs(5))
            .await;
        assert_eq!(out.unwrap(), b"hi\n");
        let slow = sh.run(&["-c", "sleep 5"], Duration::from_millis(200)).await;
        assert!(matches!(slow, Err(ToolError::Timeout { .. })), "{slow:?}");
        let failed = sh
            .run(&["-c", "echo bad >&2; exit 3"], Duration::from_secs(5))
            .await;
        match failed {
            Err(ToolError::Failed { stderr, .. }) => assert_eq!(stderr, "bad"),
            other => panic!("{other:?}"),
        }
        let missing = Tool::new("/nonexistent/ffprobe".into(), 1)
            .available()
            .await;
        assert!(
            matches!(missing, Err(ToolError::Missing { .. })),
            "{missing:?}"
        );
    }
}
