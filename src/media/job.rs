//! One ffmpeg HLS job: reads the stream from a keyframe on (through the loopback playback
//! URL), copies or transcodes per the plan, and writes one fMP4 fragment per GOP
//! (`-hls_time 0.1`) with source timestamps kept (`-copyts`), so a fragment's time is known
//! from the job's start and the muxer's durations, whatever the restart point. Runs through
//! ffmpeg-sidecar; its log is drained on a thread (a full stderr pipe blocks ffmpeg); a job
//! can be paused (SIGSTOP) and resumed (SIGCONT); the process is killed when the job is
//! dropped.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use ffmpeg_sidecar::{
    child::FfmpegChild,
    command::FfmpegCommand,
    event::{FfmpegEvent, LogLevel},
};

use super::plan::{Action, Plan};

/// How long measuring a job's first fragment may take.
const CALIBRATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The playlist ffmpeg keeps up to date in the job's folder.
const INDEX: &str = "index.m3u8";

/// What a job should produce.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub ffmpeg: PathBuf,
    /// The loopback playback URL, and the internal header line for it (`None` for a local
    /// file).
    pub url: String,
    pub header: Option<String>,
    /// A keyframe time (seconds) from the index; the job starts there.
    pub start: f64,
    pub plan: Plan,
    /// Where a transcoded video must have keyframes (ignored when video is copied).
    pub cuts: Cuts,
    pub dir: PathBuf,
}

/// Where an encoder places keyframes, so a fragment starts at every segment's start.
#[derive(Debug, Clone, PartialEq)]
pub enum Cuts {
    /// The playlist's segment start times (a VOD timeline from the keyframe index).
    At(Vec<f64>),
    /// Every this many seconds (an event timeline, cut at the GOPs written).
    Every(f64),
}

impl Cuts {
    /// The value of ffmpeg's `-force_key_frames` for a job starting at `start`: the cut
    /// times from `start` on (a job never needs earlier ones), or an expression.
    fn force_key_frames(&self, start: f64) -> String {
        match self {
            Cuts::At(times) => {
                let from = times.partition_point(|t| *t < start - 0.0005);
                let mut listed: Vec<String> =
                    times[from..].iter().map(|t| format!("{t:.3}")).collect();
                if listed.is_empty() {
                    listed.push(format!("{start:.3}"));
                }
                listed.join(",")
            }
            Cuts::Every(seconds) => format!("expr:gte(t,n_forced*{seconds})"),
        }
    }
}

/// A GOP fragment written by a job.
#[derive(Debug, Clone, PartialEq)]
pub struct Fragment {
    pub start: f64,
    pub duration: f64,
    pub path: PathBuf,
}

/// A running (or finished) ffmpeg job.
pub struct Job {
    /// The keyframe the job was asked to start at.
    pub start: f64,
    pub dir: PathBuf,
    /// Where the first fragment really starts, once measured ([`Job::calibrate`]).
    measured: Mutex<Option<f64>>,
    child: Mutex<FfmpegChild>,
    paused: AtomicBool,
    done: Arc<AtomicBool>,
    error: Arc<Mutex<Option<String>>>,
}

