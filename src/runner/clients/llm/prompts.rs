//! Prompts: seeded synthetic prompts of a chosen token length, or a JSONL prompt file, and the
//! output length of each request. Everything is a pure function of (seed, request sequence
//! number), so a seed repeats the same prompts whatever the number of workers.
//!
//! Synthetic prompts are random words drawn from [`WORDS`]: common English words that are each
//! exactly one token (with or without a leading space) for GPT-2-style BPE tokenizers such as
//! SmolLM2's: checked against the real tokenizer served by `scripts/start-llm.sh`, where a
//! prompt of all 286 words counts 286 prompt tokens. For other tokenizers (Llama, Mistral) the
//! words are also single tokens almost always, so a prompt of N words is ≈ N tokens. The
//! recorded `input_tokens` is the server's count whenever the server reports one
//! (`usage.prompt_tokens`, Ollama `prompt_eval_count`); chat APIs add the chat template's
//! tokens on top of the prompt. Random words (not a repeated text) keep servers' prefix caches
//! from turning the benchmark into a cache benchmark.
//!
//! A prompt file is JSONL, one object per line: `{"prompt": "...", "output_tokens": 128}`
//! (`output_tokens` optional: otherwise drawn from the recipe's `output_tokens`). Request `seq`
//! uses line `seq mod n`. Its client-side token estimate is ⌈bytes / 4⌉.

use crate::recipe::TokenDist;
use crate::runner::rng::Rng;
use std::path::{Path, PathBuf};

pub const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "are",
    "with",
    "as",
    "at",
    "be",
    "this",
    "have",
    "from",
    "or",
    "one",
    "had",
    "by",
    "but",
    "not",
    "what",
    "all",
    "were",
    "when",
    "we",
    "there",
    "can",
    "an",
    "your",
    "which",
    "their",
    "said",
    "if",
    "do",
    "will",
    "each",
    "about",
    "how",
    "up",
    "out",
    "them",
    "then",
    "she",
    "many",
    "some",
    "so",
    "these",
    "would",
    "other",
    "into",
    "has",
    "more",
    "her",
    "two",
    "like",
    "him",
    "see",
    "time",
    "could",
    "no",
    "make",
    "than",
    "first",
    "been",
    "its",
    "who",
    "now",
    "people",
    "my",
    "made",
    "over",
    "did",
    "down",
    "only",
    "way",
    "find",
    "use",
    "may",
    "water",
    "long",
    "little",
    "very",
    "after",
    "words",
    "called",
    "just",
    "where",
    "most",
    "know",
    "get",
    "through",
    "back",
    "much",
    "before",
    "go",
    "good",
    "new",
    "write",
    "our",
    "used",
    "me",
    "man",
    "too",
    "any",
    "day",
    "same",
    "right",
    "look",
    "think",
    "also",
    "around",
    "another",
    "came",
    "come",
    "work",
    "three",
    "word",
    "must",
    "because",
    "does",
    "part",
    "even",
    "place",
    "well",
    "such",
    "here",
    "take",
    "why",
    "things",
    "help",
    "put",
    "years",
    "different",
    "away",
    "again",
    "off",
    "went",
    "old",
    "number",
    "great",
    "tell",
    "men",
    "say",
    "small",
    "every",
    "found",
    "still",
    "between",
    "name",
    "should",
    "home",
    "big",
    "give",
    "air",
    "line",
    "set",
    "own",
    "under",
    "read",
    "last",
    "never",
    "us",
    "left",
    "end",
    "along",
    "while",
    "might",
    "next",
    "sound",
    "below",
    "saw",
    "something",
    "thought",
    "both",
    "few",
    "those",
    "always",
    "looked",
    "show",
    "large",
    "often",
    "together",
    "asked",
    "house",
    "world",
    "going",
    "want",
    "school",
    "important",
    "until",
    "form",
    "food",
    "keep",
    "children",
    "feet",
    "land",
    "side",
    "without",
    "boy",
    "once",
    "animals",
    "life",
    "enough",
    "took",
    "sometimes",
    "four",
    "head",
    "above",
    "kind",
    "began",
    "almost",
    "live",
    "page",
    "got",
    "earth",
    "need",
    "far",
    "hand",
    "high",
    "year",
    "mother",
    "light",
    "parts",
    "country",
    "father",
    "let",
    "night",
    "following",
    "picture",
    "being",
    "study",
    "second",
    "eyes",
    "soon",
    "times",
    "story",
    "boys",
    "since",
    "white",
    "days",
    "ever",
    "paper",
    "hard",
    "near",
    "sentence",
    "better",
    "best",
    "across",
    "during",
    "today",
    "others",
    "however",
    "sure",
    "means",
    "knew",
    "try",
    "told",
    "young",
    "miles",
    "sun",
    "ways",
    "thing",
    "whole",
    "hear",
    "example",
    "heard",
    "several",
    "change",
    "answer",
    "room",
    "sea",
    "against",
    "top",
    "turned",
    "learn",
    "point",
    "city",
    "play",
    "toward",
    "five",
    "using",
    "himself",
    "usually",
];

