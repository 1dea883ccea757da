//! The transfer section of `docs/benchmarks.md`, between `<!-- transfer:begin -->` and
//! `<!-- transfer:end -->`, rewritten in place (or appended) so the rest of the report stays.

use std::fmt::Write as _;
use std::path::Path;

use super::TransferResults;

/// The markers around the section.
pub const MARKERS: (&str, &str) = ("<!-- transfer:begin -->", "<!-- transfer:end -->");
const BEGIN: &str = MARKERS.0;
const END: &str = MARKERS.1;

/// The section for `r`, markers included.
fn markdown(r: &TransferResults) -> String {
    let mut md = format!(
        "{BEGIN}\n## Import and export (SPEC §10)\n\n\
         - **Run**: {} at commit `{}`, `scripts/bench.sh --transfer`; machine: {}. Raw figures: \
         `bench/transfer-results.json`.\n\
         - **Setup**: the release-built `users-origin` as a child process (its memory measured \
         alone, from `/proc/<pid>/status`) on a fresh database, Redis, the default Argon2id \
         parameters.\n\n",
        r.date, r.commit, r.machine
    );
    let i = &r.import;
    let _ = write!(
        md,
        "**Import**: {} accounts with their hashes ({}), {} rows per `POST /admin/users/import`, \
         one request at a time: **{:.0} rows/s** ({:.1} s in all; a request of {} rows p50 {:.0} ms, \
         p99 {:.0} ms). No hash is computed at import; each row is checked, written under a \
         savepoint and audited.\n\n",
        i.rows,
        i.hash,
        i.rows_per_request,
        i.rows_per_s,
        i.seconds,
        i.rows_per_request,
        i.request_p50_ms,
        i.request_p99_ms
    );
    md.push_str(
        "**Export** (`GET /admin/users/export?include=password_hash`, read to the end; the peak is \
         the origin's resident memory during the export, reset just before it):\n\n\
         | accounts | rows/s | MiB/s | size (MiB) | RSS before (MiB) | peak RSS during (MiB) |\n\
         |---:|---:|---:|---:|---:|---:|\n",
    );
    for e in &r.exports {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} |",
            e.accounts,
            e.rows_per_s,
            e.mib_per_s,
            e.bytes as f64 / 1_048_576.0,
            e.rss_before_mib,
            e.peak_rss_mib
        );
    }
    let growth: Vec<String> = r
        .exports
        .iter()
        .map(|e| {
            format!(
                "{:+.1} MiB at {} accounts",
                e.peak_rss_mib - e.rss_before_mib,
                e.accounts
            )
        })
        .collect();
    let _ = writeln!(
        md,
        "\nThe export's peak over the memory before it: {}. It reads 500 accounts at a time from \
         one snapshot and streams each page before reading the next, so memory does not grow \
         with the accounts.",
        growth.join(", ")
    );
    md.push_str(END);
    md.push('\n');
    md
}

/// Writes the section for `r` into the markdown file at `path` (created if missing).
pub fn write(r: &TransferResults, path: &Path) -> anyhow::Result<()> {
    crate::section::write(path, MARKERS, &markdown(r))
}
