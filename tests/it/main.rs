//! Magnetar's integration suite: one binary, real librqbit sessions on 127.0.0.1 (a seeder
//! and the server under test, DHT off), real HTTP over sockets, real ffprobe and mpv.

mod support;

mod attacks;
mod browser;
mod cli;
mod connections;
mod drift;
mod errors;
mod full_disk;
mod hls_jobs;
mod limits;
mod media;
mod metrics;
mod neighbours;
mod outage;
mod playback;
mod players;
mod prepare;
mod process;
mod registry;
mod restarts;
mod stats;
mod storage;
mod streams;
mod subtitles;
mod transcode;