impl Job {
    /// Starts ffmpeg for `spec` (its folder is created).
    pub fn spawn(spec: &JobSpec) -> std::io::Result<Self> {
        std::fs::create_dir_all(&spec.dir)?;
        let mut command = FfmpegCommand::new_with_path(&spec.ffmpeg);
        command.hide_banner().args(arguments(spec));
        command.as_inner_mut().current_dir(&spec.dir);
        let mut child = command.spawn()?;
        let events = child.iter().map_err(std::io::Error::other)?;
        let (done, error) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(None)));
        let (done_flag, last_error) = (done.clone(), error.clone());
        std::thread::Builder::new()
            .name("ffmpeg-log".into())
            .spawn(move || {
                for event in events {
                    match event {
                        FfmpegEvent::Log(LogLevel::Error | LogLevel::Fatal, line)
                            // ffmpeg-sidecar misreads the HLS muxer's output as this.
                            if !line.contains("No streams found") =>
                        {
                            *last_error.lock().expect("error lock") = Some(line);
                        }
                        FfmpegEvent::Done | FfmpegEvent::LogEOF => {
                            done_flag.store(true, Ordering::SeqCst)
                        }
                        _ => {}
                    }
                }
                done_flag.store(true, Ordering::SeqCst);
            })?;
        Ok(Self {
            start: spec.start,
            dir: spec.dir.clone(),
            measured: Mutex::new(None),
            child: Mutex::new(child),
            paused: AtomicBool::new(false),
            done,
            error,
        })
    }

    /// The fragments written so far, with their presentation times from the measured start;
    /// none before [`Job::calibrate`] has measured it (times from the asked start may be a
    /// GOP off).
    pub fn fragments(&self) -> Vec<Fragment> {
        let Some(start) = *self.measured.lock().expect("measured lock") else {
            return Vec::new();
        };
        let text = std::fs::read_to_string(self.dir.join(INDEX)).unwrap_or_default();
        fragments_of(&text, start, &self.dir)
    }

    /// Measures the first fragment's first video timestamp with ffprobe (blocking; a few
    /// ms). A seek can land on an earlier keyframe than asked — Matroska seeks to the cluster
    /// a cue points at — so fragment times count from what was written, not what was asked.
    pub fn calibrate(&self, ffprobe: &Path) -> Option<f64> {
        if let Some(known) = *self.measured.lock().expect("measured lock") {
            return Some(known);
        }
        // The init segment counts as written once the first fragment is.
        self.init()?;
        let pts = first_video_pts(ffprobe, &self.dir, "concat:init.mp4|g0.m4s")?;
        *self.measured.lock().expect("measured lock") = Some(pts);
        Some(pts)
    }

    /// The job's init segment, once complete. ffmpeg creates `init.mp4` empty and fills it
    /// when the first GOP is flushed (`temp_file` covers only segments), so it counts as
    /// written once the first fragment exists.
    pub fn init(&self) -> Option<PathBuf> {
        let path = self.dir.join("init.mp4");
        (self.dir.join("g0.m4s").exists() && path.exists()).then_some(path)
    }

    /// Whether ffmpeg has exited; with the last error it logged, if any.
    pub fn finished(&self) -> Option<Option<String>> {
        let exited = self
            .child
            .lock()
            .expect("child lock")
            .as_inner_mut()
            .try_wait()
            .ok()
            .flatten();
        match exited {
            Some(status) if status.success() => Some(None),
            Some(status) => {
                let error = self.error.lock().expect("error lock").clone();
                Some(Some(
                    error.unwrap_or_else(|| format!("ffmpeg exited: {status}")),
                ))
            }
            None => None,
        }
    }

    /// Stops ffmpeg where it is (SIGSTOP): no CPU, no reads, until [`Job::resume`].
    pub fn pause(&self) {
        if !self.paused.swap(true, Ordering::SeqCst) {
            self.signal(nix::sys::signal::Signal::SIGSTOP);
        }
    }

    /// Lets a paused ffmpeg go on (SIGCONT).
    pub fn resume(&self) {
        if self.paused.swap(false, Ordering::SeqCst) {
            self.signal(nix::sys::signal::Signal::SIGCONT);
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let mut child = self.child.lock().expect("child lock");
        let inner = child.as_inner_mut();
        // Never signal a pid that may have been reused: only a child not yet reaped.
        if matches!(inner.try_wait(), Ok(None)) {
            if let Ok(pid) = i32::try_from(inner.id()) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
            }
        }
    }

    /// Whether ffmpeg's log has ended (it exited).
    pub fn log_ended(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.as_inner_mut().wait();
        }
    }
}

