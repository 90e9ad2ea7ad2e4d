//! One HLS session: a stream played by one kind of client. It owns the segment plan — the
//! VOD list cut from the keyframe index, or, for a file without one, an EVENT list grown from
//! what one ffmpeg job from the start has written — up to [`MAX_JOBS`] ffmpeg jobs (least
//! recently used evicted, paused while far ahead of the player), and its folder. A segment is
//! served as the GOP fragments whose start times fall inside it, whichever job wrote them.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::super::{
    job::{Cuts, Fragment, Job, JobSpec},
    plan::Plan,
    segments::{grown, media_playlist, Listing, Segment, TARGET},
};

/// ffmpeg jobs per session at most (one is not enough: hls.js's leftover requests for the
/// old position would thrash it after a seek).
pub const MAX_JOBS: usize = 2;
/// ffmpeg failures in a row (no segment served in between) a session survives; each
/// restarts the job at the segment asked for.
pub const MAX_RESTARTS: usize = 3;
/// A job this far (seconds of media) past the end of the last segment asked of it is paused;
/// it goes on once the player is within [`RESUME_AHEAD`] again. hls.js buffers 30 s ahead.
pub const PAUSE_AHEAD: f64 = 120.0;
pub const RESUME_AHEAD: f64 = 60.0;
/// After [`MAX_RESTARTS`] failures in a row a session starts nothing for this long (doubling
/// each time it fails again, up to [`MAX_COOLDOWN`]): players retrying a broken transcode
/// get `503 TRANSCODER_UNAVAILABLE` at no CPU cost.
pub const COOLDOWN: Duration = Duration::from_secs(30);
pub const MAX_COOLDOWN: Duration = Duration::from_secs(600);
/// A job "reaches" a segment starting this far past what it has written.
const REACH: f64 = 30.0;
/// Times closer than this are equal (container timestamps are ms-rounded).
const EPSILON: f64 = 0.02;

/// How far a fragment's start may be from a cut and still be at it: [`EPSILON`] when video is
/// copied (source timestamps are kept); half a frame more when it is transcoded at `fps`
/// (the encoder puts frames on its 1/fps grid, so a source starting off that grid — audio
/// priming often shifts video by ~20 ms — comes out up to half a frame earlier or later).
pub fn tolerance(transcoded_fps: Option<f64>) -> f64 {
    match transcoded_fps.filter(|fps| *fps > 0.0) {
        Some(fps) => EPSILON.max(0.5 / fps + 0.005),
        None => EPSILON,
    }
}

/// How the session's segments are known.
pub enum Timeline {
    /// From the keyframe index: all of them, before any job runs.
    Vod(Vec<Segment>),
    /// No index: those a job from the start has written so far.
    Event,
}

/// Where a segment stands.
pub enum SegmentState {
    /// Every fragment is written: serve these files in order.
    Ready(Vec<PathBuf>),
    /// A job is on its way.
    Pending,
    /// No such segment.
    Missing,
}

/// How to start jobs for this session.
pub struct JobTemplate {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    pub url: String,
    pub header: String,
    pub plan: Plan,
    /// The server's video-transcode slots (`media.max_transcodes`), when this plan
    /// transcodes video; a running (not paused) job holds one.
    pub transcodes: Option<Arc<Semaphore>>,
    /// How far a fragment may start from a cut and be at it ([`tolerance`]).
    pub tolerance: f64,
}

struct Slot {
    job: Job,
    used: Instant,
    permit: Option<OwnedSemaphorePermit>,
    /// The end of the last segment asked of this job: where the player is.
    wanted: f64,
}

/// An HLS session.
pub struct HlsSession {
    pub id: String,
    pub timeline: Timeline,
    pub dir: PathBuf,
    template: JobTemplate,
    jobs: Mutex<Vec<Slot>>,
    next_job: AtomicUsize,
    restarts: AtomicUsize,
    /// Event timeline: the most segments ever listed (a restarted job lists fewer for a while).
    listed: AtomicUsize,
    used: Mutex<Instant>,
    /// Set once restarts are spent: nothing starts until the cool-down is over.
    failed: Mutex<Option<Failed>>,
    /// How many times the session has failed (the cool-down doubles each time).
    failures: AtomicUsize,
}

