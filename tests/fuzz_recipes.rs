//! A deterministic fuzzer for the recipe loader (issue 15): mutate the shipped recipes and the
//! kept corpus, then validate and compile each case in-process.
//!
//! Invariants checked for every case:
//! - no panic (validate, plan serialization, rendering every service's batch script);
//! - bounded time: a watchdog aborts the process (after saving the case) when one case takes
//!   longer than `FB_FUZZ_CASE_LIMIT_S` (default 10 s);
//! - bounded memory: a counting allocator records each case's peak; a case above
//!   [`CASE_MEMORY_LIMIT_BYTES`] fails (and the process aborts before 2 GiB);
//! - every rejected recipe has at least one error, each with a location (line, col >= 1);
//! - validate and compile agree: a recipe that validates renders every service's script.
//!
//! `FB_FUZZ_SECONDS` bounds the random phase (default 10; CI sets 20; run for hours locally),
//! `FB_FUZZ_SEED` picks the sequence (printed, so a failure can be replayed), and
//! `FB_FUZZ_SAVE=1` copies newly interesting cases (a diagnostic message not seen before) into
//! tests/fuzz-corpus/. Every file in tests/fuzz-corpus/ is replayed first, on every run.
//! Throughput, the case count and the largest memory seen are printed at the end.

use factorybench::recipe::{self, Severity};
use factorybench::render::{render_all, RenderOptions, Renderer};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Memory accounting.

/// Live bytes above which the process aborts instead of exhausting the machine.
const ABORT_LIVE_BYTES: usize = 2 << 30;
/// Peak growth allowed while handling one case.
const CASE_MEMORY_LIMIT_BYTES: usize = 256 << 20;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            grow(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
            grow(new);
        }
        q
    }
}

