//! `bench/results.json` and the generated `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::load::RunStats;
use crate::{Hashing, Overload, Results, Scenario, TargetCheck};

/// Cached read p99 at half saturation, ms.
const CACHED_P99_MS: f64 = 5.0;
/// Deep page p99 ≤ this × page 1 p99.
const DEEP_RATIO: f64 = 2.0;
/// Login saturation ≥ this share of the hashing limit.
const LOGIN_SHARE: f64 = 0.9;
/// 503 p99 under overload, ms.
const OVERLOAD_503_P99_MS: f64 = 10.0;

fn find<'a>(scenarios: &'a [Scenario], name: &str) -> Option<&'a Scenario> {
    scenarios.iter().find(|s| s.name == name)
}

pub fn check_targets(
    scenarios: &[Scenario],
    hashing: &Hashing,
    overload: &Overload,
) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    if let Some(hit) = find(scenarios, "get_user_cache_hit") {
        let p99 = hit.half_rate.latency.p99_ms;
        out.push(TargetCheck {
            target: "cached read (GET /users/{id}, cache hit) p99 ≤ 5 ms at half saturation"
                .to_owned(),
            measured: format!(
                "p99 {p99:.2} ms at {:.0} req/s",
                hit.half_rate.target_rps.unwrap_or_default()
            ),
            pass: p99 <= CACHED_P99_MS && hit.half_rate.errors == 0,
        });
    }
    if let (Some(p1), Some(deep)) = (
        find(scenarios, "list_page_1"),
        find(scenarios, "list_deep_page"),
    ) {
        let (a, b) = (p1.half_rate.latency.p99_ms, deep.half_rate.latency.p99_ms);
        let ratio = b / a.max(1e-6);
        out.push(TargetCheck {
            target: "page 10 000 p99 ≤ 2 × page 1 p99 (each at half its saturation)".to_owned(),
            measured: format!(
                "{b:.2} ms vs {a:.2} ms = {ratio:.2}× (at saturation: {:.2} vs {:.2} ms)",
                deep.saturation.latency.p99_ms, p1.saturation.latency.p99_ms
            ),
            pass: ratio <= DEEP_RATIO && deep.half_rate.errors == 0,
        });
    }
    if let Some(login) = find(scenarios, "login") {
        let share = login.saturation.ok_rps / hashing.limit_rps.max(1e-9);
        out.push(TargetCheck {
            target: "login saturation ≥ 90 % of the hashing limit (cores ÷ one hash)".to_owned(),
            measured: format!(
                "{:.1} logins/s of {:.1} = {:.0} %",
                login.saturation.ok_rps,
                hashing.limit_rps,
                share * 100.0
            ),
            pass: share >= LOGIN_SHARE,
        });
    }
    let p99 = overload.p99_503_ms;
    out.push(TargetCheck {
        target: "login overload (open loop at 2 × limit): 503 p99 < 10 ms".to_owned(),
        measured: match p99 {
            Some(p) => format!(
                "503 p99 {p:.1} ms (p50 {:.1} ms), {:.0} % of answers were 503",
                overload.p50_503_ms.unwrap_or_default(),
                overload.share_503 * 100.0
            ),
            None => "no 503 answer at all".to_owned(),
        },
        pass: p99.is_some_and(|p| p < OVERLOAD_503_P99_MS),
    });
    out
}

/// Rewrites the markdown report from a results file (targets re-checked); returns the summary.
pub fn render(json_path: &Path, md_path: &Path) -> anyhow::Result<String> {
    let raw = std::fs::read_to_string(json_path)
        .with_context(|| format!("read {}", json_path.display()))?;
    let mut results: Results =
        serde_json::from_str(&raw).with_context(|| format!("parse {}", json_path.display()))?;
    results.targets = check_targets(&results.scenarios, &results.hashing, &results.overload);
    std::fs::write(md_path, markdown(&results))
        .with_context(|| format!("write {}", md_path.display()))?;
    Ok(markdown_summary(&results))
}

