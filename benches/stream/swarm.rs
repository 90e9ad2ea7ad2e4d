//! The torrent side: deterministic generated data and its check, a [`Swarm`] (the
//! in-process [`Seeder`] and the folder of what it seeds), and rqbit alone, with no server,
//! as the baseline client of figures (a) and (b).

use std::{
    io::SeekFrom,
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use librqbit::{AddTorrent, AddTorrentOptions, Session, SessionOptions};
use magnetar::seeder::{Seeded, Seeder};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::time::timeout_at;

use crate::{wait_stopped, within, PLAY, STEP};

/// First-byte time and, when the run seeks, the seek's time to its first byte.
pub type Times = (Duration, Option<Duration>);

/// A seeder and a temporary folder for the files it seeds.
pub struct Swarm {
    pub seeder: Seeder,
    root: TempDir,
}

impl Swarm {
    /// Starts a seeder; `upload_bps` caps its upload rate.
    pub async fn start(upload_bps: Option<u32>) -> Result<Self> {
        let root = tempfile::tempdir()?;
        let seeder = Seeder::start(upload_bps).await?;
        Ok(Swarm { seeder, root })
    }

    /// The folder the files are generated in.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Generates `name` (see [`generate`]) and seeds it with `piece` (`None`: librqbit's
    /// default); returns its bytes and its magnet.
    pub async fn seed_generated(
        &self,
        name: &str,
        len: u64,
        seed: u64,
        piece: Option<u32>,
    ) -> Result<(Vec<u8>, Seeded)> {
        let data = generate(self.root(), name, len, seed)?;
        let path = self.root().join(name);
        let seeded = self.seeder.seed_with(&path, piece).await?;
        Ok((data, seeded))
    }

    pub async fn stop(self) {
        wait_stopped(self.seeder.stop()).await;
    }
}

/// Writes `len` deterministic pseudo-random bytes (xorshift) to `root/name`; returns them.
pub fn generate(root: &Path, name: &str, len: u64, seed: u64) -> Result<Vec<u8>> {
    let mut state = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    let mut out = Vec::with_capacity(len as usize + 8);
    while (out.len() as u64) < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len as usize);
    std::fs::write(root.join(name), &out)?;
    Ok(out)
}

/// `got` is non-empty and equals `data` at `offset`.
pub fn check(got: &[u8], data: &[u8], offset: u64) -> Result<()> {
    let start = offset as usize;
    match !got.is_empty() && data.get(start..start + got.len()) == Some(got) {
        true => Ok(()),
        false => bail!("{} bytes at {offset} differ from the data", got.len()),
    }
}

/// rqbit alone: magnet + `initial_peers` → `stream(0)` → first read; then (with `seek`) read
/// for [`PLAY`], seek, read.
pub async fn rqbit_times(
    seeded: &Seeded,
    peer: SocketAddr,
    seek: Option<u64>,
    data: &[u8],
) -> Result<Times> {
    let dir = tempfile::tempdir()?;
    let opts = SessionOptions {
        dht: None,
        disable_trackers: true,
        disable_local_service_discovery: true,
        ..Default::default()
    };
    let session = Session::new_with_opts(dir.path().to_owned(), opts).await?;
    let result = within(STEP, "timed out", async {
        let started = Instant::now();
        let peers = Some(vec![peer]);
        let opts = AddTorrentOptions {
            initial_peers: peers,
            ..Default::default()
        };
        let added = session.add_torrent(AddTorrent::from_url(&seeded.magnet), Some(opts));
        let handle = added.await?.into_handle().context("no handle")?;
        let mut stream = handle.stream(0).await?;
        let mut buf = vec![0u8; 256 * 1024];
        let n = stream.read(&mut buf).await?;
        check(&buf[..n], data, 0)?;
        let (first, Some(offset)) = (started.elapsed(), seek) else {
            return Ok((started.elapsed(), None));
        };
        let deadline = tokio::time::Instant::now() + PLAY;
        while let Ok(Ok(1..)) = timeout_at(deadline, stream.read(&mut buf)).await {}
        let started = Instant::now();
        stream.seek(SeekFrom::Start(offset)).await?;
        let n = stream.read(&mut buf).await?;
        check(&buf[..n], data, offset)?;
        Ok((first, Some(started.elapsed())))
    });
    let result = result.await;
    wait_stopped(session.stop()).await;
    result.context("rqbit baseline")
}
