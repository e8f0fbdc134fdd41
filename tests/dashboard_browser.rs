//! The tweets example's live dashboard in a real browser: headless Chromium (Debian's
//! `chromium`, which scripts/test installs) loads it from a running example with the bundled
//! broker, and the numbers it renders equal the expected counts. A screenshot is kept next to
//! the test binaries (`target/<profile>/dashboard.png`).

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// The browser: `STREAMS_TEST_CHROMIUM`, or `chromium` on the PATH. Missing, the test fails.
fn chromium() -> String {
    let bin = std::env::var("STREAMS_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = Command::new(&bin).arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "`{bin}` does not run: install Debian's chromium (scripts/test does) or set STREAMS_TEST_CHROMIUM"
    );
    bin
}

/// Chromium's flags for a page rendered once its scripts ran their first rounds.
fn headless(extra: &[&str], url: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1280,900",
        // Virtual time waits for the page's requests: a few polling rounds of the dashboard.
        "--virtual-time-budget=8000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(url.to_string());
    args
}

/// `(attribute value, count)` of every `<tr data-<attr>="...">` row in `html`, in order.
fn rows(html: &str, attr: &str) -> Vec<(String, i64)> {
    let marker = format!("<tr data-{attr}=\"");
    html.split(&marker)
        .skip(1)
        .map(|chunk| {
            let name = chunk.split('"').next().unwrap().to_string();
            let count = chunk
                .split("class=\"count\"")
                .nth(1)
                .and_then(|c| c.split('>').nth(1))
                .and_then(|c| c.split('<').next())
                .unwrap_or_else(|| panic!("row {name} has no count cell"));
            (name, count.trim().parse().expect("a count"))
        })
        .collect()
}

/// Sorted by count, largest first, then by name: how the dashboard lists rows.
fn ranked(m: &BTreeMap<String, i64>) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = m.iter().map(|(k, n)| (k.clone(), *n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

struct Example(Child);

impl Drop for Example {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn the_dashboard_shows_the_expected_counts_in_headless_chromium() {
    const N: u64 = 1000;
    const MINUTE: i64 = 60_000;
    let browser = chromium();
    let port = free_port();
    let state = tempfile::tempdir().unwrap();
    let _example = Example(
        Command::new(example("tweets"))
            .args(["--http", &format!("127.0.0.1:{port}")])
            .args(["--state-dir", state.path().to_str().unwrap()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the tweets example"),
    );
    let base = format!("http://127.0.0.1:{port}");

    let tweets = tweets::generated_tweets(N);
    let countries = tweets::country_counts(&tweets);
    let mut users = BTreeMap::new();
    let mut minutes: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
    for t in &tweets {
        *users.entry(t.user.clone()).or_insert(0) += 1;
        let start = t.timestamp_ms - t.timestamp_ms % MINUTE;
        for tag in tweets::hashtags(&t.text) {
            *minutes.entry(start).or_default().entry(tag).or_insert(0) += 1;
        }
    }
    // The example has counted every tweet once the stores say so.
    let total = |store: &str| {
        let (status, body) = http_get(&format!("{base}/v1/stores/{store}/range"));
        (status == 200).then(|| {
            body["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["value"].as_i64().unwrap())
                .sum::<i64>()
        })
    };
    // Each store is filled by its own sub-topology: wait for all three. The minute windows
    // are done once the last minute holds all of its tweets' hashtags (a later record would
    // be the last one's).
    let windowed = || -> Option<BTreeMap<i64, BTreeMap<String, i64>>> {
        let url = format!("{base}/v1/stores/hashtag-counts-1m-store/windows?limit=100000");
        let (status, body) = http_get(&url);
        (status == 200).then(|| {
            let mut m: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
            for e in body["entries"].as_array().unwrap() {
                let tag = e["key"].as_str().unwrap().to_string();
                m.entry(e["start"].as_i64().unwrap())
                    .or_default()
                    .insert(tag, e["value"].as_i64().unwrap());
            }
            m
        })
    };
    let (last, generated_last) = minutes.iter().next_back().unwrap();
    wait_until(
        "the example counts every tweet",
        Duration::from_secs(120),
        || {
            total("user-tweet-counts-store") == Some(N as i64)
                && total("country-tweet-counts-store") == Some(N as i64)
                && windowed().is_some_and(|m| m.get(last) == Some(generated_last))
        },
    );
    // A tweet that reaches its minute more than the grace after later ones is dropped as
    // late (this happens when one input partition is processed ahead of the others): the
    // store holds at most the generated counts, and the dashboard must show the store.
    let stored = windowed().unwrap();
    for (start, tags) in &stored {
        for (tag, n) in tags {
            let generated = minutes.get(start).and_then(|m| m.get(tag)).copied();
            assert!(
                generated.is_some_and(|g| *n <= g),
                "#{tag} at {start}: {n} > {generated:?}"
            );
        }
    }
    let minutes = stored;

    let dom = Command::new(&browser)
        .args(headless(&["--dump-dom"], &format!("{base}/")))
        .stderr(Stdio::null())
        .output()
        .expect("chromium runs");
    let html = String::from_utf8_lossy(&dom.stdout).to_string();
    assert!(
        html.contains("id=\"status\" data-state=\"ok\""),
        "the page's last round failed:\n{html}"
    );
    assert!(
        !html.contains("data-rounds=\"0\""),
        "no round completed:\n{html}"
    );

    assert_eq!(rows(&html, "country"), ranked(&countries));
    assert!(
        countries.len() > 2,
        "users joined to their countries: {countries:?}"
    );
    assert_eq!(rows(&html, "user"), ranked(&users));

    // The three latest closed minutes, newest first, each with its top ten hashtags.
    let latest = *minutes.keys().last().unwrap();
    let closed: Vec<i64> = minutes
        .keys()
        .rev()
        .copied()
        .filter(|s| s + MINUTE + 5_000 <= latest)
        .take(3)
        .collect();
    let shown: Vec<i64> = html
        .split("class=\"minute\" data-start=\"")
        .skip(1)
        .map(|c| c.split('"').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(shown, closed, "the minutes shown");
    for (i, chunk) in html
        .split("class=\"minute\" data-start=\"")
        .skip(1)
        .enumerate()
    {
        let top: Vec<(String, i64)> = ranked(&minutes[&closed[i]]).into_iter().take(10).collect();
        assert_eq!(rows(chunk, "tag"), top, "minute starting at {}", closed[i]);
    }

    let shot = target_binary(&["dashboard.png"]);
    let status = Command::new(&browser)
        .args(headless(
            &[&format!("--screenshot={}", shot.display())],
            &format!("{base}/"),
        ))
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success() && shot.exists(), "screenshot taken");
    eprintln!("dashboard screenshot: {}", shot.display());
}
