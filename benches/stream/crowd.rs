//! Figure (e): many users at once under the default limits, driven by wrk. One warm torrent,
//! [`USERS`] users each with an API token and a stream of their own on it; wrk (its script:
//! `crowd.lua`) sends mostly random 256 KiB ranges on each user's playback URL, some
//! `GET /api/v1/streams` with the user's token, and a trickle of strangers: forged API
//! tokens, forged playback URLs, calls without credentials. Baseline: the same load on a
//! server with every rate limit off, so the table shows what the limiter costs. Both servers
//! run side by side and wrk takes turns on them ([`ORDER`]), so that drift on a shared
//! machine hits both alike.
//!
//! Every request comes from 127.0.0.1, so the servers play behind a reverse proxy there
//! (`server.trusted_proxies`) and each user's requests carry the user's own address in
//! `X-Forwarded-For`, the strangers' a few others: with one address for all, the strangers'
//! failed authentications would block everyone (the per-address brute-force block), and
//! the figure would measure that instead. The limits themselves are the configured ones.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use futures::{stream, StreamExt, TryStreamExt};

use crate::process::wrk;
use crate::report::{ms, row, Row};
use crate::server::{proc_cpu, proc_mib, with_server_as, Server, Settings};
use crate::swarm::Swarm;
use crate::MIB;

/// Users, each with a token, a stream and an address of their own.
const USERS: usize = 200;
const FILE_LEN: u64 = 32 * MIB;
/// Bytes per range request.
const SPAN: u64 = 256 * 1024;
/// Share of a user's requests that are API calls; the rest are range requests.
const API_SHARE: f64 = 0.05;
/// wrk threads playing users; one more plays the strangers.
const USER_THREADS: usize = 2;
/// wrk connections, split evenly over the threads.
const CONNECTIONS: usize = 255;
/// Requests per second from the strangers, spread over [`STRANGER_IPS`] addresses.
const STRANGER_RATE: usize = 50;
const STRANGER_IPS: usize = 8;
/// One wrk run.
const ROUND: Duration = Duration::from_secs(10);
/// The runs in turn: 0 is the server with the limits, 1 the one without.
const ORDER: [usize; 4] = [0, 1, 1, 0];
/// Every request-rate key of `[limits]`; the baseline sets them all to 0 (off).
const RATE_KEYS: [&str; 7] = [
    "api_per_minute",
    "api_burst",
    "streams_per_minute",
    "content_per_second",
    "content_burst",
    "unauthenticated_per_minute",
    "auth_failures_per_minute",
];
const SCRIPT: &str = include_str!("crowd.lua");

/// (e) [`USERS`] users at once under the default limits, against the same with limits off.
pub async fn figure_e() -> Result<Vec<Row>> {
    let swarm = Swarm::start(None).await?;
    let seeded = swarm.seed_generated("crowd.mkv", FILE_LEN, 61, None).await;
    let result = match seeded {
        Ok((_, seeded)) => both(&seeded.magnet).await,
        Err(err) => Err(err),
    };
    swarm.stop().await;
    let [on, off] = result?;
    for side in [&on, &off] {
        println!("(e) {}, all rounds: {}", side.name, side.text());
        for line in side.logged.iter().take(3) {
            println!("(e) {}: the server logged: {line}", side.name);
        }
    }
    Ok(rows(&on, &off))
}

/// Starts a server with the default limits and one without, sets both up, then runs wrk on
/// them in [`ORDER`].
async fn both(magnet: &str) -> Result<[Outcome; 2]> {
    with_server_as(settings(true), async |on: &Server| {
        with_server_as(settings(false), async |off: &Server| {
            let dir = tempfile::tempdir()?;
            let mut sides = [
                Side::new("limits on", on, magnet, dir.path()).await?,
                Side::new("limits off", off, magnet, dir.path()).await?,
            ];
            for (round, &k) in ORDER.iter().enumerate() {
                sides[k].round(round + 1).await?;
            }
            let [on, off] = sides;
            Ok([on.finish().await?, off.finish().await?])
        })
        .await
    })
    .await
}

/// Behind a trusted proxy on 127.0.0.1; with the configured limits or every rate off.
fn settings(limits: bool) -> Settings {
    let mut env = vec![(
        "MAGNETAR__SERVER__TRUSTED_PROXIES".to_owned(),
        r#"["127.0.0.1"]"#.to_owned(),
    )];
    if !limits {
        for key in RATE_KEYS {
            let name = format!("MAGNETAR__LIMITS__{}", key.to_uppercase());
            env.push((name, "0".into()));
        }
    }
    Settings::With(env)
}

