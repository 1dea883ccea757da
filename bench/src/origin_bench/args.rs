//! The command line of `users-bench` and the run parameters it sets.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde::{Deserialize, Serialize};

/// Items per listing page the bench asks for.
pub const PAGE_LIMIT: u64 = 20;
/// Most requests in flight in a fixed-rate run of a read scenario: four times the saturation
/// runs' workers, so only a server stall of several times the usual latency fills them (and
/// then the wait behind it is still measured, from each request's scheduled time).
pub const OPEN_CONNECTIONS: usize = 64;
/// Most logins in flight in the overload run: far above the origin's hash queue, so the queue
/// fills and refuses as it would with unbounded clients.
pub const OVERLOAD_CONNECTIONS: usize = 512;
/// How deep the deep listing page is, in pages (fewer if the seed has fewer).
pub const DEEP_PAGE: u64 = 10_000;

pub const USAGE: &str = "\
users-bench: load benchmark of the origin (see docs/benchmarks.md)

usage: users-bench [options]
  --out PATH              JSON results (default bench/results.json)
  --md PATH               markdown report (default docs/benchmarks.md)
  --render JSON           only rewrite the markdown report from an earlier results file
  --users N               seeded users (default 1000000)
  --duration S            seconds of each measured run (default 15)
  --warmup S              seconds of warm-up before each scenario (default 3)
  --concurrency C         workers of the read scenarios' saturation runs (default 16)
  --auth-concurrency C    workers of the login/register saturation runs (default 8)
  --overload-duration S   seconds of the login overload run (default 8)
Environment: RUST_LOG filters the origin's logs (default error,tower_http=off).";

/// The options; the serialised fields are recorded in the results as the run's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Args {
    #[serde(skip)]
    pub out: PathBuf,
    #[serde(skip)]
    pub md: PathBuf,
    #[serde(skip)]
    pub render: Option<PathBuf>,
    pub users: u64,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub concurrency: usize,
    pub auth_concurrency: usize,
    pub overload_duration_s: f64,
    pub pause_s: f64,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            out: "bench/results.json".into(),
            md: "docs/benchmarks.md".into(),
            render: None,
            users: 1_000_000,
            duration_s: 15.0,
            warmup_s: 3.0,
            concurrency: 16,
            auth_concurrency: 8,
            overload_duration_s: 8.0,
            pause_s: 1.0,
        }
    }
}

impl Args {
    /// Parses the arguments after the program name; `None` when they ask for `--help`.
    pub fn parse_from(args: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Self>> {
        let mut a = Self::default();
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            if flag == "-h" || flag == "--help" {
                return Ok(None);
            }
            let value = it
                .next()
                .ok_or_else(|| anyhow!("{flag} needs a value\n\n{USAGE}"))?;
            let bad = |e: &dyn std::fmt::Display| anyhow!("{flag} {value:?}: {e}");
            match flag.as_str() {
                "--out" => a.out = value.into(),
                "--md" => a.md = value.into(),
                "--render" => a.render = Some(value.into()),
                "--users" => a.users = value.parse().map_err(|e| bad(&e))?,
                "--duration" => a.duration_s = value.parse().map_err(|e| bad(&e))?,
                "--warmup" => a.warmup_s = value.parse().map_err(|e| bad(&e))?,
                "--concurrency" => a.concurrency = value.parse().map_err(|e| bad(&e))?,
                "--auth-concurrency" => a.auth_concurrency = value.parse().map_err(|e| bad(&e))?,
                "--overload-duration" => {
                    a.overload_duration_s = value.parse().map_err(|e| bad(&e))?;
                }
                _ => bail!("unknown option {flag}\n\n{USAGE}"),
            }
        }
        if a.users < 2 * PAGE_LIMIT + 2 {
            bail!("--users must be at least {}", 2 * PAGE_LIMIT + 2);
        }
        if a.concurrency == 0 || a.auth_concurrency == 0 {
            bail!("concurrency must be at least 1");
        }
        Ok(Some(a))
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_s)
    }
    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_s)
    }
    pub fn pause(&self) -> Duration {
        Duration::from_secs_f64(self.pause_s)
    }
    pub fn overload_duration(&self) -> Duration {
        Duration::from_secs_f64(self.overload_duration_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Option<Args>> {
        Args::parse_from(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn defaults_are_those_of_scripts_bench_sh() {
        let a = parse(&["--out", "bench/results.json", "--md", "docs/benchmarks.md"])
            .unwrap()
            .unwrap();
        assert_eq!(a.users, 1_000_000);
        assert_eq!((a.concurrency, a.auth_concurrency), (16, 8));
        assert_eq!(a.render, None);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"users":1000000,"duration_s":15.0,"warmup_s":3.0,"concurrency":16,"auth_concurrency":8,"overload_duration_s":8.0,"pause_s":1.0}"#
        );
    }

    #[test]
    fn options_set_their_fields() {
        let a = parse(&[
            "--users",
            "5000",
            "--duration",
            "2.5",
            "--warmup",
            "1",
            "--concurrency",
            "4",
            "--auth-concurrency",
            "2",
            "--overload-duration",
            "3",
            "--render",
            "r.json",
        ])
        .unwrap()
        .unwrap();
        assert_eq!((a.users, a.duration_s, a.warmup_s), (5000, 2.5, 1.0));
        assert_eq!(
            (a.concurrency, a.auth_concurrency, a.overload_duration_s),
            (4, 2, 3.0)
        );
        assert_eq!(a.render, Some(PathBuf::from("r.json")));
    }

    #[test]
    fn help_wins_wherever_a_flag_stands() {
        assert!(parse(&["--users", "100", "--help"]).unwrap().is_none());
        assert!(parse(&["-h"]).unwrap().is_none());
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let msg = |args: &[&str]| parse(args).unwrap_err().to_string();
        assert_eq!(msg(&["--users", "3"]), "--users must be at least 42");
        assert_eq!(
            msg(&["--users", "x"]),
            "--users \"x\": invalid digit found in string"
        );
        assert_eq!(
            msg(&["--concurrency", "0"]),
            "concurrency must be at least 1"
        );
        assert!(msg(&["--bogus", "1"]).starts_with("unknown option --bogus\n\nusers-bench:"));
        assert!(msg(&["--users"]).starts_with("--users needs a value\n\n"));
    }
}
