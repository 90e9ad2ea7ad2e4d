//! Signed playback over HTTP: every RFC 9110 range case, HEAD, validators, seeking into
//! bytes not yet downloaded from a throttled seeder, many concurrent readers, M3U and play.

use std::time::Duration;

use reqwest::StatusCode;

use crate::support::*;

struct Setup {
    _root: tempfile::TempDir,
    _seeder: magnetar::seeder::Seeder,
    server: TestServer,
    url: String,
    data: Vec<u8>,
}

async fn one_file(len: usize, upload_bps: Option<u32>) -> Setup {
    let root = tempfile::tempdir().unwrap();
    let data = pattern(len, 7);
    let dir = write_tree(root.path(), "Clip", &[("clip.mp4", data.clone())]);
    let (seeder, seeded) = seed(&dir, upload_bps).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let url = server.direct(&stream);
    Setup {
        _root: root,
        _seeder: seeder,
        server,
        url,
        data,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_range_case_answers_per_rfc_9110() {
    let s = one_file(1_000_000, None).await;
    let len = s.data.len();
    let cases: [(Option<&str>, u16, usize, usize); 7] = [
        (None, 200, 0, len),
        (Some("bytes=0-99"), 206, 0, 100),
        (Some("bytes=500000-"), 206, 500_000, len),
        (Some("bytes=-1000"), 206, len - 1000, len),
        (Some("bytes=999000-5000000"), 206, 999_000, len),
        (Some("bytes=-5000000"), 206, 0, len),
        (Some("bytes=7-7"), 206, 7, 8),
    ];
    for (range, status, start, end) in cases {
        let (got, headers, body) = fetch(&s.url, range).await;
        assert_eq!(got.as_u16(), status, "{range:?}");
        assert!(body == s.data[start..end], "{range:?}: wrong bytes");
        assert_eq!(headers["content-length"], (end - start).to_string());
        assert_eq!(headers["accept-ranges"], "bytes");
        assert_eq!(headers["content-type"], "video/mp4");
        if status == 206 {
            let want = format!("bytes {start}-{}/{len}", end - 1);
            assert_eq!(headers["content-range"], want.as_str(), "{range:?}");
        }
    }
    for range in ["bytes=1000000-", "bytes=2000000-3000000", "bytes=-0"] {
        let response = client()
            .get(&s.url)
            .header("Range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["content-range"],
            format!("bytes */{len}").as_str()
        );
        let (status, body) = json_of(response).await;
        assert_error(status, &body, 416, "RANGE_NOT_SATISFIABLE");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn head_and_validators_behave() {
    let s = one_file(300_000, None).await;
    let head = client().head(&s.url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], "300000");
    let etag = head.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "strong ETag: {etag}"
    );
    assert!(head.bytes().await.unwrap().is_empty());

    let ranged_head = client()
        .head(&s.url)
        .header("Range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged_head.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged_head.headers()["content-range"], "bytes 10-19/300000");

    let matching = client()
        .get(&s.url)
        .header("Range", "bytes=10-19")
        .header("If-Range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(matching.status(), StatusCode::PARTIAL_CONTENT);
    assert!(matching.bytes().await.unwrap() == s.data[10..20]);
    let stale = client()
        .get(&s.url)
        .header("Range", "bytes=10-19")
        .header("If-Range", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stale.status(),
        StatusCode::OK,
        "a stale If-Range gets the whole file"
    );
    assert_eq!(stale.bytes().await.unwrap().len(), 300_000);
    let cached = client()
        .get(&s.url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seeking_ahead_of_a_throttled_seeder_returns_the_right_bytes() {
    // 24 MiB at 2 MB/s: the whole file takes ~12 s; a seek must not wait for it in order.
    let s = one_file(24 * 1024 * 1024, Some(2_000_000)).await;
    let at = 20 * 1024 * 1024 + 12345;
    let range = format!("bytes={at}-{}", at + 256 * 1024 - 1);
    let (status, _, body) = fetch(&s.url, Some(&range)).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert!(
        body == s.data[at..at + 256 * 1024],
        "bytes after the seek differ"
    );
    let back = 3 * 1024 * 1024;
    let (_, _, body) = fetch(&s.url, Some(&format!("bytes={back}-{}", back + 99_999))).await;
    assert!(body == s.data[back..back + 100_000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_readers_across_torrents_all_complete() {
    let root = tempfile::tempdir().unwrap();
    let seeder = magnetar::seeder::Seeder::start(None).await.unwrap();
    let server = TestServer::start(&root.path().join("data")).await;
    let mut targets = Vec::new();
    for t in 0..4u64 {
        let data = pattern(2 * 1024 * 1024 + t as usize * 1000, 100 + t);
        let dir = write_tree(
            root.path(),
            &format!("T{t}"),
            &[("movie.mkv", data.clone())],
        );
        let seeded = seeder.seed(&dir).await.unwrap();
        let stream = server.stream_of("alice", &seeded.magnet).await;
        targets.push((server.direct(&stream), data));
    }
    let mut readers = tokio::task::JoinSet::new();
    for i in 0..64usize {
        let (url, data) = targets[i % targets.len()].clone();
        readers.spawn(async move {
            let start = (i * 37_123) % (data.len() - 600_000);
            let range = format!("bytes={start}-{}", start + 500_000 - 1);
            let (status, _, body) = fetch(&url, Some(&range)).await;
            assert_eq!(status, StatusCode::PARTIAL_CONTENT);
            assert!(
                body == data[start..start + 500_000],
                "reader {i} got wrong bytes"
            );
        });
    }
    let all = async {
        while let Some(done) = readers.join_next().await {
            done.expect("reader task");
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("no freeze: all 64 readers finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn m3u_lists_an_absolute_url_and_play_redirects_to_the_file() {
    let s = one_file(100_000, None).await;
    let (status, body) = json_of(
        client()
            .get(format!("{}/api/v1/streams", s.server.base))
            .bearer_auth(s.server.token("alice"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let stream = &body["streams"][0];
    let m3u_url = s.server.url(stream["urls"]["m3u"].as_str().unwrap());
    let (status, headers, m3u) = fetch(&m3u_url, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("audio/x-mpegurl"));
    let m3u = String::from_utf8(m3u).unwrap();
    assert!(m3u.starts_with("#EXTM3U\n#EXTINF:-1,clip.mp4\n"), "{m3u}");
    let listed = m3u.lines().nth(2).unwrap();
    assert_eq!(listed, s.url, "absolute URL of the file");

    let play = s.server.url(stream["urls"]["play"].as_str().unwrap());
    let response = client().get(play).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap();
    assert_eq!(s.server.url(location), s.url);
}