/// One server under load: its script, and what its rounds saw so far.
struct Side<'a> {
    name: &'static str,
    server: &'a Server,
    script: PathBuf,
    hwm_before: u64,
    cpu: Duration,
    counts: Counts,
}

impl<'a> Side<'a> {
    /// Warms the torrent (a stream of the bench's own, until ready), sets the users up and
    /// writes the script.
    async fn new(
        name: &'static str,
        server: &'a Server,
        magnet: &str,
        dir: &Path,
    ) -> Result<Side<'a>> {
        let (id, _) = server.create(magnet).await?;
        server.wait_ready(&id).await?;
        let users = users(server, magnet).await?;
        let script = dir.join(format!("crowd-{}.lua", name.replace(' ', "-")));
        std::fs::write(&script, lua_config(&users) + SCRIPT)?;
        Ok(Side {
            name,
            server,
            script,
            hwm_before: proc_mib(server.pid, "VmHWM"),
            cpu: Duration::ZERO,
            counts: Counts::default(),
        })
    }

    /// One wrk run of [`ROUND`]; adds its counts and the server's CPU time.
    async fn round(&mut self, n: usize) -> Result<()> {
        let cpu = proc_cpu(self.server.pid);
        let args = wrk_args(&self.script, self.server.base());
        let out = wrk(&args, ROUND + Duration::from_secs(60)).await?;
        let cpu = proc_cpu(self.server.pid).saturating_sub(cpu);
        let counts = Counts::parse(&out)?;
        let per_request = cpu.as_secs_f64() * 1e6 / counts.get("requests").max(1) as f64;
        println!(
            "(e) round {n}, {}: {}; server CPU {per_request:.0} µs/request",
            self.name,
            counts.text()
        );
        self.counts.add(&counts);
        self.cpu += cpu;
        Ok(())
    }

    /// Checks the server still answers, reads its peak memory and its log.
    async fn finish(self) -> Result<Outcome> {
        let health = format!("{}/health", self.server.base());
        let answer = self
            .server
            .client
            .get(&health)
            .timeout(Duration::from_secs(5));
        match answer.send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => bail!(
                "{}: /health answered {} after the load",
                self.name,
                r.status()
            ),
            Err(err) => bail!("{}: /health after the load: {err}", self.name),
        }
        let log = self.server.log();
        let panics = log.lines().filter(|l| l.contains("panicked")).count() as u64;
        let logged = log.lines().filter(|l| l.contains("ERROR"));
        Ok(Outcome {
            name: self.name,
            rss: (self.hwm_before, proc_mib(self.server.pid, "VmHWM")),
            cpu: self.cpu,
            panics,
            logged: logged.map(String::from).collect(),
            counts: self.counts,
        })
    }
}

/// A user as the script sees it.
struct User {
    path: String,
    bearer: String,
    ip: String,
}

/// Mints a token and creates a stream for each of [`USERS`] users (8 at a time; one stream
/// creation each, within `streams_per_minute`).
async fn users(server: &Server, magnet: &str) -> Result<Vec<User>> {
    let make = |k: usize| async move {
        let bearer = server.token(&format!("u{k:03}")).await?;
        let (_, url) = server.create_as(&bearer, magnet).await?;
        let path = url.strip_prefix(server.base()).unwrap_or(&url).to_owned();
        let ip = format!("10.0.{}.{}", k / 200, k % 200 + 1);
        Ok::<_, anyhow::Error>(User { path, bearer, ip })
    };
    let users = stream::iter(0..USERS).map(make).buffered(8);
    users.try_collect().await.context("setting up the users")
}

/// The table `E` that `crowd.lua` expects, as Lua source.
fn lua_config(users: &[User]) -> String {
    let mut lua = String::from("E = {\n  users = {\n");
    for u in users {
        let (path, bearer, ip) = (lua_str(&u.path), lua_str(&u.bearer), lua_str(&u.ip));
        let _ = writeln!(
            lua,
            "    {{ path = {path}, bearer = {bearer}, ip = {ip} }},"
        );
    }
    lua.push_str("  },\n  forged = {\n");
    for u in users.iter().take(STRANGER_IPS) {
        let path = lua_str(&forge_path(&u.path));
        let bearer = lua_str(&forge(&u.bearer));
        let _ = writeln!(lua, "    {{ path = {path}, bearer = {bearer} }},");
    }
    let per_thread = CONNECTIONS / (USER_THREADS + 1);
    let delay_ms = per_thread * 1000 / STRANGER_RATE;
    let _ = writeln!(
        lua,
        "  }},\n  len = {FILE_LEN}, span = {SPAN}, api_share = {API_SHARE},\n  \
         user_threads = {USER_THREADS}, stranger_ips = {STRANGER_IPS}, \
         stranger_delay_ms = {delay_ms},\n}}\n"
    );
    lua
}