pub fn write(results: &Results, json_path: &Path, md_path: &Path) -> anyhow::Result<()> {
    for p in [json_path, md_path] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
    }
    let json = serde_json::to_string_pretty(results)?;
    std::fs::write(json_path, json + "\n")
        .with_context(|| format!("write {}", json_path.display()))?;
    std::fs::write(md_path, markdown(results))
        .with_context(|| format!("write {}", md_path.display()))?;
    Ok(())
}

fn pass(p: bool) -> &'static str {
    if p { "**PASS**" } else { "**MISS**" }
}

fn f(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn errors(r: &RunStats) -> String {
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

fn cpu_row(name: &str, r: &RunStats) -> Option<String> {
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

fn markdown(r: &Results) -> String {
    let m = &r.machine;
    let p = &r.params;
    let origin = &p["origin"];
    let run = &p["run"];
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Generated by `scripts/bench.sh` (the `users-bench` crate in `bench/`) — rerun it rather \
         than editing this file; the raw figures are in `bench/results.json`.\n"
    );
    let _ = writeln!(
        s,
        "- **Run**: {} at commit `{}`, {} build, {:.0} s in all (seed included).",
        r.date, r.git_commit, r.build, r.total_s
    );
    let _ = writeln!(
        s,
        "- **Machine**: {} × {} cores, {} MiB RAM, Linux {}; PostgreSQL {}, Redis {}. Load \
         average {} at the start, {} at the end.",
        m["cpu_model"].as_str().unwrap_or("?"),
        m["nproc"],
        m["mem_total_mb"],
        m["kernel"].as_str().unwrap_or("?"),
        m["postgres"].as_str().unwrap_or("?"),
        m["redis"].as_str().unwrap_or("?"),
        m["loadavg_start"],
        m["loadavg_end"],
    );
    let sd = &r.seed;
    let _ = writeln!(
        s,
        "- **Data**: a fresh database with {} users seeded by SQL (one Argon2id hash shared by \
         all, the `user` role each), UUIDv7-style ids in `created_at` order, then `VACUUM \
         ANALYZE`: {:.1} s (insert {:.1} s, roles {:.1} s, rebuilding the secondary indexes \
         {:.1} s, vacuum/analyze {:.1} s); table {:.0} MiB, indexes {:.0} MiB.",
        sd.users,
        sd.total_s,
        sd.insert_users_s,
        sd.insert_roles_s,
        sd.create_indexes_s,
        sd.vacuum_analyze_s,
        sd.table_size_mb,
        sd.indexes_size_mb
    );
    let _ = writeln!(
        s,
        "- **Origin**: in-process (`Application::build`, its own {}-thread tokio runtime), \
         Argon2id m={} KiB t={} p={}, {} hashing threads, hash queue {}, {} pooled PostgreSQL \
         connections, user cache in Redis (TTL {} s), rate limits {} (out of the way), logs at \
         `error`.",
        origin["runtime_worker_threads"],
        origin["argon2"]["m_kib"],
        origin["argon2"]["t"],
        origin["argon2"]["p"],
        origin["hash_workers"],
        origin["hash_queue"],
        origin["database_pool_size"],
        origin["cache_ttl_s"],
        origin["rate_limit_user"].as_str().unwrap_or("?"),
    );
    let _ = writeln!(
        s,
        "- **Load**: reqwest over HTTP/1.1 keep-alive from the same process (its own tokio \
         runtime, sharing the {} cores with the origin, PostgreSQL and Redis, so absolute \
         throughput is a lower bound). Each scenario: {} s warm-up, then **saturation** = closed \
         loop, C concurrent workers for {} s; then a **fixed rate** = open loop at half the \
         saturation throughput for {} s, each request's latency measured from its *scheduled* \
         send time (no coordinated omission). Throughput counts answers with the expected status.\n",
        m["nproc"], run["warmup_s"], run["duration_s"], run["duration_s"]
    );

    let _ = writeln!(s, "## Results\n");
    s.push_str(&markdown_summary(r));
    let _ = writeln!(s);

    let _ = writeln!(s, "## Scenarios\n");
    for sc in &r.scenarios {
        let _ = writeln!(s, "- **{}** — {}.", sc.title, sc.request);
    }
    for sc in &r.scenarios {
        let plan = &sc.extra["plan"];
        if let Some(nodes) = plan["nodes"].as_str() {
            let _ = writeln!(
                s,
                "- {} — the listing query's plan (`EXPLAIN ANALYZE`, warm): {nodes}; executes in \
                 {} ms, {} shared buffers hit, {} read.",
                sc.title,
                plan["execution_ms"],
                plan["shared_hit_blocks"],
                plan["shared_read_blocks"]
            );
        }
    }
    if let (Some(miss), Some(hit)) = (
        find(&r.scenarios, "get_user_cache_miss"),
        find(&r.scenarios, "get_user_cache_hit"),
    ) {
        let n = |v: &serde_json::Value| format!("{:.0}", v.as_f64().unwrap_or_default());
        let _ = writeln!(
            s,
            "- Cache miss is forced by never repeating an id (rather than a tiny `CACHE_TTL`, \
             which would also expire the hit scenario's entry and cost an extra Redis write per \
             read): the origin's own counters over the miss scenario show {} hits and {} misses; \
             over the hit scenario {} hits and {} misses.",
            n(&miss.extra["cache_hits"]),
            n(&miss.extra["cache_misses"]),
            n(&hit.extra["cache_hits"]),
            n(&hit.extra["cache_misses"]),
        );
    }
    let _ = writeln!(s);

    let h = &r.hashing;
    let _ = writeln!(s, "## Hashing limit and overload\n");
    // Results written before the second timing existed have only the first.
    let after = if h.single_thread_after_ms.is_empty() {
        String::new()
    } else {
        format!(" and right after them ({:?} ms)", h.single_thread_after_ms)
    };
    let _ = writeln!(
        s,
        "- One Argon2id hash (m={} KiB, t={}, p={}, `argon2` crate, one thread, origin idle) into \
         a reused memory buffer, timed right before the login runs ({:?} ms, {} ms of CPU per \
         hash){after}: median **{} ms** → **limit = {} cores ÷ {} ms = {} logins/s**. With {} \
         threads hashing at once the same code did {} hashes/s.",
        h.m_kib,
        h.t,
        h.p,
        h.single_thread_ms,
        h.cpu_ms_per_hash.map_or_else(|| "?".to_owned(), f),
        f(h.median_ms),
        m["nproc"],
        f(h.median_ms),
        f(h.limit_rps),
        m["nproc"],
        f(h.parallel_rps)
    );
    let _ = writeln!(
        s,
        "- The same hash through the PHC API the origin calls (`PasswordHasher::hash_password`, \
         which allocates and fills the 19 MiB of blocks on every call): median {} ms of {:?} ms \
         → {} hashes/s on {} cores. The difference is the allocation: when the allocator hands \
         back fresh pages each call, every hash also page-faults and zero-fills its 19 MiB.",
        f(h.phc_median_ms),
        h.phc_single_thread_ms,
        f(h.phc_limit_rps),
        m["nproc"],
    );
    if let Some(login) = find(&r.scenarios, "login") {
        let _ = writeln!(
            s,
            "- Login at saturation: {} logins/s = {:.0} % of the limit ({:.0} % of the PHC-API \
             rate); p50 {} ms, p99 {} ms with {} logins in flight.",
            f(login.saturation.ok_rps),
            login.saturation.ok_rps / h.limit_rps.max(1e-9) * 100.0,
            login.saturation.ok_rps / h.phc_limit_rps.max(1e-9) * 100.0,
            f(login.saturation.latency.p50_ms),
            f(login.saturation.latency.p99_ms),
            login.saturation.concurrency.unwrap_or_default()
        );
        if let Some(c) = &login.saturation.cpu {
            let _ = writeln!(
                s,
                "  Meanwhile the origin's Argon2 threads used {} cores, i.e. {} ms of CPU per \
                 login's hash; the remaining {} cores went to PostgreSQL {}, the origin's async \
                 threads {}, Redis {}, the load generator {} and other processes {}.",
                f(c.origin_argon2),
                f(c.origin_argon2 * 1000.0 / login.saturation.ok_rps.max(1e-9)),
                f(c.machine_busy - c.origin_argon2),
                f(c.postgres),
                f(c.origin_async),
                f(c.redis),
                f(c.loadgen),
                f(c.foreign),
            );
        }
    }
    let o = &r.overload;
    let statuses: Vec<String> = o
        .stats
        .by_status
        .iter()
        .map(|(code, l)| {
            format!(
                "{}: {} (p50 {} ms, p99 {} ms)",
                if code == "0" { "transport error" } else { code },
                l.count,
                f(l.p50_ms),
                f(l.p99_ms)
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "- Overload: logins at {} req/s (2 × the larger of the limit and the login saturation \
         throughput), open loop for {} s: {} requests; {}. \
         Share of 503: {:.0} %; requests refused by the full hash queue (origin counter): {}.",
        f(o.rate_rps),
        run["overload_duration_s"],
        o.stats.requests,
        statuses.join("; "),
        o.share_503 * 100.0,
        o.hash_rejections
    );
    if !o.stats.error_kinds.is_empty() {
        let kinds: Vec<String> = o
            .stats
            .error_kinds
            .iter()
            .map(|(k, n)| format!("{n}× `{k}`"))
            .collect();
        let _ = writeln!(
            s,
            "- Overload answers other than 200: {}.",
            kinds.join(", ")
        );
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "## Where the CPU went\n");
    let _ = writeln!(
        s,
        "Cores used during each measured run (from `/proc`): the origin's async threads, its \
         Argon2 threads, the load generator, other threads of the bench process, PostgreSQL \
         backends of the bench database, Redis, and every other process on the machine (work \
         that competed with the bench).\n"
    );
    let _ = writeln!(
        s,
        "| run | machine busy | origin async | origin argon2 | load generator | bench other | PostgreSQL | Redis | other processes |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for sc in &r.scenarios {
        if let Some(row) = cpu_row(&format!("{} — saturation", sc.title), &sc.saturation) {
            let _ = writeln!(s, "{row}");
        }
        if let Some(row) = cpu_row(&format!("{} — fixed rate", sc.title), &sc.half_rate) {
            let _ = writeln!(s, "{row}");
        }
    }
    if let Some(row) = cpu_row("login overload", &o.stats) {
        let _ = writeln!(s, "{row}");
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "## Notes\n");
    let _ = writeln!(
        s,
        "- Every authenticated request, cache hit or not, reads the caller's principal from \
         PostgreSQL (immediate revocation) and makes a Redis rate-limit call; a cache hit saves \
         only the read of the target row. Hence PostgreSQL's share of the CPU even for cache hits.\n"
    );
    let _ = writeln!(s, "## Reproduce\n");
    let _ = writeln!(
        s,
        "```sh\nscripts/bench.sh            # = cargo run --release -p users-bench -- --out bench/results.json --md docs/benchmarks.md\n```\n"
    );
    let _ = writeln!(
        s,
        "Needs PostgreSQL at `127.0.0.1:5432` (trust, user `postgres`) and Redis at \
         `127.0.0.1:6379`. It creates and drops its own database `users_bench_<ts>` and Redis \
         prefix `bench:users_bench_<ts>:`; `scripts/bench.sh --help` lists the options (users, \
         durations, concurrency). Figures from a busy or small machine vary by tens of per cent \
         between runs: compare runs on the same machine, and check the *other processes* column."
    );
    s
}
