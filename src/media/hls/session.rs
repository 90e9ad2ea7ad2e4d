//! One HLS session: a stream played by one kind of client. It owns the VOD segment plan, up
//! to [`MAX_JOBS`] ffmpeg jobs (least recently used evicted), and its folder. A segment is
//! served as the GOP fragments whose start times fall inside it, whichever job wrote them.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::super::{
    job::{Fragment, Job, JobSpec},
    plan::Plan,
    segments::Segment,
};

/// ffmpeg jobs per session at most (one is not enough: hls.js's leftover requests for the
/// old position would thrash it after a seek).
pub const MAX_JOBS: usize = 2;
/// ffmpeg crashes a session survives (each restarts the job at the segment asked for).
pub const MAX_RESTARTS: usize = 3;
/// A job "reaches" a segment starting this far past what it has written.
const REACH: f64 = 30.0;
/// Times closer than this are equal (container timestamps are ms-rounded).
const EPSILON: f64 = 0.02;

/// Where a segment stands.
pub enum SegmentState {
    /// Every fragment is written: serve these files in order.
    Ready(Vec<PathBuf>),
    /// A job is on its way.
    Pending,
}

/// How to start jobs for this session.
pub struct JobTemplate {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    pub url: String,
    pub header: String,
    pub plan: Plan,
    /// The server's video-transcode slots (`media.max_transcodes`), when this plan
    /// transcodes video; a job holds one while ffmpeg runs.
    pub transcodes: Option<Arc<Semaphore>>,
}

struct Slot {
    job: Job,
    used: Instant,
    permit: Option<OwnedSemaphorePermit>,
}

/// An HLS session.
pub struct HlsSession {
    pub id: String,
    pub segments: Vec<Segment>,
    pub dir: PathBuf,
    template: JobTemplate,
    jobs: Mutex<Vec<Slot>>,
    next_job: std::sync::atomic::AtomicUsize,
    restarts: std::sync::atomic::AtomicUsize,
    used: Mutex<Instant>,
}

impl HlsSession {
    pub fn new(id: String, segments: Vec<Segment>, dir: PathBuf, template: JobTemplate) -> Self {
        Self {
            id,
            segments,
            dir,
            template,
            jobs: Mutex::new(Vec::new()),
            next_job: Default::default(),
            restarts: Default::default(),
            used: Mutex::new(Instant::now()),
        }
    }

    /// Marks the session used (every playlist and segment request).
    pub fn touch(&self) {
        *self.used.lock().expect("used lock") = Instant::now();
    }

    pub fn idle_for(&self) -> Duration {
        self.used.lock().expect("used lock").elapsed()
    }

    /// Number of ffmpeg processes running for this session.
    pub fn running_jobs(&self) -> usize {
        let jobs = self.jobs.lock().expect("jobs lock");
        jobs.iter().filter(|s| s.job.finished().is_none()).count()
    }

    /// The init segment of any job that wrote one.
    pub fn init(&self) -> Option<PathBuf> {
        let jobs = self.jobs.lock().expect("jobs lock");
        jobs.iter().find_map(|s| s.job.init())
    }

    /// Segment `n`'s state; starts (or restarts) a job at its keyframe when no job will reach
    /// it. Errors are ffmpeg failures (spawn, or a crash before the segment was written).
    pub fn segment(&self, n: usize) -> Result<SegmentState, String> {
        let segment = *self.segments.get(n).ok_or("no such segment")?;
        let last = n + 1 == self.segments.len();
        let mut jobs = self.jobs.lock().expect("jobs lock");
        for slot in jobs.iter_mut() {
            slot.job.calibrate(&self.template.ffprobe);
            if slot.job.finished().is_some() {
                slot.permit = None;
            }
        }
        if let Some(at) = jobs.iter().position(|slot| reaches(&slot.job, &segment)) {
            let slot = &mut jobs[at];
            slot.used = Instant::now();
            let finished = slot.job.finished();
            let fragments = slot.job.fragments();
            if let Some(files) = complete(&fragments, &segment, last, finished.is_some()) {
                return Ok(SegmentState::Ready(files));
            }
            let Some(Some(error)) = finished else {
                return Ok(SegmentState::Pending);
            };
            // ffmpeg died before this segment: restart it here, a bounded number of times.
            let crashed = jobs.remove(at);
            let _ = std::fs::remove_dir_all(&crashed.job.dir);
            let restarts = self
                .restarts
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
            tracing::warn!(session = %self.id, %error, restarts, "ffmpeg job failed");
            if restarts > MAX_RESTARTS {
                return Err(error);
            }
        }
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
        let permit = match &self.template.transcodes {
            // Every transcode slot busy: not ready yet (the player retries).
            Some(slots) => match slots.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => return Ok(SegmentState::Pending),
            },
            None => None,
        };
        let number = self
            .next_job
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let spec = JobSpec {
            ffmpeg: self.template.ffmpeg.clone(),
            url: self.template.url.clone(),
            header: Some(self.template.header.clone()),
            start: segment.start,
            plan: self.template.plan.clone(),
            dir: self.dir.join(format!("job{number}")),
        };
        tracing::info!(session = %self.id, segment = n, start = segment.start, "starting ffmpeg job");
        let job = Job::spawn(&spec).map_err(|e| format!("cannot start ffmpeg: {e}"))?;
        jobs.push(Slot {
            job,
            permit,
            used: Instant::now(),
        });
        Ok(SegmentState::Pending)
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
fn reaches(job: &Job, segment: &Segment) -> bool {
    let fragments = job.fragments();
    let begin = fragments.first().map_or(job.start, |f| f.start);
    let frontier = fragments.last().map_or(job.start, |f| f.start + f.duration);
    let succeeded = job.finished() == Some(None);
    begin <= segment.start + EPSILON
        && (segment.start < frontier - EPSILON || (!succeeded && segment.start <= frontier + REACH))
}

/// The fragments of `segment` when all are written: the next GOP after it has started, or
/// (for the last segment) the job is done.
fn complete(
    fragments: &[Fragment],
    segment: &Segment,
    last: bool,
    done: bool,
) -> Option<Vec<PathBuf>> {
    let inside: Vec<PathBuf> = fragments
        .iter()
        .filter(|f| f.start >= segment.start - EPSILON && f.start < segment.end - EPSILON)
        .map(|f| f.path.clone())
        .collect();
    let past_end = fragments.iter().any(|f| f.start >= segment.end - EPSILON);
    (!inside.is_empty() && (past_end || (last && done))).then_some(inside)
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
    fn a_segment_is_its_fragments_once_the_next_gop_has_started() {
        let segment = Segment {
            index: 1,
            start: 6.0,
            end: 12.0,
        };
        let some: Vec<Fragment> = [0.0, 2.0, 4.0, 6.0, 8.0].map(fragment).to_vec();
        assert!(
            complete(&some, &segment, false, false).is_none(),
            "10.0 not written yet"
        );
        let more: Vec<Fragment> = [4.0, 6.0, 8.0, 10.0, 12.0].map(fragment).to_vec();
        let files = complete(&more, &segment, false, false).unwrap();
        assert_eq!(files, ["g6", "g8", "g10"].map(PathBuf::from));
        let tail: Vec<Fragment> = [6.0, 8.0, 10.0].map(fragment).to_vec();
        assert!(
            complete(&tail, &segment, true, true).is_some(),
            "the last segment ends with the job"
        );
        assert!(complete(&tail, &segment, true, false).is_none());
    }
}
