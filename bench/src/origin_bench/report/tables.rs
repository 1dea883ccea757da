//! The report's tables and the formatting its tables and prose share: the results and targets
//! tables (the heart of the report, also printed at the end of a run) and the rows of the CPU
//! table.

use std::fmt::Write as _;

use crate::load::RunStats;
use crate::origin_bench::results::{Results, Scenario};

/// The results and targets tables (also printed at the end of a run).
pub fn markdown_summary(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| scenario | saturation: req/s (C) | p50 ms | p99 ms | fixed rate: target → achieved req/s | p50 ms | p99 ms | errors (sat / fixed) |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---|");
    for sc in &r.scenarios {
        let (a, b) = (&sc.saturation, &sc.half_rate);
        let _ = writeln!(
            s,
            "| {} | {} ({}) | {} | {} | {} → {} | {} | {} | {} / {} |",
            sc.title,
            f(a.ok_rps),
            a.concurrency.unwrap_or_default(),
            f(a.latency.p50_ms),
            f(a.latency.p99_ms),
            f(b.target_rps.unwrap_or_default()),
            f(b.throughput_rps),
            f(b.latency.p50_ms),
            f(b.latency.p99_ms),
            errors(a),
            errors(b),
        );
    }
    let o = &r.overload;
    let _ = writeln!(
        s,
        "| login overload (open loop, 2 × limit, {:.0} s) | — | — | — | {} → {} | {} | {} | {} |",
        r.params["run"]["overload_duration_s"]
            .as_f64()
            .unwrap_or_default(),
        f(o.rate_rps),
        f(o.stats.throughput_rps),
        f(o.stats.latency.p50_ms),
        f(o.stats.latency.p99_ms),
        errors(&o.stats),
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "| target | measured | result |");
    let _ = writeln!(s, "|---|---|---|");
    for t in &r.targets {
        let _ = writeln!(s, "| {} | {} | {} |", t.target, t.measured, pass(t.pass));
    }
    s
}

/// The scenario called `name`.
pub fn find<'a>(scenarios: &'a [Scenario], name: &str) -> Option<&'a Scenario> {
    scenarios.iter().find(|s| s.name == name)
}

/// `**PASS**` or `**MISS**`.
pub fn pass(p: bool) -> &'static str {
    if p { "**PASS**" } else { "**MISS**" }
}

/// A figure with two decimals below 10, one below 100, none above.
pub fn f(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// The error count, with how many of each kind.
pub fn errors(r: &RunStats) -> String {
    if r.errors == 0 {
        "0".to_owned()
    } else {
        let kinds: Vec<String> = r
            .error_kinds
            .iter()
            .map(|(k, n)| format!("{n}× {k}"))
            .collect();
        format!("{} ({})", r.errors, kinds.join(", "))
    }
}

/// One row of the CPU table, if the run has CPU figures.
pub fn cpu_row(name: &str, r: &RunStats) -> Option<String> {
    let c = r.cpu.as_ref()?;
    Some(format!(
        "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
        f(c.machine_busy),
        f(c.origin_async),
        f(c.origin_argon2),
        f(c.loadgen),
        f(c.bench_other_threads),
        f(c.postgres),
        f(c.redis),
        f(c.foreign),
    ))
}