/// A session that failed past its restarts.
struct Failed {
    error: String,
    until: Instant,
}

/// How long a session that has failed `times` times (1 = the first) starts nothing.
pub fn cooldown(times: usize) -> Duration {
    let doublings = u32::try_from(times.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    COOLDOWN.saturating_mul(1 << doublings).min(MAX_COOLDOWN)
}

impl HlsSession {
    pub fn new(id: String, timeline: Timeline, dir: PathBuf, template: JobTemplate) -> Self {
        Self {
            id,
            timeline,
            dir,
            template,
            jobs: Mutex::new(Vec::new()),
            next_job: Default::default(),
            restarts: Default::default(),
            listed: Default::default(),
            used: Mutex::new(Instant::now()),
            failed: Mutex::new(None),
            failures: Default::default(),
        }
    }

    /// The error of a session cooling down after failing past its restarts; once the cool-down
    /// is over, the session may try again (restarts counted from zero).
    fn cooling_down(&self) -> Result<(), String> {
        let mut failed = self.failed.lock().expect("failed lock");
        match failed.as_ref() {
            Some(f) if Instant::now() < f.until => Err(f.error.clone()),
            Some(_) => {
                *failed = None;
                self.restarts.store(0, Ordering::SeqCst);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Marks the session used (every playlist and segment request).
    pub fn touch(&self) {
        *self.used.lock().expect("used lock") = Instant::now();
    }

    pub fn idle_for(&self) -> Duration {
        self.used.lock().expect("used lock").elapsed()
    }

    /// Number of ffmpeg processes running for this session (paused ones included).
    pub fn running_jobs(&self) -> usize {
        let jobs = self.jobs.lock().expect("jobs lock");
        jobs.iter().filter(|s| s.job.finished().is_none()).count()
    }

    /// Number of ffmpeg processes paused because they were far ahead of the player.
    pub fn paused_jobs(&self) -> usize {
        let jobs = self.jobs.lock().expect("jobs lock");
        jobs.iter().filter(|s| s.job.is_paused()).count()
    }

    /// The init segment of any job that wrote one.
    pub fn init(&self) -> Option<PathBuf> {
        let jobs = self.jobs.lock().expect("jobs lock");
        jobs.iter().find_map(|s| s.job.init())
    }

    /// The media playlist (`uri(n)` names segment `n`); `None` while an event timeline has
    /// nothing to list yet. Errors are ffmpeg failures.
    pub fn playlist(&self, uri: impl Fn(usize) -> String) -> Result<Option<String>, String> {
        match &self.timeline {
            Timeline::Vod(segments) => Ok(Some(media_playlist(segments, Listing::Vod, uri))),
            Timeline::Event => {
                self.cooling_down()?;
                let mut jobs = self.jobs.lock().expect("jobs lock");
                let (segments, done) = self.event_segments(&mut jobs)?;
                if segments.is_empty() && !done {
                    return Ok(None);
                }
                let listing = Listing::Event { ended: done };
                Ok(Some(media_playlist(&segments, listing, uri)))
            }
        }
    }

    /// Segment `n`'s state; starts (or restarts) a job when none will write it. Errors are
    /// ffmpeg failures (spawn, or crashes past [`MAX_RESTARTS`]).
    pub fn segment(&self, n: usize) -> Result<SegmentState, String> {
        self.cooling_down()?;
        let mut jobs = self.jobs.lock().expect("jobs lock");
        self.calibrate(&mut jobs);
        let state = match &self.timeline {
            Timeline::Vod(segments) => self.vod_segment(&mut jobs, segments, n),
            Timeline::Event => self.event_segment(&mut jobs, n),
        };
        pace(&mut jobs, self.template.transcodes.as_ref());
        state
    }

    /// Pauses jobs far ahead of the player and resumes those it is catching up with (called
    /// on every segment request and periodically, since a paused player asks nothing).
    pub fn pace(&self) {
        let mut jobs = self.jobs.lock().expect("jobs lock");
        self.calibrate(&mut jobs);
        pace(&mut jobs, self.template.transcodes.as_ref());
    }

    /// Measures each job's first timestamp once it can (until then it lists no fragments)
    /// and gives back the transcode slots of jobs that ended.
    fn calibrate(&self, jobs: &mut [Slot]) {
        for slot in jobs.iter_mut() {
            slot.job.calibrate(&self.template.ffprobe);
            if slot.job.finished().is_some() {
                slot.permit = None;
            }
        }
    }

    fn vod_segment(
        &self,
        jobs: &mut Vec<Slot>,
        segments: &[Segment],
        n: usize,
    ) -> Result<SegmentState, String> {
        let Some(&segment) = segments.get(n) else {
            return Ok(SegmentState::Missing);
        };
        let last = n + 1 == segments.len();
        if let Some(at) = jobs
            .iter()
            .position(|slot| reaches(&slot.job, &segment, self.template.tolerance))
        {
            let slot = &mut jobs[at];
            (slot.used, slot.wanted) = (Instant::now(), segment.end);
            let finished = slot.job.finished();
            let fragments = slot.job.fragments();
            let tolerance = self.template.tolerance;
            if let Some(files) = complete(&fragments, &segment, last, finished.is_some(), tolerance)
            {
                self.restarts.store(0, Ordering::SeqCst);
                return Ok(SegmentState::Ready(files));
            }
            let Some(outcome) = finished else {
                return Ok(SegmentState::Pending);
            };
            // ffmpeg ended before this segment was whole (a crash, or its input ended
            // early): start again here, a bounded number of times.
            let ended = jobs.remove(at);
            let _ = std::fs::remove_dir_all(&ended.job.dir);
            self.count_restart(outcome.unwrap_or_else(|| "ffmpeg ended early".into()))?;
        }
        // Without a free transcode slot nothing starts (and nothing is evicted for it): the
        // segment stays pending and the player retries.
        let Some(permit) = self.transcode_permit() else {
            return Ok(SegmentState::Pending);
        };
        if jobs.len() >= MAX_JOBS {
            let oldest = jobs
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.used)
                .map(|(i, _)| i)
                .unwrap_or(0);
            let evicted = jobs.remove(oldest);
            let _ = std::fs::remove_dir_all(&evicted.job.dir);
        }
        tracing::info!(session = %self.id, segment = n, start = segment.start, "starting ffmpeg job");
        self.start_job(jobs, segment.start, segment.end, permit)?;
        Ok(SegmentState::Pending)
    }

    fn event_segment(&self, jobs: &mut Vec<Slot>, n: usize) -> Result<SegmentState, String> {
        let (segments, done) = self.event_segments(jobs)?;
        let Some(segment) = segments.get(n) else {
            // Listed before (the job restarted since) or the next to be listed: wait for it.
            // Anything further is no segment a playlist has named.
            let known = self.listed.load(Ordering::SeqCst).max(segments.len());
            let next = usize::from(!done);
            return Ok(match n < known + next {
                true => SegmentState::Pending,
                false => SegmentState::Missing,
            });
        };
        let Some(slot) = jobs.first_mut() else {
            return Ok(SegmentState::Pending);
        };
        (slot.used, slot.wanted) = (Instant::now(), segment.end);
        let fragments = slot.job.fragments();
        let last = n + 1 == segments.len();
        Ok(
            match complete(&fragments, segment, last, done, self.template.tolerance) {
                Some(files) => {
                    self.restarts.store(0, Ordering::SeqCst);
                    SegmentState::Ready(files)
                }
                None => SegmentState::Pending,
            },
        )
    }

    /// The event timeline's segments so far, and whether the job has ended. Keeps one job
    /// from the start running, restarting it (bounded) after a crash.
    fn event_segments(&self, jobs: &mut Vec<Slot>) -> Result<(Vec<Segment>, bool), String> {
        if let Some(Some(error)) = jobs.first().and_then(|s| s.job.finished()) {
            let crashed = jobs.remove(0);
            let _ = std::fs::remove_dir_all(&crashed.job.dir);
            self.count_restart(error)?;
        }
        if jobs.is_empty() {
            if let Some(permit) = self.transcode_permit() {
                tracing::info!(session = %self.id, "starting ffmpeg job (event playlist)");
                self.start_job(jobs, 0.0, TARGET, permit)?;
            }
        }
        let Some(slot) = jobs.first() else {
            return Ok((Vec::new(), false));
        };
        // Times count from the measured first timestamp; nothing is listed before it is known.
        if slot.job.calibrate(&self.template.ffprobe).is_none() {
            return Ok((Vec::new(), false));
        }
        let fragments = slot.job.fragments();
        let done = slot.job.finished() == Some(None);
        let times: Vec<f64> = fragments.iter().map(|f| f.start).collect();
        let end = fragments.last().map_or(0.0, |f| f.start + f.duration);
        let segments = grown(&times, end, done, TARGET);
        self.listed.fetch_max(segments.len(), Ordering::SeqCst);
        Ok((segments, done))
    }

    /// A transcode slot when this session's plan needs one: `Some(None)` when it needs none,
    /// `None` when every slot is taken.
    fn transcode_permit(&self) -> Option<Option<OwnedSemaphorePermit>> {
        match &self.template.transcodes {
            Some(slots) => slots.clone().try_acquire_owned().ok().map(Some),
            None => Some(None),
        }
    }

    /// Starts a job at `start` (a keyframe) for a player wanting up to `wanted`, holding
    /// `permit` (its transcode slot, if any) while it runs.
    fn start_job(
        &self,
        jobs: &mut Vec<Slot>,
        start: f64,
        wanted: f64,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<(), String> {
        let number = self.next_job.fetch_add(1, Ordering::SeqCst);
        let spec = JobSpec {
            ffmpeg: self.template.ffmpeg.clone(),
            url: self.template.url.clone(),
            header: Some(self.template.header.clone()),
            start,
            plan: self.template.plan.clone(),
            cuts: self.cuts(),
            dir: self.dir.join(format!("job{number}")),
        };
        let job = Job::spawn(&spec).map_err(|e| format!("cannot start ffmpeg: {e}"))?;
        jobs.push(Slot {
            job,
            permit,
            used: Instant::now(),
            wanted,
        });
        Ok(())
    }

    /// Where transcoded video needs keyframes: at every segment start of the playlist.
    fn cuts(&self) -> Cuts {
        match &self.timeline {
            Timeline::Vod(segments) => Cuts::At(segments.iter().map(|s| s.start).collect()),
            Timeline::Event => Cuts::Every(TARGET),
        }
    }

    /// Counts a job that ended before its work was done; past [`MAX_RESTARTS`] in a row, its
    /// error.
    fn count_restart(&self, error: String) -> Result<(), String> {
        let restarts = self.restarts.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::warn!(session = %self.id, %error, restarts, "ffmpeg job failed");
        if restarts > MAX_RESTARTS {
            let times = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
            let wait = cooldown(times);
            tracing::warn!(session = %self.id, ?wait, "ffmpeg keeps failing: nothing starts until the cool-down is over");
            *self.failed.lock().expect("failed lock") = Some(Failed {
                error: error.clone(),
                until: Instant::now() + wait,
            });
            return Err(error);
        }
        Ok(())
    }
}

/// Pauses running jobs more than [`PAUSE_AHEAD`] past what was last asked of them (freeing
/// their transcode slot) and resumes paused ones within [`RESUME_AHEAD`] (when a slot is
/// free).
fn pace(jobs: &mut [Slot], transcodes: Option<&Arc<Semaphore>>) {
    for slot in jobs.iter_mut() {
        if slot.job.finished().is_some() {
            continue;
        }
        let written = slot.job.fragments().last().map(|f| f.start + f.duration);
        let ahead = written.unwrap_or(slot.job.start) - slot.wanted;
        if !slot.job.is_paused() && ahead > PAUSE_AHEAD {
            slot.job.pause();
            slot.permit = None;
        } else if slot.job.is_paused() && ahead < RESUME_AHEAD {
            if let Some(slots) = transcodes {
                match slots.clone().try_acquire_owned() {
                    Ok(permit) => slot.permit = Some(permit),
                    Err(_) => continue,
                }
            }
            slot.job.resume();
        }
    }
}

impl Drop for HlsSession {
    fn drop(&mut self) {
        // Jobs are killed as they drop; then the folder goes.
        self.jobs.lock().map(|mut jobs| jobs.clear()).ok();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `job` has written, or will soon write, the start of `segment`. A job that failed
/// counts as reaching what it should have written, so its failure is seen (and bounded).
fn reaches(job: &Job, segment: &Segment, tolerance: f64) -> bool {
    let fragments = job.fragments();
    // A job reaches the segment it was started for even when its first timestamp comes a
    // little after the keyframe (audio priming shifts `-start_at_zero`).
    let begin = fragments
        .first()
        .map_or(job.start, |f| f.start.min(job.start));
    let frontier = fragments.last().map_or(job.start, |f| f.start + f.duration);
    let succeeded = job.finished() == Some(None);
    begin <= segment.start + tolerance
        && (segment.start < frontier - tolerance
            || (!succeeded && segment.start <= frontier + REACH))
}

/// The fragments of `segment` when all are written: the last one inside reaches its end (a
/// fragment is listed once ffmpeg has closed it, with its duration), a later one has started,
/// or (for the last segment) the job is done.
fn complete(
    fragments: &[Fragment],
    segment: &Segment,
    last: bool,
    done: bool,
    tolerance: f64,
) -> Option<Vec<PathBuf>> {
    let inside: Vec<&Fragment> = fragments
        .iter()
        .filter(|f| f.start >= segment.start - tolerance && f.start < segment.end - tolerance)
        .collect();
    let covered = inside
        .last()
        .is_some_and(|f| f.start + f.duration >= segment.end - tolerance);
    let past_end = fragments.iter().any(|f| f.start >= segment.end - tolerance);
    (!inside.is_empty() && (covered || past_end || (last && done)))
        .then(|| inside.iter().map(|f| f.path.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(start: f64) -> Fragment {
        Fragment {
            start,
            duration: 2.0,
            path: format!("g{start}").into(),
        }
    }

    #[test]
    fn a_transcode_is_at_a_cut_within_half_a_frame() {
        let cases = [
            (None, 0.02),
            (Some(0.0), 0.02),
            (Some(10.0), 0.055),
            (Some(24000.0 / 1001.0), 0.025_854),
            (Some(120.0), 0.02),
        ];
        for (fps, want) in cases {
            assert!(
                (tolerance(fps) - want).abs() < 1e-6,
                "{fps:?}: {}",
                tolerance(fps)
            );
        }
    }

    #[test]
    fn the_cool_down_doubles_up_to_its_cap() {
        let secs: Vec<u64> = (1..=7).map(|n| cooldown(n).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(cooldown(usize::MAX), MAX_COOLDOWN);
    }

    #[test]
    fn a_segment_is_its_fragments_once_they_reach_its_end() {
        let segment = Segment {
            index: 1,
            start: 6.0,
            end: 12.0,
        };
        let some: Vec<Fragment> = [0.0, 2.0, 4.0, 6.0, 8.0].map(fragment).to_vec();
        assert!(
            complete(&some, &segment, false, false, EPSILON).is_none(),
            "10.0 not written yet"
        );
        let closed: Vec<Fragment> = [4.0, 6.0, 8.0, 10.0].map(fragment).to_vec();
        let files = complete(&closed, &segment, false, false, EPSILON).unwrap();
        assert_eq!(
            files,
            ["g6", "g8", "g10"].map(PathBuf::from),
            "the GOP at 10.0 ends at 12.0: complete before the next one is listed"
        );
        let more: Vec<Fragment> = [4.0, 6.0, 8.0, 10.0, 12.0].map(fragment).to_vec();
        let files = complete(&more, &segment, false, false, EPSILON).unwrap();
        assert_eq!(files, ["g6", "g8", "g10"].map(PathBuf::from));
        // The file's last segment may end a little past its last GOP (audio runs longer).
        let last = Segment {
            end: 12.5,
            ..segment
        };
        let tail: Vec<Fragment> = [6.0, 8.0, 10.0].map(fragment).to_vec();
        assert!(
            complete(&tail, &last, true, true, EPSILON).is_some(),
            "the last segment ends with the job"
        );
        assert!(complete(&tail, &last, true, false, EPSILON).is_none());
    }
}