/// The first video packet's timestamp of `input` (relative to `dir`), by ffprobe, bounded by
/// [`CALIBRATE_TIMEOUT`] (small local files: a few ms).
fn first_video_pts(ffprobe: &Path, dir: &Path, input: &str) -> Option<f64> {
    let mut child = std::process::Command::new(ffprobe)
        .current_dir(dir)
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args([
            "packet=pts_time",
            "-of",
            "csv=p=0",
            "-read_intervals",
            "%+#1",
            input,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + CALIBRATE_TIMEOUT;
    while child.try_wait().ok()?.is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut text).ok()?;
    text.lines().next()?.trim_end_matches(',').parse().ok()
}

/// ffmpeg's arguments for `spec`: DESIGN.md's command, verified with ffmpeg 5.1.
fn arguments(spec: &JobSpec) -> Vec<String> {
    let mut args: Vec<String> = ["-loglevel", "error", "-nostdin", "-y"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    if let Some(header) = &spec.header {
        args.extend(["-headers".into(), header.clone()]);
    }
    // From the start no seek at all (a file without an index may not seek); else 1 ms past
    // the keyframe: `-noaccurate_seek` lands on the keyframe at or before `-ss`.
    if spec.start > 0.0 {
        let seek = format!("{:.3}", spec.start + 0.001);
        args.extend(["-noaccurate_seek", "-ss", &seek].map(str::to_owned));
    }
    args.extend(["-fflags", "+genpts", "-i"].map(str::to_owned));
    args.push(spec.url.clone());
    if let Some(video) = &spec.plan.video {
        args.extend(["-map".into(), format!("0:{}", video.index)]);
        match video.action {
            Action::H264 => {
                args.extend(
                    [
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "21", "-pix_fmt",
                        "yuv420p",
                    ]
                    .map(str::to_owned),
                );
                // x264 places its own keyframes (about every 10 s): a segment would have no
                // fragment starting inside it. Force one at every cut the playlist promises.
                args.extend([
                    "-force_key_frames".into(),
                    spec.cuts.force_key_frames(spec.start),
                ]);
            }
            // Safari and MSE want HEVC in fMP4 tagged `hvc1`.
            _ if video.codec == "hevc" => {
                args.extend(["-c:v", "copy", "-tag:v", "hvc1"].map(str::to_owned))
            }
            _ => args.extend(["-c:v", "copy"].map(str::to_owned)),
        }
    }
    if let Some(audio) = &spec.plan.audio {
        args.extend(["-map".into(), format!("0:{}", audio.index)]);
        match audio.action {
            Action::Aac => {
                args.extend(["-c:a", "aac", "-ac", "2", "-b:a", "192k"].map(str::to_owned))
            }
            _ => args.extend(["-c:a", "copy"].map(str::to_owned)),
        }
    }
    args.extend(
        [
            "-copyts",
            "-start_at_zero",
            "-avoid_negative_ts",
            "disabled",
            "-f",
            "hls",
            "-hls_time",
            "0.1",
            "-hls_segment_type",
            "fmp4",
            "-hls_segment_options",
            "movflags=+frag_discont+skip_sidx",
            "-hls_flags",
            "temp_file",
            "-hls_playlist_type",
            "event",
            "-hls_fmp4_init_filename",
            "init.mp4",
            "-hls_segment_filename",
            "g%d.m4s",
            INDEX,
        ]
        .map(str::to_owned),
    );
    args
}

/// Fragments listed in ffmpeg's playlist text, timed from `start`.
fn fragments_of(text: &str, start: f64, dir: &Path) -> Vec<Fragment> {
    let (mut at, mut duration, mut out) = (start, None, Vec::new());
    for line in text.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("#EXTINF:") {
            duration = value
                .trim_end_matches(',')
                .split(',')
                .next()
                .and_then(|d| d.parse::<f64>().ok());
        } else if !line.is_empty() && !line.starts_with('#') {
            let Some(length) = duration.take() else {
                continue;
            };
            // Only names ffmpeg was told to write (never a path from elsewhere).
            let name = line.rsplit('/').next().unwrap_or(line);
            if name.starts_with('g') && name.ends_with(".m4s") {
                out.push(Fragment {
                    start: at,
                    duration: length,
                    path: dir.join(name),
                });
            }
            at += length;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::plan::{Mode, TrackPlan};

    /// The committed H.264 + AC-3 MKV from its keyframe at 8.005 s: video copied, audio to
    /// AAC; every GOP fragment's first video timestamp is the time the job assigns it.
    #[test]
    fn a_job_from_a_keyframe_writes_gop_fragments_at_their_source_times() {
        let dir = tempfile::tempdir().unwrap();
        let source = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/mkv/Sample.Movie.2019.1080p.BluRay.x264.mkv"
        );
        let track = |index, codec: &str, action| TrackPlan {
            index,
            codec: codec.into(),
            action,
        };
        let spec = JobSpec {
            ffmpeg: "ffmpeg".into(),
            url: source.into(),
            header: None,
            start: 8.005,
            plan: Plan {
                mode: Mode::RemuxAudio,
                video: Some(track(0, "h264", Action::Copy)),
                audio: Some(track(1, "ac3", Action::Aac)),
                reasons: vec![],
            },
            cuts: Cuts::Every(6.0),
            dir: dir.path().join("job"),
        };
        let job = Job::spawn(&spec).expect("ffmpeg starts (apt-get install -y ffmpeg)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while job.finished().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "ffmpeg did not finish"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(job.finished(), Some(None), "ffmpeg succeeded");
        // Asked for 8.005 s; Matroska's seek lands on the cluster before (6.005 s here).
        let measured = job.calibrate(Path::new("ffprobe")).expect("calibrated");
        assert!(measured <= 8.005 + 0.01, "{measured}");
        let fragments = job.fragments();
        let starts: Vec<f64> = fragments.iter().map(|f| f.start).collect();
        // GOPs of 2 s up to the end at 20 s (a last sliver may follow).
        let whole = ((20.0 - measured) / 2.0).round() as usize;
        assert!((whole..=whole + 1).contains(&starts.len()), "{starts:?}");
        let init = std::fs::read(job.init().expect("init.mp4")).unwrap();
        for fragment in &fragments[..whole] {
            let joined = dir.path().join("joined.mp4");
            let mut bytes = init.clone();
            bytes.extend(std::fs::read(&fragment.path).unwrap());
            std::fs::write(&joined, bytes).unwrap();
            let pts = first_video_pts(Path::new("ffprobe"), dir.path(), "joined.mp4")
                .expect("ffprobe reads the fragment (apt-get install -y ffmpeg)");
            assert!(
                (pts - fragment.start).abs() < 0.1,
                "{fragment:?} starts at {pts}"
            );
        }
        assert!((starts[whole - 1] - 18.005).abs() < 0.01, "{starts:?}");
    }

    #[test]
    fn forced_keyframes_are_the_cuts_from_the_jobs_start_on() {
        let cuts = Cuts::At(vec![0.0, 6.005, 12.011, 18.0]);
        let cases = [
            (0.0, "0.000,6.005,12.011,18.000"),
            (6.005, "6.005,12.011,18.000"),
            (6.0049, "6.005,12.011,18.000"),
            (12.5, "18.000"),
            (30.0, "30.000"),
        ];
        for (start, want) in cases {
            assert_eq!(cuts.force_key_frames(start), want, "from {start}");
        }
        assert_eq!(
            Cuts::Every(6.0).force_key_frames(12.0),
            "expr:gte(t,n_forced*6)"
        );
    }

    #[test]
    fn fragments_are_timed_from_the_start() {
        let text = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.000000,\ng0.m4s\n#EXTINF:1.5,\ng1.m4s\n#EXTINF:2,\n../../etc/passwd\n";
        let got = fragments_of(text, 8.005, Path::new("/j"));
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].start, got[1].start), (8.005, 10.005));
        assert_eq!(got[1].path, Path::new("/j/g1.m4s"));
    }
}