/// What one request sends.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptSpec {
    pub text: String,
    /// Client-side estimate of the prompt's tokens (used only when the server reports none).
    pub approx_input_tokens: u64,
    /// `max_tokens` / `num_predict` for this request.
    pub max_tokens: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FilePrompt {
    pub prompt: String,
    pub output_tokens: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("cannot read prompt file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("prompt file {path}, line {line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("prompt file {path} has no prompts")]
    Empty { path: PathBuf },
}

/// Draw a token count from a distribution (at least 1).
pub fn sample_tokens(dist: &TokenDist, rng: &mut Rng) -> u32 {
    match *dist {
        TokenDist::Fixed { tokens } => tokens.max(1),
        TokenDist::Uniform { min, max } => {
            let (lo, hi) = (min.min(max), min.max(max));
            lo + rng.below((hi - lo) as u64 + 1) as u32
        }
        TokenDist::Normal { mean, stddev } => {
            let v = (mean + stddev * rng.normal()).round();
            v.clamp(1.0, u32::MAX as f64) as u32
        }
    }
}

/// `tokens` random single-token words separated by spaces.
pub fn synthetic_prompt(tokens: u32, rng: &mut Rng) -> String {
    let mut s = String::with_capacity(tokens as usize * 6);
    for i in 0..tokens {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    s
}

/// Parse a JSONL prompt file.
pub fn load_jsonl(path: &Path) -> Result<Vec<FilePrompt>, PromptError> {
    let text = std::fs::read_to_string(path).map_err(|source| PromptError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_jsonl(&text, path)
}

pub fn parse_jsonl(text: &str, path: &Path) -> Result<Vec<FilePrompt>, PromptError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| PromptError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| err(format!("not JSON: {e}")))?;
        let prompt = match v.get("prompt") {
            Some(serde_json::Value::String(p)) if !p.is_empty() => p.clone(),
            Some(_) => return Err(err("`prompt` must be a non-empty string".into())),
            None => return Err(err("missing `prompt`".into())),
        };
        let output_tokens = match v.get("output_tokens") {
            None | Some(serde_json::Value::Null) => None,
            Some(n) => match n.as_u64() {
                Some(n) if (1..=1_000_000).contains(&n) => Some(n as u32),
                _ => {
                    return Err(err(
                        "`output_tokens` must be a whole number in 1..=1000000".into()
                    ))
                }
            },
        };
        out.push(FilePrompt {
            prompt,
            output_tokens,
        });
    }
    if out.is_empty() {
        return Err(PromptError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// The prompts of a run.
#[derive(Debug, Clone)]
pub enum Prompts {
    Synthetic { input_tokens: TokenDist },
    File(Vec<FilePrompt>),
}

/// Stream id mixed into the seed so prompt draws never collide with the engine's schedule.
const PROMPT_STREAM: u64 = 0x11_4c4c_4d50;

impl Prompts {
    /// The prompt and output length of request `seq` of a run seeded with `seed`.
    pub fn for_request(&self, seed: u64, seq: u64, output_tokens: &TokenDist) -> PromptSpec {
        let mut rng = Rng::for_stream(seed ^ PROMPT_STREAM, seq);
        match self {
            Prompts::Synthetic { input_tokens } => {
                let n = sample_tokens(input_tokens, &mut rng);
                let max_tokens = sample_tokens(output_tokens, &mut rng);
                PromptSpec {
                    text: synthetic_prompt(n, &mut rng),
                    approx_input_tokens: n as u64,
                    max_tokens,
                }
            }
            Prompts::File(lines) => {
                let line = &lines[(seq % lines.len() as u64) as usize];
                let max_tokens = line
                    .output_tokens
                    .unwrap_or_else(|| sample_tokens(output_tokens, &mut rng));
                PromptSpec {
                    text: line.prompt.clone(),
                    approx_input_tokens: (line.prompt.len() as u64).div_ceil(4),
                    max_tokens,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_is_repeatable_and_sized() {
        let p = Prompts::Synthetic {
            input_tokens: TokenDist::Uniform { min: 5, max: 40 },
        };
        let out = TokenDist::Normal {
            mean: 20.0,
            stddev: 5.0,
        };
        for seq in 0..200 {
            let a = p.for_request(7, seq, &out);
            assert_eq!(a, p.for_request(7, seq, &out));
            let words = a.text.split(' ').count() as u64;
            assert_eq!(words, a.approx_input_tokens);
            assert!((5..=40).contains(&words));
            assert!(a.max_tokens >= 1);
        }
        assert_ne!(p.for_request(7, 0, &out), p.for_request(8, 0, &out));
        assert_ne!(
            p.for_request(7, 0, &out).text,
            p.for_request(7, 1, &out).text
        );
    }

    #[test]
    fn words_are_plain() {
        for w in WORDS {
            assert!(
                !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase()),
                "{w}"
            );
        }
    }

    #[test]
    fn token_dists() {
        let mut rng = Rng::new(1);
        assert_eq!(
            sample_tokens(&TokenDist::Fixed { tokens: 16 }, &mut rng),
            16
        );
        let mut seen = [false; 3];
        for _ in 0..200 {
            let v = sample_tokens(&TokenDist::Uniform { min: 3, max: 5 }, &mut rng);
            seen[(v - 3) as usize] = true;
        }
        assert_eq!(seen, [true; 3]);
        let n = TokenDist::Normal {
            mean: 2.0,
            stddev: 50.0,
        };
        assert!((0..200).all(|_| sample_tokens(&n, &mut rng) >= 1));
    }

    #[test]
    fn jsonl_file() {
        let path = Path::new("p.jsonl");
        let lines = parse_jsonl(
            "{\"prompt\": \"Hello there\", \"output_tokens\": 8}\n\n{\"prompt\": \"Why?\"}\n",
            path,
        )
        .unwrap();
        assert_eq!(lines.len(), 2);
        let p = Prompts::File(lines);
        let out = TokenDist::Fixed { tokens: 32 };
        assert_eq!(p.for_request(1, 0, &out).max_tokens, 8);
        assert_eq!(p.for_request(1, 1, &out).max_tokens, 32);
        assert_eq!(p.for_request(1, 2, &out).text, "Hello there");
        assert_eq!(p.for_request(1, 1, &out).approx_input_tokens, 1);
        let e = parse_jsonl("{\"prompt\": 3}", path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("`prompt`"), "{e}");
        let e = parse_jsonl("{\"prompt\": \"x\", \"output_tokens\": 0}", path).unwrap_err();
        assert!(e.to_string().contains("output_tokens"));
        assert!(matches!(
            parse_jsonl("\n", path),
            Err(PromptError::Empty { .. })
        ));
        assert!(parse_jsonl("nope", path)
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
    }
}