/// A Lua string literal.
fn lua_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `token` with one character of its signature changed (not the last one, whose low bits
/// a lenient base64 decoder may ignore).
fn forge(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let at = bytes.len().saturating_sub(8);
    if let Some(b) = bytes.get_mut(at) {
        *b = if *b == b'A' { b'B' } else { b'A' };
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A playback path `/s/{token}/{file}` with its token forged.
fn forge_path(path: &str) -> String {
    let rest = path.strip_prefix("/s/").unwrap_or(path);
    match rest.split_once('/') {
        Some((token, file)) => format!("/s/{}/{file}", forge(token)),
        None => forge(path),
    }
}

fn wrk_args(script: &Path, base: &str) -> Vec<String> {
    let threads = USER_THREADS + 1;
    let args = [
        format!("-t{threads}"),
        format!("-c{CONNECTIONS}"),
        format!("-d{}s", ROUND.as_secs()),
        "--timeout".into(),
        "10s".into(),
        "--latency".into(),
        "-s".into(),
        script.display().to_string(),
        format!("{base}/"),
    ];
    args.to_vec()
}

/// The script's counts (`crowd <key>=<value>` lines), over one run or several.
#[derive(Default)]
struct Counts(BTreeMap<String, u64>);

impl Counts {
    fn parse(out: &str) -> Result<Self> {
        let counts: BTreeMap<String, u64> = out
            .lines()
            .filter_map(|l| l.strip_prefix("crowd "))
            .filter_map(|l| l.rsplit_once('='))
            .filter_map(|(k, v)| Some((k.to_owned(), v.trim().parse().ok()?)))
            .collect();
        if !counts.contains_key("requests") {
            bail!("wrk printed no counts (did crowd.lua run?):\n{out}");
        }
        Ok(Self(counts))
    }

    /// Adds `other`'s counts; latencies take the worse of the two.
    fn add(&mut self, other: &Counts) {
        for (key, n) in &other.0 {
            let mine = self.0.entry(key.clone()).or_default();
            *mine = match key.starts_with("latency ") {
                true => (*mine).max(*n),
                false => *mine + n,
            };
        }
    }

    fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    fn secs(&self) -> f64 {
        self.get("duration_us") as f64 / 1e6
    }

    fn rps(&self) -> f64 {
        self.get("requests") as f64 / self.secs().max(1e-9)
    }

    fn mbps(&self) -> f64 {
        self.get("bytes") as f64 / 1e6 / self.secs().max(1e-9)
    }

    /// Users' answers that were what they asked for.
    fn served(&self) -> u64 {
        self.get("content 206") + self.get("api 200")
    }

    fn users_429(&self) -> u64 {
        self.get("content 429") + self.get("api 429")
    }

    fn strangers(&self) -> u64 {
        let sent = ["forged_api", "forged_url", "anonymous"];
        sent.iter()
            .map(|k| self.get(&format!("sent stranger {k}")))
            .sum()
    }

    /// Everything that is neither a success nor a 429 nor a stranger's 401, with its count:
    /// unexpected statuses, bad answers (a 429 without `Retry-After`, a non-JSON error, a
    /// short 206), socket errors and timeouts.
    fn errors(&self) -> Vec<(String, u64)> {
        let expected = |class: &str, status: &str| match class {
            "content" => status == "206" || status == "429",
            "api" => status == "200" || status == "429",
            "stranger" => status == "401" || status == "429",
            _ => true,
        };
        let bad = |key: &str| match key.split_once(' ') {
            Some(("bad" | "socket", _)) => true,
            Some((class, status)) if status.parse::<u16>().is_ok() => !expected(class, status),
            _ => false,
        };
        let errors = self.0.iter().filter(|(key, n)| **n > 0 && bad(key));
        errors.map(|(key, n)| (key.clone(), *n)).collect()
    }

    fn latency(&self, key: &str) -> String {
        ms(Duration::from_micros(
            self.get(&format!("latency {key}_us")),
        ))
    }

    fn text(&self) -> String {
        let errors = match self.errors() {
            e if e.is_empty() => "no errors".to_owned(),
            e => format!("ERRORS {e:?}"),
        };
        let per_user = |key: &str, per: f64| self.get(key) as f64 * per / self.secs() / 200.0;
        format!(
            "{} requests in {:.1} s ({:.0} req/s, {:.0} MB/s); ranges 206 {} / 429 {}; \
             API 200 {} / 429 {}; a user's rate: {:.1} ranges/s, {:.0} API calls/min; \
             strangers 401 {} / 429 {} of {}; {errors}; latency p50 {}, p99 {}, max {}",
            self.get("requests"),
            self.secs(),
            self.rps(),
            self.mbps(),
            self.get("content 206"),
            self.get("content 429"),
            self.get("api 200"),
            self.get("api 429"),
            per_user("sent content", 1.0),
            per_user("sent api", 60.0),
            self.get("stranger 401"),
            self.get("stranger 429"),
            self.strangers(),
            self.latency("p50"),
            self.latency("p99"),
            self.latency("max"),
        )
    }
}

/// What one server saw over all its rounds: the counts, its VmHWM before and after (MiB),
/// its CPU time under load, and the panics and ERROR lines in its log.
struct Outcome {
    name: &'static str,
    counts: Counts,
    rss: (u64, u64),
    cpu: Duration,
    panics: u64,
    logged: Vec<String>,
}

impl Outcome {
    fn error_count(&self) -> u64 {
        let errors = self.counts.errors();
        errors.iter().map(|(_, n)| n).sum::<u64>() + self.panics
    }

    /// Server CPU time per request, in µs.
    fn cpu_per_request(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.counts.get("requests").max(1) as f64
    }

    fn text(&self) -> String {
        let (before, after) = self.rss;
        let panics = match self.panics {
            0 => String::new(),
            n => format!("; {n} PANICS in the server log"),
        };
        format!(
            "{}; server CPU {:.1} s ({:.0} µs/request), VmHWM {before} MiB before, \
             {after} MiB after{panics}",
            self.counts.text(),
            self.cpu.as_secs_f64(),
            self.cpu_per_request(),
        )
    }
}

fn rows(on: &Outcome, off: &Outcome) -> Vec<Row> {
    let served = |o: &Outcome| {
        let c = &o.counts;
        format!("{} / {} / {}", c.served(), c.users_429(), o.error_count())
    };
    let rate = |o: &Outcome| format!("{:.0} req/s, {:.0} MB/s", o.counts.rps(), o.counts.mbps());
    let cpu = |o: &Outcome| format!("{:.0} µs", o.cpu_per_request());
    let p = |o: &Outcome| format!("{} / {}", o.counts.latency("p50"), o.counts.latency("p99"));
    let strangers = |o: &Outcome| {
        let c = &o.counts;
        format!("{} / {}", c.get("stranger 401"), c.get("stranger 429"))
    };
    let rss = |o: &Outcome| format!("{} MiB / {} MiB", o.rss.0, o.rss.1);
    let ratio = on.counts.rps() / off.counts.rps().max(1e-9);
    let met = on.error_count() == 0 && off.error_count() == 0;
    let off_text = |text: String| format!("limits off: {text}");
    let secs = ROUND.as_secs() * ORDER.len() as u64 / 2;
    vec![
        row(
            &format!("(e) {USERS} users, wrk {secs} s: 2xx / 429 / errors"),
            &served(on),
            &off_text(served(off)),
            "0 errors",
            Some(met),
        ),
        row(
            "(e) throughput",
            &format!("{} (×{ratio:.2})", rate(on)),
            &off_text(rate(off)),
            "-",
            None,
        ),
        row(
            "(e) server CPU per request",
            &cpu(on),
            &off_text(cpu(off)),
            "-",
            None,
        ),
        row(
            "(e) latency p50 / p99 (worse round)",
            &p(on),
            &off_text(p(off)),
            "-",
            None,
        ),
        row(
            "(e) strangers answered 401 / 429",
            &strangers(on),
            &off_text(strangers(off)),
            "-",
            None,
        ),
        row(
            "(e) server RSS before / peak (VmHWM)",
            &rss(on),
            &off_text(rss(off)),
            "-",
            None,
        ),
    ]
}