fn grow(n: usize) {
    let live = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(live, Ordering::Relaxed);
    if live > ABORT_LIVE_BYTES {
        // Allocating here would recurse: write a fixed message and stop.
        let msg = b"fuzz_recipes: a case exceeded 2 GiB of live memory (see fuzz-current.yml)\n";
        // SAFETY: write(2) of a static buffer to stderr.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
        std::process::abort();
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

// ---------------------------------------------------------------------------------------------
// A small deterministic PRNG (xorshift64*).

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// Values that have broken parsers before: huge, negative, non-finite, empty, odd types.
const VALUES: &[&str] = &[
    "1e300",
    "-1e300",
    "999999999999999h",
    "99999999999-99:99:99",
    "1-25",
    "18446744073709551616",
    "-1",
    "0",
    "-0.0",
    "nan",
    ".nan",
    ".inf",
    "-.inf",
    "1e-320",
    "''",
    "~",
    "[]",
    "{}",
    "[1, [2, [3]]]",
    "{a: {b: {c: 1}}}",
    "true",
    "\"$(touch /tmp/pwned)\"",
    "\"a\\nb\"",
    "\"héllo wörld ✓\"",
    "0x10",
    "1_000",
    "10XB",
    "4KiB",
    "1.5e3ms",
    "*nowhere",
    "!!binary aGVsbG8=",
    "&x 1",
    "\"postgresql://user:pw@host/db\"",
];

// ---------------------------------------------------------------------------------------------
// Mutations.

fn mutate(rng: &mut Rng, seed: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seed.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        match rng.below(14) {
            0 if !b.is_empty() => {
                // flip a bit
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 => {
                // insert a random byte (sometimes a non-UTF-8 one)
                let i = rng.below(b.len() + 1);
                let byte = if rng.below(3) == 0 {
                    0x80 + rng.below(0x80) as u8
                } else {
                    *rng.pick(b" :-[]{}&*!|>'\"#\n\t,?%@`")
                };
                b.insert(i, byte);
            }
            2 if !b.is_empty() => {
                // delete a range
                let i = rng.below(b.len());
                let n = 1 + rng.below(16.min(b.len() - i));
                b.drain(i..i + n);
            }
            3 => {
                // replace the value of one `key: value` line
                b = map_lines(&b, rng, |line, rng| {
                    let text = String::from_utf8_lossy(line).to_string();
                    match text.split_once(": ") {
                        Some((k, _)) => format!("{k}: {}", rng.pick(VALUES)).into_bytes(),
                        None => line.to_vec(),
                    }
                });
            }
            4 => {
                // swap key and value
                b = map_lines(&b, rng, |line, _| {
                    let text = String::from_utf8_lossy(line).to_string();
                    match text.split_once(": ") {
                        Some((k, v)) => {
                            let indent = k.len() - k.trim_start().len();
                            format!("{}{}: {}", &k[..indent], v.trim(), k.trim()).into_bytes()
                        }
                        None => line.to_vec(),
                    }
                });
            }
            5 => {
                // duplicate or drop a line
                let mut lines: Vec<&[u8]> = b.split(|&c| c == b'\n').collect();
                let i = rng.below(lines.len());
                if rng.below(2) == 0 {
                    lines.insert(i, lines[i]);
                } else {
                    lines.remove(i);
                }
                b = lines.join(&b'\n');
            }
            6 => {
                // swap two lines
                let mut lines: Vec<&[u8]> = b.split(|&c| c == b'\n').collect();
                let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
                lines.swap(i, j);
                b = lines.join(&b'\n');
            }
            7 => {
                // deep nesting somewhere
                let depth = 1 + rng.below(200);
                let v = "[".repeat(depth) + &"]".repeat(depth);
                b = map_lines(&b, rng, |line, _| {
                    let text = String::from_utf8_lossy(line).to_string();
                    match text.split_once(": ") {
                        Some((k, _)) => format!("{k}: {v}").into_bytes(),
                        None => line.to_vec(),
                    }
                });
            }
            8 => {
                // an alias bomb of random width and depth appended as an extra key
                let (w, d) = (2 + rng.below(12), 1 + rng.below(9));
                let mut s = format!("\nbomb0: &b0 [{}]\n", vec!["x"; w].join(", "));
                for l in 1..d {
                    s += &format!(
                        "bomb{l}: &b{l} [{}]\n",
                        vec![format!("*b{}", l - 1); w].join(", ")
                    );
                }
                b.extend_from_slice(s.as_bytes());
            }
            9 => {
                // anchor a value and alias it elsewhere (merge keys included)
                b = map_lines(&b, rng, |line, rng| {
                    let text = String::from_utf8_lossy(line).to_string();
                    match (text.split_once(": "), rng.below(3)) {
                        (Some((k, v)), 0) => format!("{k}: &fz {v}").into_bytes(),
                        (Some((k, _)), 1) => format!("{k}: *fz").into_bytes(),
                        (Some((k, _)), _) => {
                            let indent = k.len() - k.trim_start().len();
                            format!("{}<<: *fz", &k[..indent]).into_bytes()
                        }
                        (None, _) => line.to_vec(),
                    }
                });
            }
            10 => {
                // splice part of another input
                let other = rng.pick(corpus);
                if !other.is_empty() {
                    let i = rng.below(other.len());
                    let n = rng.below(other.len() - i + 1).min(512);
                    let at = rng.below(b.len() + 1);
                    b.splice(at..at, other[i..i + n].iter().copied());
                }
            }
            11 => {
                // truncate
                let n = rng.below(b.len() + 1);
                b.truncate(n);
            }
            12 => {
                // a huge number of digits
                let digits = "9".repeat(1 + rng.below(400));
                b = map_lines(&b, rng, |line, _| {
                    let text = String::from_utf8_lossy(line).to_string();
                    match text.split_once(": ") {
                        Some((k, _)) => format!("{k}: {digits}").into_bytes(),
                        None => line.to_vec(),
                    }
                });
            }
            _ => {
                // change indentation of one line
                b = map_lines(&b, rng, |line, rng| {
                    let mut v = line.to_vec();
                    if rng.below(2) == 0 {
                        let pads: [&[u8]; 3] = [b"  ", b" ", b"\t"];
                        let pad = *rng.pick(&pads);
                        v.splice(0..0, pad.iter().copied());
                    } else if v.first() == Some(&b' ') {
                        v.remove(0);
                    }
                    v
                });
            }
        }
    }
    b
}

/// Apply `f` to one random line.
fn map_lines(b: &[u8], rng: &mut Rng, f: impl FnOnce(&[u8], &mut Rng) -> Vec<u8>) -> Vec<u8> {
    let lines: Vec<&[u8]> = b.split(|&c| c == b'\n').collect();
    let i = rng.below(lines.len());
    let new = f(lines[i], rng);
    let mut out: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
    out[i] = new;
    out.join(&b'\n')
}

// ---------------------------------------------------------------------------------------------
// One case.

#[derive(Debug)]
enum Verdict {
    #[allow(dead_code)] // shown in failure messages
    Valid {
        services: usize,
    },
    Invalid {
        first_message: String,
    },
}

/// Validate, then compile (plan.json + every batch script) like `factorybench compile` does.
fn check(bytes: &[u8]) -> Result<Verdict, String> {
    let path = Path::new("fuzz.yml");
    match recipe::parse_bytes(bytes, path) {
        Ok(loaded) => {
            serde_json::to_string(&loaded.plan).map_err(|e| format!("plan.json: {e}"))?;
            let opts = RenderOptions {
                campaign_dir: "/scratch/fb/campaigns/fuzz".into(),
                fb_bin: "factorybench".into(),
            };
            render_all(&Renderer::new(), &loaded.plan, &opts)
                .map_err(|e| format!("validate accepted the recipe but compile failed: {e}"))?;
            let _ = loaded.render_warnings();
            Ok(Verdict::Valid {
                services: loaded.plan.services.len(),
            })
        }
        Err(e) => {
            let errors: Vec<_> = e
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .collect();
            if errors.is_empty() {
                return Err(format!("rejected without an error: {:?}", e.diagnostics));
            }
            for d in &errors {
                if d.pos.line == 0 || d.pos.col == 0 {
                    return Err(format!("error without a location: {d:?}"));
                }
            }
            // The rendered form (what `validate` prints) must not panic either.
            let _ = e.to_string();
            Ok(Verdict::Invalid {
                first_message: errors[0].message.clone(),
            })
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_dir_files(dir: &Path, ext: &[&str]) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| ext.iter().any(|e| x == *e)))
                .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A message with its numbers and quoted parts removed: the "kind" of a diagnostic.
fn message_class(m: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in m.chars() {
        match c {
            '`' => {
                quoted = !quoted;
                out.push('`');
            }
            _ if quoted => {}
            c if c.is_ascii_digit() => {
                if !out.ends_with('#') {
                    out.push('#');
                }
            }
            c => out.push(c),
        }
    }
    out.chars().take(80).collect()
}

#[test]
fn fuzz_recipe_loader() {
    let seconds: f64 = std::env::var("FB_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let case_limit = Duration::from_secs_f64(
        std::env::var("FB_FUZZ_CASE_LIMIT_S")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10.0),
    );
    let seed: u64 = std::env::var("FB_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f00d_1515);
    let save = std::env::var("FB_FUZZ_SAVE").as_deref() == Ok("1");
    let corpus_dir = repo().join("tests/fuzz-corpus");
    let current = std::env::temp_dir().join(format!("fuzz-current-{}.yml", std::process::id()));

    let recipes = read_dir_files(&repo().join("recipes"), &["yml"]);
    let kept = read_dir_files(&corpus_dir, &["yml", "yaml", "bin"]);
    assert!(recipes.len() >= 5, "recipes/*.yml not found");
    let seeds: Vec<Vec<u8>> = recipes
        .iter()
        .chain(kept.iter())
        .map(|(_, b)| b.clone())
        .collect();

    // Watchdog: a case running past the limit is saved and the process aborted (a hang would
    // otherwise hold CI until its own timeout, without the input).
    let started_ms = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let current_case: Arc<Mutex<Vec<u8>>> = Arc::default();
    {
        let (started_ms, current_case, current) =
            (started_ms.clone(), current_case.clone(), current.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200));
            let s = started_ms.load(Ordering::Relaxed);
            let now = epoch.elapsed().as_millis() as u64;
            if s != 0 && now.saturating_sub(s) > case_limit.as_millis() as u64 {
                if let Ok(c) = current_case.try_lock() {
                    let _ = std::fs::write(&current, &*c);
                }
                eprintln!(
                    "fuzz_recipes: one case ran longer than {case_limit:?}; input in {}",
                    current.display()
                );
                std::process::abort();
            }
        });
    }

    let mut failures: Vec<String> = Vec::new();
    let mut classes: HashSet<String> = HashSet::new();
    let (mut cases, mut valid, mut saved) = (0u64, 0u64, 0usize);
    let mut max_case_bytes = 0usize;
    let mut slowest = Duration::ZERO;
    let mut run_case =
        |bytes: &[u8], origin: &str, failures: &mut Vec<String>| -> Option<Verdict> {
            *current_case.lock().unwrap() = bytes.to_vec();
            let base = LIVE.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            started_ms.store(epoch.elapsed().as_millis().max(1) as u64, Ordering::Relaxed);
            let t = Instant::now();
            let r = std::panic::catch_unwind(|| check(bytes));
            slowest = slowest.max(t.elapsed());
            started_ms.store(0, Ordering::Relaxed);
            let used = PEAK.load(Ordering::Relaxed).saturating_sub(base);
            max_case_bytes = max_case_bytes.max(used);
            cases += 1;
            let fail = |why: String, failures: &mut Vec<String>| {
                let name = format!("fail-{:016x}.bin", fxhash(bytes));
                let p = std::env::temp_dir().join(&name);
                let _ = std::fs::write(&p, bytes);
                failures.push(format!("{origin}: {why} (input saved to {})", p.display()));
            };
            if used > CASE_MEMORY_LIMIT_BYTES {
                fail(format!("used {used} bytes"), failures);
            }
            match r {
                Ok(Ok(v)) => Some(v),
                Ok(Err(why)) => {
                    fail(why, failures);
                    None
                }
                Err(p) => {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    fail(format!("panic: {msg}"), failures);
                    None
                }
            }
        };

    // 1. Every shipped recipe and every kept case, as they are.
    let quiet_panics = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for (p, b) in recipes.iter().chain(kept.iter()) {
        let v = run_case(b, &p.display().to_string(), &mut failures);
        if let Some(Verdict::Invalid { first_message }) = &v {
            classes.insert(message_class(first_message));
            if p.starts_with(repo().join("recipes")) {
                failures.push(format!(
                    "{}: shipped recipe invalid: {first_message}",
                    p.display()
                ));
            }
        }
    }

    // 2. Mutations until the time budget is spent.
    let mut rng = Rng(seed | 1);
    let t0 = Instant::now();
    let budget = Duration::from_secs_f64(seconds);
    while t0.elapsed() < budget && failures.len() < 20 {
        let base = rng.pick(&seeds).clone();
        let case = mutate(&mut rng, &base, &seeds);
        match run_case(&case, "mutation", &mut failures) {
            Some(Verdict::Valid { .. }) => valid += 1,
            Some(Verdict::Invalid { first_message })
                if classes.insert(message_class(&first_message)) && save =>
            {
                let p = corpus_dir.join(format!("case-{:016x}.bin", fxhash(&case)));
                if std::fs::write(&p, &case).is_ok() {
                    saved += 1;
                }
            }
            Some(Verdict::Invalid { .. }) | None => {}
        }
    }
    std::panic::set_hook(quiet_panics);
    let fuzz_s = t0.elapsed().as_secs_f64();
    eprintln!(
        "fuzz_recipes: seed {seed}, {cases} cases ({valid} valid mutations) in {fuzz_s:.1} s of \
         mutation = {:.0} cases/s; largest case memory {:.1} MiB; slowest case {:.0} ms; \
         {} message classes; {saved} saved to tests/fuzz-corpus",
        (cases as f64 - (recipes.len() + kept.len()) as f64).max(0.0) / fuzz_s.max(1e-9),
        max_case_bytes as f64 / (1 << 20) as f64,
        slowest.as_secs_f64() * 1000.0,
        classes.len()
    );
    let _ = std::fs::remove_file(&current);
    assert!(
        failures.is_empty(),
        "{} failing case(s) (replay with FB_FUZZ_SEED={seed}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn fxhash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| {
        (h ^ c as u64).wrapping_mul(0x100_0000_01b3)
    })
}
